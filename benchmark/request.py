"""A user's request (a study, a preset, --set overrides, the folders) checked and turned into a
plan: every check on the input happens here, before anything is written, so each command of the
CLI makes one call and prints what it gets back.

Runs about to be trained (or priced) are also checked against the data, the models and the
evaluators; a command that only reads stored results (status, cancel, report) loads none of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from benchmark import plan
from benchmark.config import RunConfig, check, parse_overrides
from benchmark.errors import UserError
from benchmark.study import Study, list_studies, load_study


def reports_folder(results: Path, reports: Path | None) -> Path:
    """Check --results and --reports name folders (or nothing yet); return the reports folder.

    A user's reports go under the results folder by default, which git ignores, so running a
    study never rewrites the committed reference reports in reports/ (see README)."""
    reports = reports or Path(os.environ.get("VITBENCH_REPORTS") or results / "reports")
    for flag, folder in (("--results", results), ("--reports", reports)):
        # The nearest existing path must be a folder, or nothing can be created under it.
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise UserError(
                f"{flag} {folder}: {existing} is a file, not a folder; give a folder (created if missing)"
            )
    return reports


def study_plan(
    study: str,
    preset: str,
    sets: Sequence[str],
    results: Path,
    *,
    to_train: bool = False,
    retry_failed: bool = False,
) -> plan.Plan:
    """The study's runs, their states and what is left to do, after every check on the input
    (the overrides are parsed here, once, and travel in the plan). Nothing is written: garbage in
    the results folder is named in the plan and moved aside by `plan.prepare` alone."""
    the_plan = plan.make_plan(
        load_study(study), preset, parse_overrides(list(sets)), results, retry_failed=retry_failed
    )
    for cfg in {r.run_id: r.cfg for r in the_plan.runs}.values():
        check(cfg)  # ranges and cross-field rules
        if to_train:
            validate(cfg)
    return the_plan


def every_study_plan(preset: str, sets: Sequence[str], results: Path) -> list[tuple[Study, plan.Plan | None]]:
    """`vitbench plan --all`: every study with its plan at `preset`, checked as `study_plan` checks
    one to be trained, or None for a study that has no such preset. Every study is loaded and
    planned before the CLI prints any of them, so bad input is the one line and nothing else."""
    studies = [load_study(name) for name in list_studies()]
    if not any(preset in study.presets for study in studies):
        presets = dict.fromkeys(name for study in studies for name in study.presets)
        raise UserError(f"no study has a preset {preset!r}; valid: {', '.join(presets)}")
    plans = {
        study.name: study_plan(study.name, preset, sets, results, to_train=True)
        for study in studies
        if preset in study.presets
    }
    return [(study, plans.get(study.name)) for study in studies]


def validate(cfg: RunConfig) -> None:
    """Reject what the data, the models and the evaluators cannot do, before anything is written:
    every rule between the model, its upstream and its probe data (`evals.check`). Needs no data
    that cannot be read here (the paper's datasets are planned and priced by shape)."""
    from benchmark import data, evals
    from benchmark.models import validate_model

    data.check_name(cfg.data.dataset)
    validate_model(cfg.model)
    evals.check(cfg)


def ready_to_train(the_plan: plan.Plan, download: bool = False) -> plan.Plan:
    """What the runs left to do read must be here: with `download`, the missing on-disk datasets
    and released checkpoints are fetched first (the plan is then made again, pinned to the files
    fetched, and returned); then each run's upstream, probe and fine-tuning datasets must be found
    (JFT-300M never is), and a released checkpoint's file must be the one it was pinned to, whole
    and of its architecture, or the one-line error comes before any run folder is written."""
    from benchmark import data, evals, released

    configs = {r.run_id: r.cfg for r in the_plan.todo}.values()
    if download:
        _download_missing({name for cfg in configs for name in datasets_of(cfg)})
        fetched = [released.fetch_missing(cfg) for cfg in configs if cfg.model.checkpoint]
        if any(fetched):
            the_plan = plan.again(the_plan)
            configs = {r.run_id: r.cfg for r in the_plan.todo}.values()
    for cfg in configs:
        if cfg.model.checkpoint:
            released.require(cfg)
        for name in datasets_of(cfg):
            data.describe(name)  # an in-memory dataset is decoded here: a bad image is named now
        evals.check(cfg)  # again, now with every dataset present: its classes and channels are known
    return the_plan


def datasets_of(cfg: RunConfig) -> tuple[str, ...]:
    """The datasets a run reads: its upstream (not a released checkpoint's: it pre-trains nothing),
    the images it inspects, its probe datasets and, where it fine-tunes, its fine-tuning datasets."""
    upstream = () if cfg.model.checkpoint else (cfg.data.dataset,)
    inspected = (cfg.eval.inspect_images,) if cfg.eval.inspect_images else ()
    from benchmark.evals import finetuned

    return tuple(dict.fromkeys((*upstream, *inspected, *cfg.eval.fewshot_datasets, *finetuned(cfg))))


def _download_missing(names: set[str]) -> None:
    """Fetch each on-disk dataset that is not found, through torchvision's downloaders."""
    from benchmark import data
    from benchmark.data import formats

    for name in sorted(names):
        if not formats.is_format(name):
            continue
        try:
            data.describe(name)
        except UserError:
            print(f"downloading {name} into {formats.data_root()} ...", flush=True)
            formats.download(name, formats.data_root())
