"""The live display of a study's runs: a bar per run in progress, a line per finished run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

if TYPE_CHECKING:
    from benchmark.dispatch import Outcome, Task


class Display:
    """Runs done/total, and one bar per run in progress with its loss and images/s (TTY only);
    a plain line per finished run everywhere, so logs of non-interactive runs stay readable."""

    def __init__(self, total: int, done: int) -> None:
        self.interactive = sys.stderr.isatty()
        self.total = total
        self.done = done
        self.overall = tqdm(total=total, initial=done, desc="runs", unit="run", disable=not self.interactive)
        self.bars: dict[Path, tqdm] = {}

    def update(self, task: Task, progress: dict[str, Any] | None) -> None:
        """Show a run's progress; its bar appears once it has any (a queued job shows none)."""
        if not progress:
            return
        bar = self.bars.get(task.run_dir)
        if bar is None:
            bar = self.bars[task.run_dir] = tqdm(
                total=task.cfg.optim.steps,
                desc=task.label[:48],
                unit="step",
                leave=False,
                position=len(self.bars) + 1,
                disable=not self.interactive,
            )
        bar.n = int(progress.get("step", 0))
        if "loss" in progress:
            bar.set_postfix(
                loss=f"{progress['loss']:.3f}", img_s=f"{progress.get('img_per_s', 0):.0f}", refresh=False
            )
        elif "phase" in progress:
            bar.set_postfix_str(progress["phase"], refresh=False)
        bar.refresh()

    def finish(self, outcome: Outcome) -> None:
        bar = self.bars.pop(outcome.task.run_dir, None)
        if bar is not None:
            bar.close()
        self.done += 1
        self.overall.update(1)
        result = outcome.result
        if outcome.status == "done":
            metrics = result.get("metrics", {})
            shown = ", ".join(f"{k}={v:.3f}" for k, v in list(metrics.items())[:3])
            detail = f"{shown} ({result.get('wall_s', 0):.0f} s)"
        elif outcome.status == "busy":
            owner = result.get("owner") or {}
            skipped = f"skipped: pid {owner.get('pid')} on {owner.get('host')} is training it"
            detail = f"stopped, {result['claim_lost']}" if result.get("claim_lost") else skipped
        elif outcome.status == "unwritable":
            detail = f"not written ({result.get('storage')}): {result.get('error')}; it resumes once writable"
        else:
            detail = f"FAILED: {result.get('error', 'unknown error')}"
        tqdm.write(f"[{self.done}/{self.total}] {outcome.task.label}: {detail}")

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.overall.close()
