"""The participants list's filter is one rule: what the database returns for a search (any
text, wildcards of SQL included) is exactly the participants whose id contains it, in any
case, and a first page is the start of the whole list."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.builders import staff
from tests.conftest import SteppingClock
from tests.tui.conftest import screened
from trialkit.services.actor import Actor
from trialkit.services.enrolment.participants import list_participants
from trialkit.store.db import read_only


@pytest.fixture
def people(engine: Engine, admin: Actor, clock: SteppingClock) -> tuple[Actor, list[str]]:
    cora = staff(engine, admin, clock)["cora"]
    made = [screened(engine, cora, clock, site=site, age=age).id
            for site, age in [("TWH", 40), ("SHS", 16), ("TWH", 50), ("SHS", 30),
                              ("TWH", 80), ("TWH", 44), ("SHS", 61), ("TWH", 39),
                              ("TWH", 20), ("TWH", 21), ("TWH", 22), ("SHS", 70)]]
    return cora, made


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(search=st.text(alphabet="twhsTWHS-0123%_\\", min_size=1, max_size=6),
       limit=st.none() | st.integers(1, 13))
def test_a_search_returns_exactly_the_ids_containing_it(
    engine: Engine, people: tuple[Actor, list[str]], search: str, limit: int | None
) -> None:
    cora, made = people
    # Ids are "SITE-NNN" with the site's own count, listed by site, then number.
    everyone = sorted(made, key=lambda p: (p.split("-")[0], int(p.split("-")[1])))
    want = [p for p in everyone if search.upper() in p]
    with read_only(engine) as s:
        got = [v.id for v in list_participants(s, cora, search=search, limit=limit)]
    assert got == want[:limit]
