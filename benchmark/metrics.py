"""Metric names: the one place the keys of result.json are spelt, for the evaluators that write
them and the studies that read them (`fewshot/<dataset>/<k>shot`, `finetune/<dataset>/top1`).

A key is `<evaluator>/<dataset>/<measure>`, with `/val` appended for the validation split and
`/seed<i>` for one probe-sampling seed. Bare keys are test-split means: the numbers verdicts judge.
Validation keys are what studies select hyper-parameters on (never the judged number itself).
"""

from __future__ import annotations

UPSTREAM_TOP1 = "upstream/test_top1"
# The pre-training head's top-1 on a fixed sample of the run's own training images: with the test
# top-1, how well the model fits its upstream data (benchmark.fit reads both along the curve).
UPSTREAM_TRAIN_TOP1 = "upstream/train_top1"
POSITION_TOP1 = "position/quadrants/top1"  # the position-only probe (benchmark.evals.position)


def key(evaluator: str, dataset: str, measure: str, split: str = "test", seed: int | None = None) -> str:
    """e.g. key("fewshot", "digits", "5shot", "val") -> "fewshot/digits/5shot/val"."""
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    parts = [evaluator, dataset, measure]
    if split == "val":
        parts.append("val")
    if seed is not None:
        parts.append(f"seed{seed}")
    return "/".join(parts)


def fewshot(
    dataset: str, shots: int, split: str = "test", seed: int | None = None, protocol: str = "fewshot"
) -> str:
    """The linear few-shot accuracy key; `protocol` "fewshot_lso" for the leave-self-out l2."""
    return key(protocol, dataset, f"{shots}shot", split, seed)
