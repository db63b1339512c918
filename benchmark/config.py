"""Typed, frozen run configurations; dotted overrides; canonical JSON and run ids.

A run is fully described by one `RunConfig`. Its id is a hash of the canonical JSON, so the
same config always maps to the same run directory and a finished run is never trained twice
(big_vision's locked config + AlgoPerf's hparam record, in one object).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args, get_origin

from benchmark.errors import UserError

PosEmbed = Literal["none", "1d", "2d", "relative"]
PosInject = Literal["stem", "every_layer", "every_layer_shared"]
Pool = Literal["token", "gap"]
Schedule = Literal["linear", "cosine"]
Representation = Literal["pre_tanh", "post_tanh"]
FinetuneAugment = Literal["none", "inception_flip"]
Interpolation = Literal["bilinear", "bicubic"]

# Metadata of a field added after run ids were first published: at its default it is left out of
# the canonical JSON, so adding it keeps every existing run's id (and its stored results). A field
# that changes what a run computes at its default must not carry it.
ADDED = types.MappingProxyType({"omit_at_default": True})
# Metadata of a section whose fields a run's identity stores flat in the enclosing section, as
# "<section>_<field>": the spelling of run ids published before the section existed.
FLAT = types.MappingProxyType({"flat": True})


@dataclass(frozen=True)
class ModelConfig:
    """The network. `arch` is a variant string: "B/16", "ViT-L/32", "Mu/4" (see benchmark.sizes.SIZES);
    `depth`, `width`, `heads`, `mlp` and `patch` override its parts (benchmark.sizes.resolve_shape)."""

    arch: str = "Mu/4"
    pos_embed: PosEmbed = "1d"
    # App. D.4: once at the stem, a separate embedding before every block, or one shared one.
    pos_inject: PosInject = "stem"
    # App. D.3: read the class token, or average the patch tokens after the final LayerNorm.
    pool: Pool = "token"
    # §3.1: pre-training head = MLP with one tanh hidden layer of width D.
    prelogits: bool = True
    dropout: float = 0.0
    # The encoder's shape, each overriding its part of `arch` (0: take it from `arch`), so an
    # ablation can grid over it (benchmark.sizes.resolve_shape).
    depth: int = 0  # layers
    width: int = 0  # hidden size D
    heads: int = 0  # attention heads; must divide the width
    mlp: int = 0  # MLP hidden size (0: the named size's MLP ratio, 4 for every size, times the width)
    patch: int = 0  # patch size; must divide the image size
    # The ResNet's base width (its stem's channels; 64 in every paper size "RNxK" times K), for BiT
    # ResNets and a hybrid's ResNet stem (0: the named size's), so CPU presets can shrink them.
    resnet_width: int = 0
    # A released checkpoint (benchmark.released.CATALOG, by timm's name) the run starts from instead
    # of pre-training (optim.steps=0); `arch` and the rest say what it is (benchmark.released.model_config).
    checkpoint: str = field(default="", metadata=ADDED)
    # The sha256 of the checkpoint's file, pinned when the run is planned (benchmark.released.pin),
    # so that the run id covers the very file.
    checkpoint_sha256: str = field(default="", metadata=ADDED)


@dataclass(frozen=True)
class DataConfig:
    """The upstream (pre-training) data. `image_size` 0 means the dataset's native size."""

    dataset: str = "mnist0to4"
    image_size: int = 0
    # Use only the first N examples of a fixed seeded permutation of the train split (0 = all).
    train_examples: int = 0
    # "shift": random translation by up to 1/8 of the image (pad + crop); "none": no augmentation.
    augment: Literal["none", "shift"] = "none"


@dataclass(frozen=True)
class OptimConfig:
    """§4.1 / Table 3: AdamW, warm-up then linear (or cosine) decay, clipping at global norm 1."""

    lr: float = 1e-3
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    batch_size: int = 128
    steps: int = 300
    warmup_steps: int = 30
    schedule: Schedule = "linear"
    # The original code decays linearly to 1e-5, not to 0.
    end_lr: float = 1e-5
    clip_norm: float = 1.0
    label_smoothing: float = 0.0


@dataclass(frozen=True)
class FinetuneConfig:
    """The finetune evaluator's settings: fine-tuning a pre-trained model on downstream tasks, the
    paper's transfer protocol (§3.2, App. B.1.1; benchmark.evals.finetune). Set as
    `eval.finetune.steps=...`; a run's identity stores them flat, as `finetune_steps` in `eval`, the
    spelling of the run ids published before this section existed."""

    # The steps, and the learning rates it chooses from on the validation split.
    steps: int = 80
    lrs: tuple[float, ...] = (0.003, 0.01, 0.03)
    # The datasets fine-tuned on (empty: the probe datasets), the resolution (0: the pre-training
    # one; another one resizes the position embeddings by 2-D interpolation of the patch grid,
    # bilinear as the original code did), the batch and the micro-batch its gradients accumulate
    # over (0: the whole batch at once), the linear warm-up, and the training pre-processing
    # (inception crop + horizontal flip, or none).
    datasets: tuple[str, ...] = field(default=(), metadata=ADDED)
    image_size: int = field(default=0, metadata=ADDED)
    batch: int = field(default=64, metadata=ADDED)
    micro_batch: int = field(default=0, metadata=ADDED)
    warmup: int = field(default=0, metadata=ADDED)
    augment: FinetuneAugment = field(default="none", metadata=ADDED)
    interpolation: Interpolation = field(default="bilinear", metadata=ADDED)
    # Table 4's steps differ per dataset: "NAME=STEPS" entries override `steps` for NAME.
    steps_by_dataset: tuple[str, ...] = field(default=(), metadata=ADDED)


@dataclass(frozen=True)
class EvalConfig:
    """Evaluations of the frozen representation (§4.1) and of the upstream head (benchmark/evals)."""

    # Registered evaluators run at the end of training: upstream, fewshot (fixed l2), fewshot_lso
    # (l2 chosen leave-self-out), linear (logistic regression), finetune. See benchmark.evals.
    evaluators: tuple[str, ...] = ("upstream", "fewshot")
    # Probe datasets. Claims are judged on transfer: images (and classes) the model never saw in
    # pre-training; benchmark.data.role says which a dataset is, and each report says so.
    fewshot_datasets: tuple[str, ...] = ("mnist5to9", "digits", "shapes")
    shots: tuple[int, ...] = (1, 5, 10, 25)
    fewshot_seeds: int = 3
    # big_vision's fixed regulariser.
    l2: float = 1024.0
    # The paper-era few-shot features: the pre-logits layer's output before its tanh.
    representation: Representation = "pre_tanh"
    # Also evaluate every N training steps (0: only at the end). Fig. 9 needs the curve.
    every_steps: int = 0
    # The finetune evaluator's settings (benchmark.evals.finetune), its own section.
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig, metadata=FLAT)
    # §4.3: keep the model at its best validation score among the evaluations during training
    # (`every_steps`): the 5-shot few-shot accuracy on the validation splits, averaged over
    # `fewshot_datasets`. The final evaluators then run on that model, and the result says its step.
    early_stop: bool = False
    # What the evaluations during training measure besides the upstream fit (train and test top-1):
    # few-shot transfer on the validation and test splits at every shot count (Fig. 9's curves), or,
    # when False, only the 5-shot validation score that `early_stop` selects on (nothing without it).
    transfer_curves: bool = field(default=True, metadata=ADDED)
    # The dataset whose test images the inspect evaluator measures on (empty: the upstream's test
    # split): a run from a released checkpoint has no upstream images here.
    inspect_images: str = field(default="", metadata=ADDED)


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0

    def replace(self, **dotted: Any) -> RunConfig:
        """Return a copy with dotted-path values replaced: `cfg.replace(**{"optim.lr": 3e-4})`."""
        return apply_overrides(self, dotted)


def steps_for_epochs(epochs: float, examples: int, batch_size: int) -> int:
    """Durations are in steps; this is the one place epochs become steps."""
    return max(1, math.ceil(epochs * examples / batch_size))


# --- canonical form and ids -------------------------------------------------------------


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _identity(obj: Any) -> dict[str, Any]:
    """The fields that name a run: all of them, less ADDED ones at their default."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value) and f.metadata.get("flat"):
            out.update({f"{f.name}_{key}": v for key, v in _identity(value).items()})
        elif dataclasses.is_dataclass(value):
            out[f.name] = _identity(value)
        elif not (f.metadata.get("omit_at_default") and value == _default(f)):
            out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def canonical_json(cfg: RunConfig) -> str:
    """The run's identity as JSON (config.json holds it; from_dict fills the omitted defaults)."""
    return json.dumps(_identity(cfg), sort_keys=True, separators=(",", ":"))


def run_id(cfg: RunConfig) -> str:
    """A short, stable hash of the canonical config: the name of the run's directory."""
    return hashlib.sha256(canonical_json(cfg).encode()).hexdigest()[:12]


def from_dict(data: dict[str, Any], cls: type = RunConfig) -> Any:
    """Rebuild a config from its JSON form; unknown keys are an error (never silently dropped)."""
    hints = typing.get_type_hints(cls)
    data = dict(data)
    for f in dataclasses.fields(cls):  # a flat-stored section: gather its "<section>_<field>" keys
        if f.metadata.get("flat"):
            inner = {
                k.removeprefix(f"{f.name}_"): data.pop(k) for k in list(data) if k.startswith(f"{f.name}_")
            }
            data[f.name] = {**data.get(f.name, {}), **inner}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise UserError(f"unknown config key(s) {sorted(unknown)} for {cls.__name__}; valid: {sorted(names)}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(value, tp)
        else:
            kwargs[name] = _coerce(value, tp, name)
    return cls(**kwargs)


def flatten(cfg: RunConfig) -> dict[str, Any]:
    """{"model.arch": "Mu/4", ..., "seed": 0}: the columns a study's DataFrame gets."""
    out: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(key + ".", value)
            else:
                out[key] = value

    walk("", cfg)
    return out


# --- ranges and rules -------------------------------------------------------------------

# Every numeric field's allowed range, inclusive unless named in EXCLUSIVE (None: unbounded). A
# tuple field's limits apply to each of its items. `check` enforces these plus the cross-field
# rules below, before anything is written; `describe` gives a range as the errors print it.
LIMITS: dict[str, tuple[float | None, float | None]] = {
    "model.dropout": (0.0, 1.0),
    # 0: the named size's (benchmark.sizes.resolve_shape); heads dividing the width is validate_model's.
    "model.depth": (0, None),
    "model.width": (0, None),
    "model.heads": (0, None),
    "model.mlp": (0, None),
    "model.patch": (0, None),
    "model.resnet_width": (0, None),
    "data.image_size": (0, None),  # 0: the dataset's native size
    "data.train_examples": (0, None),  # 0: all of them
    "optim.lr": (0.0, None),
    "optim.weight_decay": (0.0, None),
    "optim.beta1": (0.0, 1.0),
    "optim.beta2": (0.0, 1.0),
    "optim.batch_size": (1, None),
    "optim.steps": (0, None),  # 0: no pre-training, only with model.checkpoint (a rule below)
    "optim.warmup_steps": (0, None),
    "optim.end_lr": (0.0, None),
    "optim.clip_norm": (0.0, None),
    "optim.label_smoothing": (0.0, 1.0),
    "eval.shots": (1, None),
    "eval.fewshot_seeds": (1, None),
    "eval.l2": (0.0, None),
    "eval.every_steps": (0, None),  # 0: only at the end
    "eval.finetune.steps": (1, None),
    "eval.finetune.lrs": (0.0, None),
    "eval.finetune.image_size": (0, None),  # 0: the pre-training resolution
    "eval.finetune.batch": (1, None),
    "eval.finetune.micro_batch": (0, None),  # 0: the whole batch at once
    "eval.finetune.warmup": (0, None),
    # The data order seeds torch generators with seed * 1_000_003 + epoch, which must fit 64 bits.
    "seed": (0, 2**32 - 1),
}
# Bounds that are themselves excluded: a zero learning rate, clip norm or l2 trains or solves
# nothing; dropout, betas or label smoothing of 1 leave no signal (or divide by zero in Adam).
EXCLUSIVE: dict[str, tuple[bool, bool]] = {
    "model.dropout": (False, True),
    "optim.lr": (True, False),
    "optim.beta1": (False, True),
    "optim.beta2": (False, True),
    "optim.clip_norm": (True, False),
    "optim.label_smoothing": (False, True),
    "eval.l2": (True, False),
    "eval.finetune.lrs": (True, False),
}


def describe(key: str) -> str:
    """A field's allowed range in interval notation, e.g. "[0, 1)" or "(0, ∞)"."""
    low, high = LIMITS[key]
    open_low, open_high = EXCLUSIVE.get(key, (False, False))
    left = "(-∞" if low is None else f"{'(' if open_low else '['}{low:g}"
    right = "∞)" if high is None else f"{high:g}{')' if open_high else ']'}"
    return f"{left}, {right}"


def _in_range(key: str, value: float) -> bool:
    low, high = LIMITS[key]
    open_low, open_high = EXCLUSIVE.get(key, (False, False))
    above = low is None or (value > low if open_low else value >= low)
    below = high is None or (value < high if open_high else value <= high)
    return above and below and math.isfinite(value)


def check(cfg: RunConfig) -> None:
    """Refuse a config whose values are out of range or contradict each other (rules that need
    no data; a probe dataset's examples per class are checked where the data is known)."""
    flat = flatten(cfg)
    for key in LIMITS:
        value = flat[key]
        for item in value if isinstance(value, tuple) else (value,):
            if not _in_range(key, item):
                shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
                raise UserError(f"{key}={shown} is out of range: allowed {describe(key)}")
    optim, ev = cfg.optim, cfg.eval
    rules = [
        (
            (optim.steps == 0) == bool(cfg.model.checkpoint),
            f"optim.steps={optim.steps} with model.checkpoint={cfg.model.checkpoint!r}: a run pre-trains "
            "(optim.steps of 1 or more) or starts from a released checkpoint (optim.steps=0), not both",
        ),
        (
            optim.warmup_steps <= optim.steps,
            f"optim.warmup_steps={optim.warmup_steps} exceeds optim.steps={optim.steps}",
        ),
        (
            optim.end_lr <= optim.lr,
            f"optim.end_lr={optim.end_lr} exceeds optim.lr={optim.lr}: the schedule decays",
        ),
        (bool(ev.shots), "eval.shots is empty: give at least one shot count, e.g. eval.shots=1,5"),
        (bool(ev.fewshot_datasets), "eval.fewshot_datasets is empty: name at least one probe dataset"),
        (
            bool(ev.evaluators),
            "eval.evaluators is empty: name at least one, e.g. eval.evaluators=upstream,fewshot",
        ),
        (
            not ev.early_stop or (ev.every_steps > 0 and 5 in ev.shots and "fewshot" in ev.evaluators),
            "eval.early_stop selects on the 5-shot validation accuracy seen during training: it needs "
            "eval.every_steps > 0, 5 in eval.shots and the fewshot evaluator",
        ),
        (
            bool(ev.finetune.lrs) or "finetune" not in ev.evaluators,
            "eval.finetune.lrs is empty but eval.evaluators runs finetune: give the learning rates to try",
        ),
        (
            all(re.fullmatch(r"[^=]+=[1-9][0-9]*", entry) for entry in ev.finetune.steps_by_dataset),
            f"eval.finetune.steps_by_dataset={','.join(ev.finetune.steps_by_dataset)}: each entry is "
            "DATASET=STEPS with STEPS a positive integer, e.g. cifar100=10000,pets=500",
        ),
        (
            ev.finetune.micro_batch == 0 or ev.finetune.batch % ev.finetune.micro_batch == 0,
            f"eval.finetune.micro_batch={ev.finetune.micro_batch} does not divide eval.finetune.batch="
            f"{ev.finetune.batch}: the gradients accumulate over whole micro-batches",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise UserError(message)


# --- overrides -----------------------------------------------------------------------


def parse_overrides(items: list[str]) -> dict[str, str]:
    """["optim.lr=3e-4", ...] -> {"optim.lr": "3e-4"}; values are typed later, per field."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"malformed override {item!r}: expected KEY=VALUE, e.g. optim.lr=3e-4")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Apply dotted-path overrides, rejecting unknown keys and values of the wrong type."""
    for path, value in overrides.items():
        cfg = _set(cfg, path.split("."), value, path)
    return cfg


def valid_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += valid_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def _set(obj: Any, parts: list[str], value: Any, path: str) -> Any:
    hints = typing.get_type_hints(type(obj))
    name = parts[0]
    if name not in hints:
        raise UserError(f"unknown config key {path!r}; valid keys: {', '.join(valid_keys())}")
    tp = hints[name]
    if dataclasses.is_dataclass(tp):
        if len(parts) == 1:
            raise UserError(
                f"{path!r} is a section; set one of its keys, e.g. {path}.{dataclasses.fields(tp)[0].name}=..."
            )
        return dataclasses.replace(obj, **{name: _set(getattr(obj, name), parts[1:], value, path)})
    if len(parts) > 1:
        raise UserError(f"unknown config key {path!r}: {'.'.join(parts[:1])} is not a section")
    return dataclasses.replace(obj, **{name: _coerce(value, tp, path)})


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Turn a CLI string (or a JSON value) into the field's declared type, or fail clearly."""
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise UserError(f"{path}={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")
        return value
    if origin in (tuple,):
        inner = get_args(tp)[0]
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(_coerce(v.strip() if isinstance(v, str) else v, inner, path) for v in items if v != "")
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unsupported config type {tp} at {path}")  # keep configs simple
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "1", "yes"):
                return True
            if str(value).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if isinstance(value, str):
                return int(float(value)) if "e" in value.lower() and float(value).is_integer() else int(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if not isinstance(value, str):
                raise ValueError
            return value
    except ValueError:
        raise UserError(f"{path}={value!r} is not a valid {tp.__name__}") from None
    raise TypeError(f"unsupported config type {tp} at {path}")
