"""The participants list as the TUI holds it: every participant the user may see, read once,
filtered in memory as the user types, and shown one page at a time, so that neither a
keystroke nor a 20,000-participant trial fills a table of thousands of rows. No Textual."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trialkit.services.enrolment.participants import ParticipantFilter

if TYPE_CHECKING:
    from trialkit.services.enrolment.participants import ParticipantView

PAGE_ROWS = 100


class ParticipantPages:
    """Participants in list order, the filter over them and the page shown.

    Until the whole list has been read (``complete``), it holds the first page the database
    returned for the filter it was asked with; filtering again then needs the database."""

    def __init__(self, rows: Sequence[ParticipantView] = (), *, complete: bool = False,
                 wanted: ParticipantFilter | None = None, page_rows: int = PAGE_ROWS) -> None:
        self.page_rows = page_rows
        self.complete = complete
        self.wanted = wanted or ParticipantFilter()
        self._rows = list(rows)
        self._matching = [v for v in self._rows if self.wanted.matches(v)]
        self.page = 0

    @property
    def matching(self) -> int:
        """How many participants pass the filter (of those held)."""
        return len(self._matching)

    @property
    def pages(self) -> int:
        """How many pages the matching participants fill (at least one, maybe empty)."""
        return max(1, -(-len(self._matching) // self.page_rows))

    def refilter(self, wanted: ParticipantFilter) -> bool:
        """Apply another filter to the list held, back on the first page. False when the
        list is not complete: only the database can answer then."""
        if not self.complete:
            return False
        self.wanted = wanted
        self._matching = [v for v in self._rows if wanted.matches(v)]
        self.page = 0
        return True

    def shown(self) -> list[ParticipantView]:
        """The participants on the current page."""
        start = self.page * self.page_rows
        return self._matching[start:start + self.page_rows]

    def turn(self, step: int) -> bool:
        """Move ``step`` pages on (back if negative); whether the page changed."""
        page = min(max(self.page + step, 0), self.pages - 1)
        changed, self.page = page != self.page, page
        return changed

    def show_page_of(self, pid: str) -> bool:
        """Move to the page holding ``pid``; whether it is among the matching ones."""
        for i, v in enumerate(self._matching):
            if v.id == pid:
                self.page = i // self.page_rows
                return True
        return False

    def get(self, pid: str) -> ParticipantView | None:
        """The participant with this id on the current page, if any."""
        return next((v for v in self.shown() if v.id == pid), None)

    def describe(self) -> str:
        """Which rows the page shows, of how many, and how to reach the others."""
        if not self._matching:
            return ""
        first = self.page * self.page_rows + 1
        last = first + len(self.shown()) - 1
        if not self.complete:
            return f"{first:,}–{last:,} · reading the rest…"
        where = f"{first:,}–{last:,} of {self.matching:,}"
        if self.pages > 1:
            where += f" · page {self.page + 1} of {self.pages} · ] next page, [ previous"
        return where
