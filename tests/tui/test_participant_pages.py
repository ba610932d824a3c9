"""A long participants list: shown a hundred rows a page in site and number order, turned
with ] and [ or by moving the cursor past a page's edge, and filtered as the user types
against the whole list (held in memory once read), on both backends."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine
from textual.widgets import DataTable, Input, Select, Static

from tests.builders import eligible_answers
from tests.conftest import SteppingClock
from tests.tui.conftest import app_for, press, screen_text, table_rows
from tests.tui.test_participants import ids, open_participants
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import screen
from trialkit.store.db import transaction

ROWS_A_PAGE = 100  # what the screen promises: a page of at most a hundred rows
# The protocol's words: eligible from 18 to 75 years of age.
AGE_MIN, AGE_MAX = 18, 75


def _screen_many(engine: Engine, coordinator: Actor, clock: SteppingClock,
                 people: list[tuple[str, int]]) -> list[tuple[str, str]]:
    """Screen each (site, age) in one transaction; (id, whether eligible by age)."""
    made = []
    with transaction(engine) as s:
        for site, age in people:
            v = screen(s, coordinator, site=site, age=age, sex="F", weight_kg=70.0,
                       factors={"headache_type": "CM"}, answers=eligible_answers(),
                       clock=clock)
            made.append((v.id, "eligible" if AGE_MIN <= age <= AGE_MAX else "ineligible"))
    return made


def _in_list_order(made: list[tuple[str, str]]) -> list[str]:
    # Site, then the number the site gave at screening (1, 2, … in the order screened).
    return sorted((pid for pid, _ in made), key=lambda p: (p.split("-")[0], int(p.split("-")[1])))


def _page_line(app: object) -> str:
    return str(app.screen.query_one("#participant-page", Static).render())  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [11, 29])
async def test_a_long_list_is_shown_a_page_at_a_time_and_filtered_as_typed(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock, seed: int
) -> None:
    rng = random.Random(seed)
    n = rng.randint(ROWS_A_PAGE + 20, 2 * ROWS_A_PAGE + 60)
    people = [(rng.choice(["TWH", "SHS"]), rng.choice([16, 17, 40, 52, 76, 80, 30]))
              for _ in range(n)]
    made = _screen_many(engine, enrolling["cora"], clock, people)
    expected = _in_list_order(made)
    pages = [expected[i:i + ROWS_A_PAGE] for i in range(0, n, ROWS_A_PAGE)]
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_participants(pilot, "cora")
        assert ids(pilot) == pages[0]
        assert _page_line(app).startswith(f"1–{ROWS_A_PAGE} of {n:,} · page 1 of {len(pages)}")

        await press(pilot, "right_square_bracket")
        assert ids(pilot) == pages[1]
        await press(pilot, "left_square_bracket")
        assert ids(pilot) == pages[0]

        # Past the last row of a page is the first row of the next; back up is the last.
        table = app.screen.query_one("#participants", DataTable)
        table.move_cursor(row=ROWS_A_PAGE - 1)
        await press(pilot, "down")
        assert ids(pilot) == pages[1]
        assert table.cursor_row == 0
        await press(pilot, "up")
        assert ids(pilot) == pages[0]
        assert table.cursor_row == ROWS_A_PAGE - 1
        assert expected[ROWS_A_PAGE - 1] in screen_text(app)  # the detail line names it

        # Typing filters the whole list, not just the page shown.
        search = f"{rng.choice(['TWH', 'SHS'])}-0{rng.randint(1, 4)}"
        await press(pilot, "slash", *search.lower())
        want = [p for p in expected if search in p]
        assert ids(pilot) == want[:ROWS_A_PAGE]
        assert want, "the search should match someone"

        app.screen.query_one("#search", Input).value = ""
        app.screen.query_one("#status-filter", Select).value = "ineligible"
        await press(pilot)
        ineligible = [p for p in expected if dict(made)[p] == "ineligible"]
        assert ids(pilot) == ineligible[:ROWS_A_PAGE]
        assert all(row[2] == "ineligible" for row in table_rows(app, "#participants"))


async def test_a_search_that_matches_nobody_says_so(
    engine: Engine, enrolling: dict[str, Actor], clock: SteppingClock
) -> None:
    _screen_many(engine, enrolling["cora"], clock, [("TWH", 40)] * 3)
    app = app_for(engine, clock)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_participants(pilot, "cora")
        await press(pilot, "slash", *"shs")
        assert ids(pilot) == []
        assert "No participant matches these filters." in screen_text(app)
        assert _page_line(app) == ""
