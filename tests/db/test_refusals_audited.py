"""Every refusal is in the audit trail (who, what, why), across role x use case: a role
lacking the permission, a coordinator at a site they do not serve, and the state of the
trial. The refused work itself leaves nothing: the refusal event is the only new row.

Who may do what is written here from product.md's role table ("coordinator
(site-scoped): screen, ..., withdraw"; "monitor: read everything blinded, read and verify
the audit trail"; ...), not read from the code's permission table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from tests.builders import baseline_days, consented, eligible_answers, seal, staff
from tests.conftest import PASSWORD, SteppingClock, add_user, sign_in
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.administration.database_lock import lock_database
from trialkit.services.administration.users import list_users
from trialkit.services.diary.entries import history, record_day
from trialkit.services.diary.outcomes import outcomes
from trialkit.services.enrolment.allocation import seal_lists, stratum_usage
from trialkit.services.enrolment.participants import (
    consent,
    list_participants,
    randomize,
    screen,
    withdraw,
)
from trialkit.services.exports.status import trial_status
from trialkit.services.integrity.audit import log
from trialkit.services.pharmacy.dispensing import dispense, dispense_queue
from trialkit.services.pharmacy.unblinding import unblind, unblinding_report
from trialkit.store.db import transaction
from trialkit.store.models import AuditEvent


class Undo(Exception):
    """Raised after an allowed call so that it changes nothing for the next one."""


UseCase = Callable[[Session, Actor, str, SteppingClock], Any]

# product.md's role table, in its words: what each role "does".
ALLOWED: dict[str, set[str]] = {
    "coordinator": {"screen", "consent", "diary", "randomize", "withdraw", "participants",
                    "status", "history", "outcomes"},
    "pharmacist": {"open envelope", "unblind", "status", "queue", "participants"},
    "investigator": {"lock", "status", "audit log", "participants", "history", "outcomes",
                     "unblinding report"},
    "monitor": {"status", "audit log", "participants", "history", "outcomes",
                "unblinding report"},
    "admin": {"users", "seal", "status", "audit log", "usage", "unblinding report"},
}
# The use cases whose refusal for a role outside ALLOWED is a permission refusal.
PERMISSION_BOUND = {"screen", "consent", "diary", "randomize", "withdraw", "open envelope",
                    "unblind", "lock", "audit log", "users", "seal", "queue",
                    "unblinding report"}


def _day(clock: SteppingClock) -> DiaryDay:
    return baseline_days(clock.now().date() - timedelta(days=1), days=1)[0]


USE_CASES: dict[str, UseCase] = {
    "screen": lambda s, a, pid, c: screen(
        s, a, site="SHS", age=40, sex="F", weight_kg=70.0, factors={"headache_type": "CM"},
        answers=eligible_answers(), clock=c),
    "consent": lambda s, a, pid, c: consent(s, a, pid, on=c.now().date(), form_version="2.0",
                                            clock=c),
    "diary": lambda s, a, pid, c: record_day(s, a, pid, _day(c), clock=c),
    "randomize": lambda s, a, pid, c: randomize(s, a, pid, clock=c),
    "withdraw": lambda s, a, pid, c: withdraw(s, a, pid, reason="moved away", clock=c),
    "participants": lambda s, a, pid, c: list_participants(s, a),
    "history": lambda s, a, pid, c: history(s, a, pid),
    "outcomes": lambda s, a, pid, c: outcomes(s, a, pid, clock=c),
    "open envelope": lambda s, a, pid, c: dispense(s, a, pid, password=PASSWORD, clock=c),
    "unblind": lambda s, a, pid, c: unblind(s, a, pid, reason="anaphylaxis",
                                            password=PASSWORD, clock=c),
    "queue": lambda s, a, pid, c: dispense_queue(s, a, clock=c),
    "lock": lambda s, a, pid, c: lock_database(s, a, clock=c),
    "status": lambda s, a, pid, c: trial_status(s, a, clock=c),
    "audit log": lambda s, a, pid, c: log(s, a),
    "users": lambda s, a, pid, c: list_users(s, a, clock=c),
    "seal": lambda s, a, pid, c: seal_lists(s, a, per_stratum=4, block_sizes=None, clock=c),
    "usage": lambda s, a, pid, c: stratum_usage(s, a),
    "unblinding report": lambda s, a, pid, c: unblinding_report(s, a, clock=c),
}


@pytest.fixture
def cast(engine: Engine, admin: Actor, clock: SteppingClock) -> dict[str, Actor]:
    """One actor per role (tess: a coordinator at TWH only), sealed lists, and ``pid``:
    a consented participant at SHS with no baseline diary yet."""
    actors = staff(engine, admin, clock)
    add_user(engine, admin, clock, "ivan", Role.INVESTIGATOR)
    add_user(engine, admin, clock, "mona", Role.MONITOR)
    seal(engine, admin, clock, per_stratum=4)
    actors |= {n: sign_in(engine, n, clock) for n in ("ivan", "mona")}
    return actors | {"alice": admin}


def _events(engine: Engine) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))


def _count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(AuditEvent)).one()


def _attempt(engine: Engine, actor: Actor, name: str, pid: str,
             clock: SteppingClock) -> TrialkitError | None:
    try:
        with transaction(engine) as s:
            USE_CASES[name](s, actor, pid, clock)
            raise Undo
    except Undo:
        return None
    except TrialkitError as exc:
        return exc


def test_every_refusal_across_role_and_use_case_is_audited(
    engine: Engine, cast: dict[str, Actor], clock: SteppingClock
) -> None:
    pid = consented(engine, cast["cora"], clock, site="SHS").id
    refusals = 0
    for who in ("alice", "cora", "tess", "phil", "ivan", "mona"):
        actor = cast[who]
        for name in USE_CASES:
            before = _count(engine)
            exc = _attempt(engine, actor, name, pid, clock)
            new = _events(engine)[before:]
            refused = exc is not None and exc.exit_code == 1
            allowed = name in ALLOWED[actor.role.value]
            if name in PERMISSION_BOUND and not allowed:
                assert refused, f"{who} ({actor.role}) was not refused {name}"
            if who == "tess" and name in ("consent", "diary", "randomize", "withdraw",
                                          "screen"):
                assert refused, f"tess (TWH only) was not refused {name} at SHS"
            if refused:
                assert exc is not None
                refusals += 1
                assert len(new) == 1, f"{who} {name}: {[e.action for e in new]}"
                event = new[0]
                assert event.user_name == who and event.role == actor.role.value
                assert event.action.endswith(".refused")
                assert event.reason, f"{who} {name}: the refusal gives no reason"
                if not exc.keep_record:  # those record their own words (see pharmacy)
                    assert event.reason == exc.message
            else:
                assert not any(e.action.endswith(".refused") for e in new), (who, name)
    # permission refusals, tess's five cross-site attempts, and state refusals
    # (randomize without a baseline, opening an envelope not yet drawn, sealing twice)
    assert refusals >= 50


def test_a_cross_site_attempt_names_the_participant_and_the_sites(
    engine: Engine, cast: dict[str, Actor], clock: SteppingClock
) -> None:
    pid = consented(engine, cast["cora"], clock, site="SHS").id
    exc = _attempt(engine, cast["tess"], "withdraw", pid, clock)
    assert exc is not None and exc.exit_code == 1
    event = _events(engine)[-1]
    assert (event.user_name, event.action, event.entity, event.entity_id) == (
        "tess", "participant.withdraw.refused", "participant", pid)
    assert "TWH" in (event.reason or "") and "SHS" in (event.reason or "")


def test_a_refused_state_change_leaves_only_its_refusal(
    engine: Engine, cast: dict[str, Actor], clock: SteppingClock
) -> None:
    pid = consented(engine, cast["cora"], clock, site="SHS").id
    with transaction(engine) as s:
        withdraw(s, cast["cora"], pid, reason="moved away", clock=clock)
    before = _events(engine)
    exc = _attempt(engine, cast["cora"], "withdraw", pid, clock)
    assert exc is not None and "already withdrawn" in exc.message
    after = _events(engine)
    assert after[: len(before)] == before
    assert [e.action for e in after[len(before):]] == ["participant.withdraw.refused"]


def test_invalid_input_is_not_a_refusal_and_records_nothing(
    engine: Engine, cast: dict[str, Actor], clock: SteppingClock
) -> None:
    before = _count(engine)
    exc = _attempt(engine, cast["cora"], "withdraw", "NO-SUCH-ONE", clock)
    assert exc is not None and exc.exit_code == 2
    assert _count(engine) == before
