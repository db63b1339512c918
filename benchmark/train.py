"""The step loop: pre-train one model, evaluate it, and write the result last.

§4.1's recipe: AdamW (β1 0.9, β2 0.999, decoupled weight decay), linear warm-up then linear
(or cosine) decay to `end_lr`, gradient clipping at global norm 1. The data order and
augmentation are pure functions of (seed, step), and a checkpoint holds model, optimiser, step
and RNG state, so a resumed run ends bitwise where an uninterrupted one would (on CPU).
A run given several processes trains data-parallel (see `benchmark.distributed`): each rank takes
its slice of every batch and only the lead writes the run's files.
"""

from __future__ import annotations

import math
import os
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel

from benchmark import data, distributed, environment, evals, flops, locks, released, sizes
from benchmark.config import RunConfig
from benchmark.data import loader
from benchmark.evals.fewshot import SELECTION_SHOTS
from benchmark.evals.upstream import TRAIN_SAMPLE, train_sample
from benchmark.metrics import fewshot as fewshot_key
from benchmark.models import build_model, token_grid
from benchmark.optim import lr_at, make_optimizer, precision, set_lr, train_step
from benchmark.results import (
    CHECKPOINT,
    FAILED,
    METRICS,
    PREVIOUS_CHECKPOINT,
    PROGRESS,
    RESULT,
    init_run_dir,
    read_result,
    start_attempt,
    weights_record,
)
from benchmark.storage import append_jsonl, read_jsonl, save_torch, storage_error, write_json, write_jsonl

CHECKPOINT_EVERY_S = 60.0  # wall-clock seconds between checkpoints (env VITBENCH_CHECKPOINT_EVERY_S)
# The training loop reads losses and votes from the device at most this many steps apart: the step
# itself never waits for the device, and a stop request is answered within this many steps.
READ_EVERY = 25
COMPILE_CHOICES = ("auto", "on", "off")
STREAMED_TEST_SAMPLE = 10_000  # test images the upstream accuracy of a streamed dataset is measured on
MODEL = "model.pt"  # final weights (with eval.early_stop: the selected ones), kept for inspection studies
BEST = "best.pt"  # with eval.early_stop: the weights of the best validation score so far


def checkpoint_every_s() -> float:
    """The checkpoint interval; an environment variable so tests reach job subprocesses too."""
    return float(os.environ.get("VITBENCH_CHECKPOINT_EVERY_S", CHECKPOINT_EVERY_S))


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run is recorded as failed, the study goes on."""


class Interrupted(BaseException):
    """Raised between two steps, right after a checkpoint, once `STOP.requested` is set (by the
    dispatcher, on a preemption or time-limit signal): the job ends and its requeued successor
    resumes from that checkpoint. A BaseException so no `except Exception` swallows it; never
    recorded as a failure."""


@dataclass
class StopRequest:
    """Set from a signal handler, read by the step loop. A plain attribute, not a threading.Event:
    a handler that waited for a lock could deadlock the very thread it interrupted."""

    requested: bool = False


STOP = StopRequest()


def compile_setting() -> str:
    """VITBENCH_COMPILE: "auto" (the default: compiled on a GPU, where timm's B/16
    step measured 28% faster on an H100, eager on a CPU, where compiling measured no gain), "on" or "off". How a run is
    executed, not what it computes: kept out of the run id and recorded in the result."""
    value = os.environ.get("VITBENCH_COMPILE", "auto")
    if value not in COMPILE_CHOICES:
        raise ValueError(
            f"VITBENCH_COMPILE={value!r} is not valid; choose one of: {', '.join(COMPILE_CHOICES)}"
        )
    return value


def compiles(device: torch.device) -> bool:
    """Whether a training step is compiled on `device` (compile_setting)."""
    setting = compile_setting()
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def channels_last(arch: str, device: torch.device) -> bool:
    """NHWC on a GPU for a family whose convolutions carry its compute, BiT and hybrid (cuDNN's
    fast layout): the family's record says (benchmark.sizes)."""
    return device.type == "cuda" and sizes.family_of(arch).channels_last


PHASES = ("startup", "train", "periodic_eval", "final_eval")


class PhaseClock:
    """Where a run's wall time goes (this attempt's, as `wall_s`), phase by phase, as result.json
    and progress.json record it: start-up (from the process's start, or the run's call in a process that trained one before, to
    the first training step: imports, data loading, model build, FLOP count), training (the step
    loop, checkpoints included), the evaluations during training, and the final evaluation (to the
    result, the model's weights written)."""

    def __init__(self, origin: float) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.phase, self.since = "startup", origin

    def switch(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[self.phase] += now - self.since
        self.phase, self.since = phase, now

    def split(self) -> dict[str, float]:
        """Seconds per phase so far (`<phase>_s`), the current one up to now."""
        now = {**self.seconds, self.phase: self.seconds[self.phase] + time.perf_counter() - self.since}
        return {f"{phase}_s": round(now[phase], 3) for phase in PHASES}


_PROCESS_TRAINED = False  # whether this process has started a run already (its start-up is paid)


def startup_origin() -> float:
    """The perf_counter time a run's start-up counts from: the process's start for the first run a
    process trains (a job's interpreter and imports are that run's cost), else now."""
    age = None if _PROCESS_TRAINED else environment.process_age_s()
    return time.perf_counter() - (age or 0.0)


def loader_workers() -> int:
    """DataLoader processes for a streamed upstream: one per core, at most 8 (env VITBENCH_LOADER_WORKERS)."""
    return int(os.environ.get("VITBENCH_LOADER_WORKERS", min(8, len(os.sched_getaffinity(0)))))


class Trainer:
    """Holds one run's data, model and optimiser; `run()` trains, evaluates and records. Its clock
    counts the start-up from `started` (a perf_counter time; default: now)."""

    def __init__(self, cfg: RunConfig, run_dir: Path, started: float | None = None) -> None:
        self.cfg, self.dir = cfg, run_dir
        self.clock = PhaseClock(time.perf_counter() if started is None else started)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        name = cfg.data.dataset
        upstream = data.streaming(name) if data.is_streaming(name) else data.load(name)
        self.size = cfg.data.image_size or upstream.image_size
        self.channels = upstream.channels
        self.num_classes = upstream.num_classes
        self.stream: torch.utils.data.Dataset | None = None  # set: batches come from loader.streamed
        if isinstance(upstream, data.ImageDataset):
            keep = torch.from_numpy(data.subset(cfg.data.train_examples, len(upstream.train_y)))
            # uint8 on the device, a quarter of float32's memory; each batch is prepared (resized,
            # scaled to [-1, 1]) and augmented there.
            self.train_x = upstream.train_x[keep].to(self.device)
            self.train_y = upstream.train_y[keep].to(self.device)
            self.examples = len(keep)
            test_x, test_y = upstream.test_x, upstream.test_y
            # The upstream fit's training images: a fixed class-stratified sample of the run's subset.
            fit = keep[torch.from_numpy(train_sample(upstream.train_y[keep].numpy()))]
            fit_x, fit_y = upstream.train_x[fit], upstream.train_y[fit]
        else:  # too large for memory: read per batch; the upstream accuracy on a fixed test sample
            keep = data.subset(cfg.data.train_examples, len(upstream.train))
            self.stream = torch.utils.data.Subset(upstream.train, keep.tolist())
            self.examples = len(keep)
            test = data.subset(STREAMED_TEST_SAMPLE, len(upstream.test))
            test_x, test_y = loader.gather(upstream.test, test, loader_workers())
            # Its labels are read with its images: a fixed uniform sample instead of a stratified one.
            fit = data.subset(TRAIN_SAMPLE, self.examples)
            fit_x, fit_y = loader.gather(self.stream, fit, loader_workers())
        self.upstream_test = evals.Split.of(test_x.to(self.device), test_y, self.size, self.channels)
        self.upstream_train = evals.Split.of(fit_x.to(self.device), fit_y, self.size, self.channels)
        self.probes = evals.ProbeData(self.size, self.channels, self.device)

        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.num_classes, self.size, self.channels).to(self.device)
        self.channels_last = channels_last(cfg.model.arch, self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.step = 0
        self.batch_size = min(cfg.optim.batch_size, self.examples)  # a small dataset caps it
        self.lead, self.rank, self.world = distributed.is_lead(), distributed.rank(), distributed.world_size()
        if self.batch_size % self.world:
            raise ValueError(f"the batch does not split evenly over {self.world} data-parallel ranks")
        # Training steps go through DDP, which averages the gradients over ranks; evaluation and
        # checkpoints use the model itself.
        self.net = self.model if self.world == 1 else DistributedDataParallel(self.model)
        self.compiled = compiles(self.device)
        if self.compiled:
            self.net = torch.compile(self.net)
        # eval.early_stop: the step and validation score of the best evaluation so far (its weights in
        # best.pt), and that evaluation's context: what it computed serves the final evaluation.
        self.best_step, self.best_score = 0, -math.inf
        self.best_context: evals.EvalContext | None = None

    # --- checkpoints -----------------------------------------------------------------

    def save_checkpoint(self) -> None:
        """Written atomically (storage.save_torch): a failed write (a full disk) leaves the last
        good checkpoint in place. That one is kept as the previous checkpoint, the fallback if
        the new one is later found unreadable. The lead alone writes it."""
        if not self.lead:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "torch_rng": torch.get_rng_state(),
            "best": [self.best_step, self.best_score],
        }
        path = self.dir / CHECKPOINT
        if path.exists():
            # Keep the current checkpoint as the fallback without a moment with none in place: a
            # hard link renamed over the previous one (atomic), then the new one written atomically.
            locks.check_held(self.dir)
            link = self.dir / (PREVIOUS_CHECKPOINT + ".tmp")
            link.unlink(missing_ok=True)
            os.link(path, link)
            link.replace(self.dir / PREVIOUS_CHECKPOINT)
        save_torch(path, state)

    def try_resume(self) -> bool:
        """Resume from the newest readable checkpoint (checkpoint.pt, else the previous one); an
        unreadable one is set aside with a warning, and with none the run starts from scratch."""
        resumed = False
        for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
            path = self.dir / name
            if not path.exists():
                continue
            try:
                state = torch.load(path, map_location=self.device, weights_only=True)
                self.model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                torch.set_rng_state(state["torch_rng"])
                self.step = int(state["step"])
                self.best_step, self.best_score = state["best"]
            except Exception as exc:  # a truncated file raises many kinds of errors
                if self.lead:  # (another rank may find it gone, set aside: it moves on alike)
                    path.replace(path.with_suffix(".corrupt"))
                    message = f"unreadable {name} set aside as {path.with_suffix('.corrupt').name}: {exc}"
                    warnings.warn(f"{self.dir}: {message}", stacklevel=2)
                    append_jsonl(self.dir / METRICS, {"kind": "warning", "message": message})
                continue
            resumed = True
            break
        if not distributed.same_on_all_ranks(self.step):
            raise RuntimeError(f"{self.dir}: data-parallel ranks resumed from different checkpoints")
        if self.lead:
            # Drop log records from after the resume point (all of them when starting from
            # scratch): they will be produced again.
            kept = [r for r in read_jsonl(self.dir / METRICS) if r.get("step", 0) <= self.step]
            write_jsonl(self.dir / METRICS, kept)
        return resumed

    # --- training ----------------------------------------------------------------------

    def train(self, until: int | None = None) -> None:
        """Train to step `until` (default: the end). The schedule always spans all steps.

        The step itself never waits for the device: losses stay on it and are read, with the stop
        and checkpoint votes, once every READ_EVERY steps (and at every log, evaluation and the last
        step). A non-finite loss found there fails the run naming the step where it first appeared;
        the steps after it are never checkpointed (the last checkpoint is from before it)."""
        cfg = self.cfg.optim
        until = cfg.steps if until is None else until
        log_every = max(1, cfg.steps // 50)
        last_ckpt = t_log = time.perf_counter()
        every = checkpoint_every_s()
        images_since_log = 0
        # (step, lr, loss still on the device) of every step since the last read
        window: list[tuple[int, float, torch.Tensor]] = []
        batches = self.batches(self.step, until)
        self.model.train()
        self.clock.switch("train")
        while self.step < until:
            x, y = self.batch(*next(batches))
            # This rank's slice of the step's (augmented) batch; all of it in a single process.
            x, y = x[self.rank :: self.world], y[self.rank :: self.world]
            lr = lr_at(self.step, cfg)
            set_lr(self.optimizer, lr)
            loss, grad_norm = train_step(
                self.net, self.optimizer, x, y, cfg.clip_norm, self.model.parameters(), cfg.label_smoothing
            )
            window.append((self.step, lr, loss))
            self.step += 1
            images_since_log += self.batch_size
            log = self.step % log_every == 0 or self.step == cfg.steps
            evaluate = (
                bool(self.cfg.eval.every_steps)
                and self.step % self.cfg.eval.every_steps == 0 < cfg.steps - self.step
            )
            if not (log or evaluate or self.step % READ_EVERY == 0 or self.step == until):
                continue
            # The window's losses summed over ranks, and how many ranks were asked to stop (a
            # preemption signal) or are due a checkpoint: one all-reduce (none in a single process),
            # so every rank decides alike at the same step.
            flags = torch.tensor(
                [STOP.requested, time.perf_counter() - last_ckpt > every], dtype=torch.float64
            )
            votes = torch.cat([torch.stack([w[2] for w in window]).double(), flags.to(self.device)])
            *losses, stops, due = distributed.sum_over_ranks(votes).tolist()
            for (step, step_lr, _), value in zip(window, losses, strict=True):
                if not math.isfinite(value):
                    raise Diverged(f"loss became {value / self.world} at step {step} (lr {step_lr:.3g})")
            window.clear()
            if log:
                now = time.perf_counter()
                record = {
                    "kind": "train",
                    "step": self.step,
                    "loss": losses[-1] / self.world,
                    "lr": lr,
                    "grad_norm": grad_norm.item(),
                    "img_per_s": images_since_log / max(now - t_log, 1e-9),
                }
                if self.lead:
                    append_jsonl(self.dir / METRICS, record)
                    self.write_progress(record)
                t_log, images_since_log = now, 0
            if evaluate:
                self.clock.switch("periodic_eval")
                self.log_eval(final=False)
                self.clock.switch("train")
            if stops or due:
                self.save_checkpoint()
                last_ckpt = time.perf_counter()
                if stops:
                    raise Interrupted(f"stopped after step {self.step} to be requeued")

    def batches(self, start: int, stop: int) -> Iterator[loader.Batch]:
        """uint8 images and labels on the device for steps [start, stop), in the run's data order."""
        if self.stream is None:
            return loader.in_memory(self.train_x, self.train_y, start, stop, self.batch_size, self.cfg.seed)
        return loader.streamed(
            self.stream, self.examples, start, stop, self.batch_size, self.cfg.seed, self.device,
            loader_workers(),
        )  # fmt: skip

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> loader.Batch:
        """One step's batch, prepared and augmented on the device from its uint8 images; the
        augmentation's random draws are a pure function of (seed, step)."""
        x = data.prepare(x, self.size, self.channels)
        if self.cfg.data.augment == "shift":
            g = torch.Generator(self.device).manual_seed(self.cfg.seed * 1_000_003 + self.step)
            x = data.random_shift(x, g)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def execution(self) -> dict[str, Any]:
        """How the steps ran (not part of the run id): for the result and the report's provenance."""
        return {
            "compiled": self.compiled,
            "channels_last": self.channels_last,
            "precision": precision(self.device),
            "data": "uint8 on the device"
            if self.stream is None
            else f"streamed by {loader_workers()} loader process(es)",
        }

    def write_progress(self, record: dict[str, Any]) -> None:
        write_json(
            self.dir / PROGRESS,
            {**record, "steps": self.cfg.optim.steps, "time": time.time(), "wall_split": self.clock.split()},
        )

    # --- evaluation ----------------------------------------------------------------------

    def context(self) -> evals.EvalContext:
        """A fresh evaluation context for the model as it is now."""
        return evals.EvalContext(
            self.model, self.cfg, self.probes, self.upstream_test, self.upstream_train, run_dir=self.dir
        )

    def evaluate(self, final: bool = True, ctx: evals.EvalContext | None = None) -> dict[str, float]:
        """The config's evaluators (benchmark.evals): the cheap ones during training, all at the end;
        in `ctx` (what it computed for this model is reused), else in a fresh context."""
        self.model.eval()
        metrics = evals.evaluate(self.context() if ctx is None else ctx, final)
        self.model.train()
        return metrics

    def log_eval(self, final: bool = True) -> dict[str, float]:
        ctx = self.context()
        metrics = self.evaluate(final, ctx)
        if self.lead:
            append_jsonl(self.dir / METRICS, {"kind": "eval", "step": self.step, **metrics})
        if self.cfg.eval.early_stop and (score := selection_score(self.cfg, metrics)) > self.best_score:
            self.best_step, self.best_score, self.best_context = self.step, score, ctx
            if self.lead:
                save_torch(self.dir / BEST, self.model.state_dict())
        return metrics

    def final_eval(self) -> dict[str, float]:
        """Every evaluator, on the final model; with eval.early_stop, on the model of the best validation
        score seen (the final one included), recorded as that step's "selected" evaluation. The
        selected model's own evaluation context is reused when this process made it (the same
        weights, so the same features: only what that evaluation did not measure is computed)."""
        if not self.cfg.eval.early_stop:
            return self.log_eval()
        self.log_eval(final=False)  # the last point of the curve, and a candidate
        if self.best_step < self.step:
            self.model.load_state_dict(
                torch.load(self.dir / BEST, map_location=self.device, weights_only=True)
            )
        metrics = self.evaluate(True, self.best_context)
        append_jsonl(self.dir / METRICS, {"kind": "selected", "step": self.best_step, **metrics})
        return metrics


def selection_score(cfg: RunConfig, metrics: dict[str, float]) -> float:
    """eval.early_stop's score (§4.3, Fig. 4: "early stopping on the best validation score"): 5-shot
    accuracy on the validation splits, averaged over the probe datasets. Never a test number."""
    return sum(metrics[fewshot_key(d, SELECTION_SHOTS, "val")] for d in cfg.eval.fewshot_datasets) / len(
        cfg.eval.fewshot_datasets
    )


def record_of_data(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Where every dataset of the run comes from, whether probing it measures transfer, and its
    number of classes (chance is one over it): kept in the run's result, so a report never loads a
    dataset to describe it."""

    def record(name: str, role: str) -> dict[str, Any]:
        return {"role": role, "provenance": data.describe(name), "classes": data.spec(name).num_classes}

    upstream = cfg.data.dataset
    if not cfg.model.checkpoint:
        out = {upstream: record(upstream, "upstream (pre-training)")}
    else:  # pre-trained by the checkpoint's authors: its images need not be here
        shape = data.spec(upstream)
        out = {
            upstream: {
                "role": f"upstream (pre-training, by the authors of {cfg.model.checkpoint}; not read by this run)",
                "provenance": shape.provenance,
                "classes": shape.num_classes,
            }
        }
    if cfg.eval.inspect_images and "inspect" in cfg.eval.evaluators:
        out.setdefault(cfg.eval.inspect_images, record(cfg.eval.inspect_images, "images inspected"))
    for name in (*cfg.eval.fewshot_datasets, *evals.finetuned(cfg)):
        out.setdefault(name, record(name, data.role(name, upstream)))
    return out


def run(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Train and evaluate one run in `run_dir`, resuming from its checkpoint if there is one.

    Returns the result (also written to result.json, last). A diverged run is recorded in
    failed.json and returned as failed; any other error is recorded there too and re-raised.
    """
    run_dir = Path(run_dir)
    if not distributed.is_lead():
        return _follow_lead(cfg, run_dir)
    init_run_dir(run_dir, cfg)
    if (done := read_result(run_dir)) is not None:
        return done
    (run_dir / FAILED).unlink(missing_ok=True)  # a retry starts clean
    global _PROCESS_TRAINED
    started, _PROCESS_TRAINED = startup_origin(), True
    t0 = time.perf_counter()
    meta = start_attempt(run_dir, {**environment.collect(), "threads": torch.get_num_threads()})
    try:
        if cfg.model.checkpoint:
            result = evaluate_released(cfg, run_dir, started, meta["device"])
            write_json(run_dir / RESULT, result)  # last: the "done" marker
            return result
        trainer = Trainer(cfg, run_dir, started)
        resumed_from = trainer.step if trainer.try_resume() else None
        flops_per_image = flops.train_flops_per_image(
            trainer.model, trainer.batch(*next(trainer.batches(0, 1)))[0][:2], trainer.num_classes
        )
        start_step = trainer.step
        trainer.train()
        trainer.clock.switch("final_eval")
        trainer.save_checkpoint()
        trainer.write_progress({"kind": "eval", "step": trainer.step, "phase": "final evaluation"})
        metrics = trainer.final_eval()
        save_torch(run_dir / MODEL, trainer.model.state_dict())
        images = (trainer.step - start_step) * trainer.batch_size
        wall_split = trainer.clock.split()
        result = finished(
            cfg,
            trainer.model,
            metrics,
            trainer.size,
            train_examples=trainer.examples,
            train_flops_per_image=flops_per_image,
            train_flops=flops_per_image * cfg.optim.steps * trainer.batch_size,
            # the step loop's own pace: the evaluations during training are not part of it
            train_images_per_s=images / max(wall_split["train_s"], 1e-9),
            resumed_from_step=resumed_from,
            selected_step=trainer.best_step if cfg.eval.early_stop else trainer.step,
            wall_s=time.perf_counter() - t0,
            wall_split=wall_split,
            device=meta["device"],
            execution=trainer.execution(),
            weights=weights_record(run_dir),  # a run is done only while model.pt still matches it
        )
        write_json(run_dir / RESULT, result)  # last: the "done" marker
    except Diverged as exc:
        return record_failure(run_dir, exc)
    except BaseException as exc:
        record_failure(run_dir, exc)
        raise
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT, BEST):
        (run_dir / name).unlink(missing_ok=True)
    return result


def evaluate_released(cfg: RunConfig, run_dir: Path, started: float, device_name: str) -> dict[str, Any]:
    """A run from a released checkpoint (model.checkpoint): no pre-training; the checkpoint, refused
    unless it is the file the run was pinned to, goes straight to the run's evaluators. Its result
    has the fields of a trained run's (no pre-training: 0 steps, images and FLOPs) and what was loaded."""
    clock, t0 = PhaseClock(started), time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    upstream = data.spec(cfg.data.dataset)
    size = cfg.data.image_size or upstream.image_size
    model, loaded = released.load_pinned(cfg, size)
    model.to(device).eval()
    clock.switch("final_eval")
    ctx = evals.EvalContext(
        model, cfg, evals.ProbeData(size, upstream.channels, device), None, run_dir=run_dir
    )
    metrics = evals.evaluate(ctx, final=True)
    append_jsonl(run_dir / METRICS, {"kind": "eval", "step": 0, **metrics})
    return finished(
        cfg,
        model,
        metrics,
        size,
        train_examples=0,
        train_flops_per_image=0.0,
        train_flops=0.0,
        train_images_per_s=None,
        resumed_from_step=None,
        selected_step=0,
        wall_s=time.perf_counter() - t0,
        wall_split=clock.split(),
        device=device_name,
        execution={"compiled": False, "channels_last": False, "precision": precision(device), "data": "none"},
        released={
            "name": loaded.name,
            "file": str(loaded.file),
            "sha256": loaded.sha256,
            "format": loaded.format,
        },
    )


def finished(
    cfg: RunConfig, model: torch.nn.Module, metrics: dict[str, float], size: int, **ran: Any
) -> dict[str, Any]:
    """A finished run's result.json: what every run records of itself (its metrics, model, data and
    evaluation protocol), and `ran`: how this one ran (its training, or the checkpoint it loaded)."""
    return {
        "status": "done",
        "metrics": metrics,
        "params": sum(p.numel() for p in model.parameters()),
        "image_size": size,
        "patch_grid": list(grid) if (grid := token_grid(model)) else None,
        "datasets": record_of_data(cfg),
        "protocol": evals.protocol(cfg),
        "end": time.time(),
        **ran,
    }


def _follow_lead(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """A data-parallel rank other than the lead: the lead's training steps in lockstep, writing
    nothing. The lead alone evaluates the final model and records the result."""
    if (done := read_result(run_dir)) is not None:  # the lead sees it too, and stops
        return done
    if cfg.model.checkpoint:  # nothing trains: the lead evaluates the checkpoint alone (no lockstep to keep)
        return {"status": "done", "rank": distributed.rank()}
    trainer = Trainer(cfg, run_dir)
    trainer.try_resume()
    try:
        trainer.train()
    except Diverged as exc:  # every rank sees the same summed loss
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    return {"status": "done", "rank": trainer.rank}


def record_failure(run_dir: Path, exc: BaseException) -> dict[str, Any]:
    """Write failed.json with the error and traceback. A stop (Ctrl-C, a job's exit, a requeue)
    is not a failure: the run stays interrupted and resumes. If even failed.json cannot be
    written (a full disk), the run also stays interrupted, so the next `vitbench run` retries it."""
    failure = {
        "status": "failed",
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": "".join(traceback.format_exception(exc)),
        "time": time.time(),
    }
    # Not a stop, nor a lost claim, nor a full disk (the run resumes once there is space again).
    if distributed.is_lead() and isinstance(exc, Exception) and storage_error(exc) != "no space":
        try:
            write_json(run_dir / FAILED, failure)
        except OSError as write_error:
            warnings.warn(f"could not record the failure of {run_dir}: {write_error}", stacklevel=2)
    return failure
