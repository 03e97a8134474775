"""Console output shared by the stages: rich progress (rate, ETA) on stderr; silent on non-zero ranks."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


def console(is_main: bool = True) -> Console:
    return Console(stderr=True, quiet=not is_main)


class RateColumn(ProgressColumn):
    """Items per second, with the task's unit (img, records, step)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed or 0:>7.1f} {task.fields.get('unit', 'it')}/s")


def progress(log: Console, *extra: ProgressColumn) -> Progress:
    return Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), *extra, console=log)
