"""A 28-day window of the headache diary as a calendar: four weeks of seven cells, each
day's headache compactly (". none, m mild, M moderate, S severe, · unrecorded), hours,
+ for acute medication; days still to come, and days before consent (the diary starts
there: nothing is due before it), dimmed; the cursor reversed. Blinded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.app import RenderResult

    from trialkit.services.diary.entries import DiaryVersion

SEVERITY_MARKS = (".", "m", "M", "S")
UNRECORDED = "·"
CELL = 10


def mark(v: DiaryVersion | None, levels: tuple[str, ...]) -> str:
    """The compact text of one day (without its date)."""
    if v is None:
        return UNRECORDED
    index = levels.index(v.severity) if v.severity in levels else 0
    text = SEVERITY_MARKS[min(index, len(SEVERITY_MARKS) - 1)]
    if v.headache:
        text += f"{v.duration_hours:g}"
    return text + ("+" if v.acute_medication else "")


@dataclass(frozen=True)
class GridState:
    """What the grid shows: the window's first day, its days, today and the cursor."""

    start: date | None
    length: int
    days: dict[date, DiaryVersion]
    levels: tuple[str, ...]
    today: date
    cursor: int
    first: date | None = None  # consent: no diary day before it


class DiaryGrid(Widget):
    """Renders a ``GridState``; the screen owns the keys."""

    DEFAULT_CSS = """
    DiaryGrid { height: auto; width: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.state: GridState | None = None

    def show(self, state: GridState) -> None:
        """Draw this state."""
        self.state = state
        self.refresh(layout=True)

    def render(self) -> RenderResult:
        """Weeks as rows, days as cells."""
        s = self.state
        if s is None:
            return Text("Reading the diary…")
        if s.start is None:
            return Text("This window has not started: it counts from the infusion.")
        out = Text()
        for i in range(s.length):
            day = s.start + timedelta(days=i)
            cell = f"{day:%d} {mark(s.days.get(day), s.levels)}"[: CELL - 1].ljust(CELL - 1)
            early = s.first is None or day < s.first
            style = "dim" if day >= s.today or early else ""
            if i == s.cursor:
                style = "reverse bold"
            elif day in s.days and s.days[day].headache:
                style = "bold"
            out.append(cell, style=style)
            out.append("\n" if i % 7 == 6 and i != s.length - 1 else " ")
        return out

    def get_content_height(self, container: object, viewport: object, width: int) -> int:
        """Four lines for 28 days."""
        s = self.state
        return 1 if s is None or s.start is None else -(-s.length // 7)

    def get_content_width(self, container: object, viewport: object) -> int:
        """Seven cells."""
        return 7 * CELL
