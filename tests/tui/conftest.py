"""Fixtures and helpers for driving the real TUI with Pilot."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.builders import eligible_answers, seal, staff
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock
from trialkit.domain.protocol import load_protocol
from trialkit.services.actor import Actor
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.participants import ParticipantView, screen
from trialkit.store.db import make_engine, transaction
from trialkit.tui.app import TrialkitApp, make_app

DB_LABEL = "kethead.db"
# One cell of the exported SVG is this many pixels wide.
_CELL = 12.2
# Words that would give an arm away on a blinded screen (KetHead's arm codes and names).
_ARM_WORDS = re.compile(r"\b(KET|PLA)\b|ketamine|placebo|saline", re.IGNORECASE)
_SPAN = re.compile(
    r'<text class="[^"]*" x="([\d.]+)" y="[\d.]+" textLength="[\d.]+" '
    r'clip-path="url\(#terminal(?:-\d+)?-line-(\d+)\)">([^<]*)</text>'
)


def new_trial(url: str, clock: SteppingClock, *, training: bool) -> Engine:
    """A database holding the KetHead trial with alice as admin."""
    engine = make_engine(url, must_exist=False)
    initialize(
        engine, load_protocol(KETHEAD), admin=ADMIN, admin_password=PASSWORD,
        training=training, clock=clock,
    )
    return engine


@pytest.fixture
def sqlite_engine(tmp_path: Path, clock: SteppingClock) -> Iterator[Engine]:
    """The KetHead trial on SQLite only (for snapshots: same output on every run)."""
    engine = new_trial(f"sqlite:///{tmp_path / 'kethead.db'}", clock, training=False)
    yield engine
    engine.dispose()


@pytest.fixture
def training_engine(db_url: str, clock: SteppingClock) -> Iterator[Engine]:
    """A training KetHead trial, on each backend."""
    engine = new_trial(db_url, clock, training=True)
    yield engine
    engine.dispose()


@pytest.fixture
def enrolling(engine: Engine, admin: Actor, clock: SteppingClock) -> dict[str, Actor]:
    """Staff (phil the pharmacist; cora at TWH and SHS; tess at TWH) and sealed lists of
    4 envelopes a stratum, from a seeded source."""
    actors = staff(engine, admin, clock)
    seal(engine, admin, clock, per_stratum=4)
    return actors


def screened(
    engine: Engine,
    coordinator: Actor,
    clock: SteppingClock,
    *,
    site: str = "TWH",
    age: int = 40,
    headache_type: str = "CM",
) -> ParticipantView:
    """A participant screened through the service (eligible unless the age says no)."""
    with transaction(engine) as s:
        return screen(
            s, coordinator, site=site, age=age, sex="F", weight_kg=70.0,
            factors={"headache_type": headache_type}, answers=eligible_answers(), clock=clock,
        )


def arm_words(text: str) -> list[str]:
    """Anything on screen that names an arm (KETHEAD, the trial code, is not one)."""
    return [m.group(0) for m in _ARM_WORDS.finditer(text)]


def app_for(engine: Engine, clock: SteppingClock, **options: Any) -> TrialkitApp:
    """The app as the CLI makes it, over a test database."""
    options.setdefault("training", False)
    return make_app(engine, clock=clock, db_label=DB_LABEL, **options)


async def settle(pilot: Pilot[None]) -> None:
    """Let pending messages run, every worker finish, and its result reach the screen."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def submit_password(pilot: Pilot[None], password: str) -> None:
    """Fill in the password box and press Enter (typing each key is slow and adds nothing)."""
    field = pilot.app.screen.query_one("#password", Input)
    field.focus()
    field.value = password
    await pilot.press("enter")
    await settle(pilot)


async def sign_in(pilot: Pilot[None], name: str = ADMIN, password: str = PASSWORD) -> None:
    """Sign in from the sign-in screen."""
    await settle(pilot)
    pilot.app.screen.query_one("#user-name", Input).value = name
    await submit_password(pilot, password)


async def press(pilot: Pilot[None], *keys: str) -> None:
    """Press keys one at a time, each after whatever the previous one started (a worker,
    a dialog) has finished: a loaded machine must not let a key overtake a dialog. With no
    keys, only wait for what is pending (after setting a field's value)."""
    if not keys:
        await settle(pilot)
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def table_rows(app: TrialkitApp, selector: str) -> list[list[Any]]:
    """The rows of a DataTable on the current screen, as shown."""
    table: DataTable[Any] = app.screen.query_one(selector, DataTable)
    return [table.get_row_at(i) for i in range(table.row_count)]


def notifications(app: TrialkitApp) -> list[str]:
    """The messages of the notifications currently shown."""
    return [n.message for n in app._notifications]


def screen_text(app: TrialkitApp) -> str:
    """Everything visible on the terminal, as plain text lines (from the SVG export)."""
    rows: dict[int, list[str]] = {}
    for x, line, text in _SPAN.findall(app.export_screenshot()):
        row = rows.setdefault(int(line), [" "] * 200)
        start = round(float(x) / _CELL)
        for offset, char in enumerate(html.unescape(text).replace("\xa0", " ")):
            row[start + offset] = char
    return "\n".join("".join(rows[n]).rstrip() for n in sorted(rows))
