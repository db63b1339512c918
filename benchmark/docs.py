"""Write studies/README.md, the study API on one page, and the README's generated fragments:
`python -m benchmark.docs`.

The config reference (fields, types, defaults, ranges, the comments beside each field), what each
preset's base builds, the Verdict fields, the paper's sources and the stats helpers are generated
from the code, so the page cannot drift; so are the README's fragments between `<!-- generated:
NAME -->` markers (the Slurm session's run counts). tests/test_docs.py checks that both are
current, runs the page's example study through the studies' own tests, and checks the README's
other numbers against the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import tempfile
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from benchmark import config, data, plan, presets, stats
from benchmark.data import formats
from benchmark.data.specs import PAPER
from benchmark.paper import paper_values
from benchmark.sizes import RESNET_DEPTHS, SIZES, STAGE_STRIDES, resolve_model
from benchmark.study import REQUIRED, Verdict, load_study

PAGE = Path(__file__).resolve().parent.parent / "studies" / "README.md"
# The project's README: the fragments between `<!-- generated: NAME -->` and `<!-- end NAME -->`
# are written from the code (readme_fragments); the rest is prose, checked by tests/test_docs.py.
README = PAGE.parent.parent / "README.md"
FRAGMENT = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end \2 -->)", re.S)

# What each Verdict field holds and in which unit; the test fails when Verdict gains a field
# that is not described here.
VERDICT_FIELDS = {
    "claim": "the claim in a few words, as the verdict table shows it",
    "paper": "the paper's evidence, with its numbers, e.g. `1-D 64.2 vs none 61.4 (+2.8)`",
    "measured": "ours, with the spread over seeds and the seed count",
    "outcome": "`reproduced`, `contradicted` or `inconclusive` (`judge.judge` decides it; `judge.inconclusive(claim, reason)` when nothing can be judged)",
    "reason": "why this outcome, in words, e.g. `interval [-6.7, +3.9] is wider than the whole ±0.5 margin`",
    "rule": "the test, its level and the decision rule, so a reader can dispute it",
    "predicted": "the predicted effect (or parity margin) and how it was derived from the paper's numbers",
    "observed": "the deciding comparison's estimate, in the statistic's units (NaN: none)",
    "interval": "its 90% interval (the two one-sided 95% bounds)",
    "expected": "the predicted effect (or margin) in the statistic's units",
    "mde": "the minimum detectable effect at the seeds it had (80% power, α = 0.05)",
    "power": "the chance of `reproduced` if the predicted effect is true",
    "evidence": "the statistics behind it: per comparison the estimate, interval, test and seeds",
    "judged_on": "the metric and the data it was measured on (transfer or upstream), e.g. `transfer 5-shot, test split`",
    "note": "measured context; explanations labelled as hypotheses",
    "unit": '`"pts"`: accuracies (fractions printed in points, ×100); `"×"`: log2 ratios printed as ratios; any other unit as is',
    "control": "`True` for a positive control: an effect known to exist, judged first; if it is not reproduced the study is unreliable at that preset",
    "parity": '`True` for a "differ little" claim: `expected` is then its equivalence margin',
    "power_at": "a threshold claim (`Prediction.power_at` set): the effect its power is stated at, `expected` being the threshold to clear; NaN otherwise",
}

EXAMPLE = '''\
"""Depth ablation (Fig. 8, the depth axis): a deeper encoder transfers better.

Run:   vitbench run depth [--preset smoke|cpu]
Cost:  6 runs of ViT-Mu/7 with 2 or 4 layers at each preset; `vitbench plan depth --preset P`
       estimates the time on your machine.
Claim: of the dimensions Fig. 8 scales, depth helps most; here: 4 layers transfer better than 2.
"""

import matplotlib.pyplot as plt
import seaborn as sns

from benchmark.judge import Prediction, inconclusive, judge
from benchmark.presets import base, grid, product, transfer_mean
from benchmark.stats import cell_summary, difference, too_few_seeds

TITLE, REFERENCE = "Depth ablation", "Fig. 8"
CLAIM = "Of the model dimensions scaled in Fig. 8, depth gives the largest improvement."
PRESETS = {
    "smoke": "a check of the pipeline, 3 seeds per depth",
    "cpu": "a laptop-scale ablation on 2 CPU cores, 3 seeds per depth",
}
CELL = ("model.depth",)
JUDGED = "transfer 5-shot"  # mean over the transfer datasets: images the model never saw


def runs(preset):
    return grid(base(preset), product(**{"model.depth": [2, 4]}), seeds=range(3))


def table(df):
    df = df.assign(**{JUDGED: transfer_mean(df)})
    return cell_summary(df, CELL, JUDGED).rename(f"{JUDGED} (%)").reset_index()


def checks(df):
    df = df.assign(**{JUDGED: transfer_mean(df)})
    cells = {d: df.loc[df["model.depth"] == d, JUDGED] for d in (2, 4)}
    claim = "4 layers transfer better than 2"
    if reason := too_few_seeds({f"depth {d}": v for d, v in cells.items()}):
        return [inconclusive(claim, reason)]
    return [
        judge(
            [difference(cells[4], cells[2], "depth 4 − depth 2")],
            # Fixed before the data: Fig. 8 plots depth's gain without tabulating it, so this
            # example predicts one point and says that it is an assumption.
            Prediction(0.01, "Fig. 8 plots but does not tabulate depth's gain: 1 pt, our assumption"),
            claim=claim,
            paper="Fig. 8: depth scales best",
            measured=f"{cells[4].mean():.1%} vs {cells[2].mean():.1%}",
            rule="Welch t, α = 0.05",
            judged_on=f"{JUDGED}, test split",
        )
    ]


def figures(df, curves):
    data = df.assign(**{JUDGED: transfer_mean(df)})[[*CELL, "seed", JUDGED]]
    fig, ax = plt.subplots(figsize=(4, 3))
    sns.pointplot(data=data, x="model.depth", y=JUDGED, errorbar="sd", ax=ax)
    return {"depth": (fig, data)}
'''


def _field_comments(cls: type) -> dict[str, str]:
    """The comments written above (and beside) each field of a config dataclass."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("# "))
        elif match := re.match(r"(\w+): [^=]+=[^#]*(?:#\s*(.*))?$", stripped):
            # A field's own comment first, then the comment above it (which may speak for a group).
            comments[match[1]] = ". ".join(part for part in (match[2], " ".join(pending)) if part)
            pending = []
        else:
            pending = []
    return comments


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "str"
    if typing.get_origin(tp) is tuple:
        return f"tuple[{_type_name(typing.get_args(tp)[0])}, ...]"
    return tp.__name__


def _allowed(key: str, tp: Any) -> str:
    if key in config.LIMITS:
        return f"each in {config.describe(key)}" if typing.get_origin(tp) is tuple else config.describe(key)
    if typing.get_origin(tp) is Literal:
        return ", ".join(f"`{c}`" for c in typing.get_args(tp))
    if key == "model.arch":
        return (
            f"ViT `SIZE/PATCH` (SIZE one of {', '.join(SIZES)}), BiT ResNet `R<depth>x<K>` (depth one of "
            f"{', '.join(map(str, RESNET_DEPTHS))}) or hybrid `R<depth>x<K>+SIZE/STRIDE` (STRIDE one of "
            f"{', '.join(map(str, STAGE_STRIDES))})"
        )
    if key in ("data.dataset", "eval.fewshot_datasets"):
        return dataset_names()
    return "–"


def _codes(names: Iterable[Any]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def dataset_names() -> str:
    """Every dataset name a config accepts, by where its images come from (benchmark.data)."""
    return (
        f"shipped: {_codes(data.SOURCES)}; rendered: `fractal<C>x<K>[@PX]`; on disk (`--data-root`): "
        f"{_codes(formats.named())}, `folder:<path>`, each with an optional `@PX`; planned and priced "
        f"only: {_codes(n for n in PAPER if n not in formats.named())}"
    )


def _default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def config_reference() -> str:
    """One table per config section (a nested one, e.g. `eval.finetune`, after its parent): key,
    type, default, allowed values, meaning."""
    sections = []
    hints = typing.get_type_hints(config.RunConfig)
    top = [f for f in dataclasses.fields(config.RunConfig) if not dataclasses.is_dataclass(hints[f.name])]
    todo = [(f.name, hints[f.name]) for f in dataclasses.fields(config.RunConfig) if f not in top]
    while todo:
        name, cls = todo.pop(0)
        rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        comments = _field_comments(cls)
        nested = []
        for f, tp in zip(dataclasses.fields(cls), typing.get_type_hints(cls).values(), strict=True):
            key = f"{name}.{f.name}"
            if dataclasses.is_dataclass(tp):
                nested.append((key, tp))
                continue
            rows.append(
                f"| `{key}` | {_type_name(tp)} | `{_default(f.default)}` | {_allowed(key, tp)} "
                f"| {comments.get(f.name, '')} |"
            )
        doc = " ".join((inspect.getdoc(cls) or "").split())
        sections.append(f"### `{name}`\n\n{doc}\n\n" + "\n".join(rows))
        todo[:0] = nested  # right after its parent
    for f in top:
        sections.append(
            f"### `{f.name}`\n\n{_type_name(hints[f.name])}, default `{f.default}`, "
            f"allowed {_allowed(f.name, hints[f.name])}: the run's seed (initialisation and data order)."
        )
    return "\n\n".join(sections)


def _model_text(cfg: config.ModelConfig) -> str:
    shape = resolve_model(cfg)
    parts = []
    if shape.resnet_layers:
        parts.append(f"ResNet blocks {shape.resnet_layers}, base width {shape.resnet_width}")
    if shape.vit:
        v = shape.vit
        stride = "total stride" if shape.resnet_layers else "patch"
        parts.append(
            f"{v.depth} layers, width {v.width}, MLP {v.mlp}, {v.heads} heads, {stride} {shape.patch}"
        )
    return f"`{cfg.arch}`: " + "; ".join(parts)


def preset_bases() -> str:
    """What `base(preset)` builds at each preset, from benchmark.presets.BASES."""
    rows = [
        "| preset | model | upstream data | training | few-shot probes |",
        "|---|---|---|---|---|",
    ]
    for preset, cfg in presets.BASES.items():
        d, o, e = cfg.data, cfg.optim, cfg.eval
        upstream = f"`{d.dataset}`" + (
            f", first {d.train_examples:,} training images" if d.train_examples else ""
        )
        upstream += f", resized to {d.image_size} px" if d.image_size else ""
        upstream += f", augment `{d.augment}`" if d.augment != "none" else ""
        training = (
            f"{o.steps:,} steps of batch {o.batch_size:,} ({o.steps * o.batch_size:,} images), lr {o.lr:g}, "
            f"{o.warmup_steps:,} warm-up, {o.schedule} decay, weight decay {o.weight_decay:g}"
        ) + (f", dropout {cfg.model.dropout:g}" if cfg.model.dropout else "")
        if cfg.model.checkpoint:
            training = f"none: each run names a released checkpoint (`{cfg.model.checkpoint}` here)"
            upstream += " (named: the checkpoints' own, never read)"
        probes = f"{_codes(e.fewshot_datasets)}; {_default(e.shots)}-shot, {e.fewshot_seeds} seeds"
        rows.append(f"| `{preset}` | {_model_text(cfg.model)} | {upstream} | {training} | {probes} |")
    return "\n".join(rows)


def verdict_reference() -> str:
    hints = typing.get_type_hints(Verdict)
    rows = ["| field | type | what it holds |", "|---|---|---|"]
    for f in dataclasses.fields(Verdict):
        tp = hints[f.name]
        name = getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
        name = name.replace("|", "\\|")  # a union's bar would end the Markdown cell
        rows.append(f"| `{f.name}` | `{name}` | {VERDICT_FIELDS[f.name]} |")
    return "\n".join(rows)


def paper_sources() -> str:
    rows = ["| `source` | rows | models | metrics |", "|---|---|---|---|"]
    df = paper_values()
    for source, group in df.groupby("source", sort=True):
        models = ", ".join(sorted(group["model"].dropna().unique()))
        metrics = ", ".join(f"`{m}`" for m in sorted(group["metric"].dropna().unique()))
        rows.append(f"| `{source}` | {len(group)} | {models} | {metrics} |")
    return "\n".join(rows)


def stats_helpers() -> str:
    items = []
    for name, func in inspect.getmembers(stats, inspect.isfunction):
        if func.__module__ == stats.__name__ and not name.startswith("_"):
            doc = " ".join((inspect.getdoc(func) or "").split("\n\n")[0].split())
            call = f"{name}({', '.join(inspect.signature(func).parameters)})"
            items.append(f"- `{call}`" + (f": {doc}" if doc else ""))
    return "\n".join(items)


def render() -> str:
    return f"""# Writing a study: the API on one page

<!-- Generated by `python -m benchmark.docs` from the code; edit benchmark/docs.py, not this page. -->

A study is one file in this folder, found by its name (no registry to edit); the test suite
smoke-runs it. It is data and checks only: it never imports training code. It has a module
docstring and defines {", ".join(f"`{name}`" for name in REQUIRED)}:

| name | what it is |
|---|---|
| module docstring | required (the contract test fails without it): the title line, `Run:` the command, `Cost:` per preset, `Claim:` |
| `TITLE`, `REFERENCE` | one line each; the paper's figure or table, e.g. `"Table 8 / App. D.4"` |
| `CLAIM` | the paper's claim in one or two sentences |
| `PRESETS` | `{{preset: what that scale is}}`; `smoke` (the test suite runs it) and `cpu` (what `vitbench run STUDY` runs) are required, `gpu` and `paper` optional |
| `CELL` | the config columns that name a cell; seeds repeat a cell |
| `runs(preset)` | `list[RunConfig]`: every run of the preset, plain Python over typed configs |
| `table(df)` | a DataFrame: our numbers beside the paper's |
| `checks(df)` | `list[Verdict]`: the claim judged on our results |
| `figures(df, curves)` | `{{name: (matplotlib Figure, DataFrame of the data it plots)}}` |

Optional, for the scorecard's view of each claim across scale (`benchmark.ladder`):

| name | what it is |
|---|---|
| `PAPER_POINTS` | `{{claim text: PaperPoint(effect, compute, source)}}`: the paper's own effect for a claim (a verdict whose claim starts with the text), in the verdict's units, and the pre-training FLOPs it was measured at (NaN where the paper states none); the claim's chart draws it beside our presets |
| `points(df)` | one row per run for the scaling fits: `run_id`, `family`, `seed`, `compute` (training FLOPs), `images` (pre-training images), `accuracy` (the judged metric) and `fit_ok` (the fit gate) |

`df` has one row per finished run: `run_id`, the flattened config (`model.arch`, `optim.lr`, …,
`seed`), every final metric (`upstream/test_top1`, `fewshot/<dataset>/<k>shot`, …) and
what each run recorded about itself (`results.RESULT_COLUMNS`: `wall_s`, `train_flops`,
`params`, `image_size`, `patch_grid`, `train_examples`, and the `datasets` and `protocol` records
the report describes the data and the evaluations from). `curves` has the evaluations logged
during training (`eval.every_steps`), one row per run and step.

## A complete minimal study: a depth ablation

Save as `studies/depth.py` and run `vitbench run depth --preset smoke` ({len(EXAMPLE.splitlines())}
lines; the test suite runs this very text).

```python
{EXAMPLE}```

Check it, then run it:

```bash
pytest tests/test_studies.py -k depth -m "not slow"   # the contract: docstring, names, presets, runs (seconds)
pytest tests/test_studies.py -k depth                 # also its smoke run end to end and the report rebuilt
vitbench run depth --preset smoke
```

`-k` selects by substring: the tests of a study are named `test_…[depth]`, so `-k depth` also
selects any other study whose name contains `depth`.

## What `base(preset)` builds

The preset's shared protocol, a `RunConfig`, from `benchmark.presets.BASES`: a study takes it and
changes only what it ablates (`grid`, `product`, `cfg.replace`). A preset without a base is an
error, never a silent fall-back.

{preset_bases()}

Every base probes datasets that are transfer for its upstream data: images (and, for MNIST,
classes) never seen in pre-training. `benchmark.data.role` computes that from the datasets'
sources and classes, every run records it, and each report prints it.

## Config fields

Set in `runs()` with `RunConfig(...)` / `cfg.replace(**{{"optim.lr": 3e-4}})`, or for every run
from the command line with `--set optim.lr=3e-4` (tuples comma-separated: `--set eval.shots=1,5`).
Every field is part of the run id. Out-of-range values and contradictions (e.g.
`optim.warmup_steps` > `optim.steps`) are refused before anything is written.

{config_reference()}

## `Verdict` (benchmark.study)

{verdict_reference()}

A verdict's `outcome` is computed from `df` against a prediction fixed before the data, and
every number in `measured`, `reason` and `note` is formatted from `df`, the config or the paper's
numbers, never typed in, so it stays true under `--set`.

## The paper's numbers: `paper_values`

`benchmark.paper.paper_values(**filters)` returns the rows of `benchmark/paper_values.csv`
(columns: source, model, pretrain, eval, metric, value, epochs, exaflops, variant, note)
filtered by column equality, e.g. `paper_values(source="table8")`; `parse_variant` splits its
`variant` column (`"pos_embed=1d;inject=stem"`). A study takes the paper's numbers from here,
never from literals. Sources:

{paper_sources()}

**Adding the paper's numbers for a new claim.** Append one row per number to
`benchmark/paper_values.csv` (the package reads it in place after `pip install -e .`; existing rows
are facts: never edit them):

- `source`: the figure or table, lower case without spaces (`fig8`, `table8`): what a study filters on;
- `model` as the paper names it (`ViT-B/16`, `R50x1+ViT-B/16`); `pretrain` and `eval`: the datasets,
  as the paper names them, `unstated (... likely)` where it leaves them open, `-` where none applies;
- `metric`: the measure, its unit in its name: `..._pct` in percent (`finetune_top1_pct` 88.55),
  otherwise a fraction (`fewshot5_linear_top1` 0.64206), or a count (`params`);
- `value`; `epochs` and `exaflops` where the paper gives them, else empty;
- `variant`: the setting that tells the rows of one source apart, as `key=value;key=value`
  (`parse_variant` reads it: `"pos_embed=1d;inject=stem"`);
- `note`: anything a referee needs, e.g. that a value is read off a plot, with its precision.

Then `paper_values(source="fig8")` returns them, `python -m benchmark.docs` adds the source to
the table above (tests/test_docs.py fails until it does), and the study's `paper=` text and
`table()` format them, never retype them.

## Figures

`figures(df, curves)` returns `{{name: (Figure, DataFrame)}}`; the report writes each as
`name.png` (150 dpi), `name.pdf` (vector) and `name.csv` (the DataFrame: exactly the data
plotted), in the paper's style (seaborn `paper` context, white grid) and byte-identical when
rebuilt. Plot seeds as points and cells as means, and put the paper's values beside ours
where it has them.

## The study kit

- `benchmark.presets`: `base(preset)` is the preset's shared protocol (tabled above; `UPSTREAM` =
  `{presets.UPSTREAM}`, `TRANSFER` = {_codes(presets.TRANSFER)}, `PAPER_TRANSFER` =
  {_codes(presets.PAPER_TRANSFER)}). `grid(base, cells, seeds)` makes one run per cell and seed;
  `product(**axes)` makes the cells of a full grid; `transfer_mean(df, shots=5, split="test")` is
  the judged number (select on `split="val"`, judge on `"test"`).
- `benchmark.metrics`: the metric keys, `fewshot(dataset, shots, split, seed, protocol)` and
  `key(evaluator, dataset, measure, split)`; `/val` keys are for choices, bare keys are the test split.
- `benchmark.evals`: evaluators the config names in `eval.evaluators` (`upstream`, `fewshot`,
  `fewshot_lso`, `linear`, `finetune`, `position`, `inspect`); a new one is one module with a
  `@register(name, describe, owns=(its EvalConfig fields), check=...)` function that returns
  `{{metric key: value}}`. Where a new evaluator, dataset format, model family or executor goes: the
  README's "Where each kind of thing goes".
- `benchmark.judge`: `judge(comparisons, Prediction(effect, derivation), claim=..., paper=...,
  measured=..., rule=..., judged_on=...)` turns the comparisons of one claim into one of three
  outcomes. **Reproduced**: every comparison's one-sided 95% bound clears the null in the predicted
  direction (`Prediction(margin, ..., parity=True)`: every 90% interval lies inside ±margin).
  **Contradicted**: some comparison lies significantly below the predicted effect (Holm across
  them), or, for parity, beyond the margin. **Inconclusive**: neither; the verdict says why, with
  the minimum detectable effect and the power at the predicted effect. Derive the prediction from
  the paper's numbers before the data, e.g. `above_chance(paper_gap, paper_level, paper_chance,
  our_level, our_chance)`; `under_trained(df, cells)` says when a compared model has not fit its
  upstream data; `control=True` marks a positive control. An optional `power(preset, noise)`
  returns each claim's design (`benchmark.power.planned`), which `vitbench plan` prints.

## Stats helpers (benchmark.stats)

One noise model: a difference of two cells is `difference(a, b, name)` (Welch's standard error
and degrees of freedom); "a and b differ little" is judged by TOST against a margin fixed before
the data, never by the absence of a significant difference; cells need `MIN_SEEDS` =
{stats.MIN_SEEDS} seeds; rank agreement and compute fronts are judged on bootstrap draws. The
error rates of every rule (false reproduced, false contradicted, power) are measured by null
simulations in `tests/test_judge.py` and `tests/test_stats.py`.

{stats_helpers()}
"""


def slurm_example(study: str = "pos_embed", preset: str = "gpu", job: int = 81234) -> str:
    """The README's Slurm session, with the lines `vitbench run` prints for it on empty results."""
    with tempfile.TemporaryDirectory() as empty:
        the_plan = plan.make_plan(load_study(study), preset, {}, Path(empty))
    flags = f"{study} --preset {preset}"
    return f"""```bash
vitbench run {flags} --executor slurm --partition gpu --gpus 1 --cpus 8 --mem-gb 32 --time 240
# {plan.summary(the_plan, "on the slurm executor")}
# cost of what is left to run: … (the bill, as `vitbench plan` prints it)
# Submitted Slurm job array {job}: jobs {job}_0 … {job}_{len(the_plan.todo) - 1}, one per run.
vitbench status {flags}      # every run: state, step, time, who trains it, requeues, why it failed
vitbench cancel {flags}      # scancel the study's jobs; their runs resume on the next `vitbench run`
vitbench report {flags}      # once all are done
```
"""


def verdicts_example(study: str = "pos_embed", preset: str = "cpu") -> str:
    """What `vitbench run STUDY` printed at its end, read from the committed report's verdicts."""
    from benchmark.console import VERDICT_HEADERS, text_table

    verdicts = pd.read_csv(README.parent / "reports" / study / preset / "verdicts.csv", keep_default_na=False)
    table = text_table(VERDICT_HEADERS, verdicts[["claim", "outcome", "effect"]].values.tolist())
    return f"```\n{table}\nReport: results/reports/{study}/{preset}/report.md\n```\n"


def readme_fragments() -> dict[str, str]:
    """The README's generated fragments, by marker name."""
    return {"slurm-example": slurm_example(), "verdicts-example": verdicts_example()}


def render_readme(text: str) -> str:
    """The README `text` with each generated fragment rewritten from the code."""
    fragments = readme_fragments()
    return FRAGMENT.sub(lambda m: m[1] + fragments[m[2]] + m[4], text)


def main() -> None:
    PAGE.write_text(render())
    print(f"Wrote {PAGE}")
    README.write_text(render_readme(README.read_text()))
    print(f"Wrote the generated fragments of {README}")


if __name__ == "__main__":
    main()
