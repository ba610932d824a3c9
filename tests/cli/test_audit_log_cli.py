"""`trialkit audit log` as a monitor runs it: what each event changed, one participant's
whole history, filters, sign-ins on request, JSON, and bad input told in one line with
nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.builders import consented, staff
from tests.cli.test_cli import assert_done, assert_refused, live, live_db, trialkit
from tests.conftest import ADMIN, SteppingClock, add_user, sign_in
from tests.db.tampering import audit_actions
from trialkit.domain.roles import Role
from trialkit.services.enrolment.participants import withdraw
from trialkit.store.db import transaction

__all__ = ["live", "live_db"]  # fixtures


@pytest.fixture
def reviewed(live: Engine) -> Engine:
    """Two participants screened and consented at TWH and SHS by cora; TWH-001 withdrawn;
    mona the monitor added."""
    clock = SteppingClock()
    admin = sign_in(live, ADMIN, clock)
    cora = staff(live, admin, clock)["cora"]
    add_user(live, admin, clock, "mona", Role.MONITOR)
    consented(live, cora, clock, site="TWH")
    consented(live, cora, clock, site="SHS")
    clock.advance(days=1)
    with transaction(live) as s:
        withdraw(s, cora, "TWH-001", reason="moved away", clock=clock)
    return live


def log(db: Path, *args: str, user: str = "mona") -> tuple[int, str, str]:
    run = trialkit("audit", "log", *args, db=db, cwd=db.parent, user=user)
    return run.code, run.out, run.err


def test_each_event_shows_the_fields_it_changed(live_db: Path, reviewed: Engine) -> None:
    code, out, err = log(live_db, "--participant", "TWH-001", "--action", "participant.withdraw")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 3, out  # the event, then its two changed fields
    assert "participant.withdraw" in lines[0] and "participant:TWH-001" in lines[0]
    assert sorted(line.strip() for line in lines[1:]) == [
        'withdrawal_reason: null → "moved away"', "withdrawn: false → true"]


def test_a_participants_history_is_theirs_alone_and_in_order(
    live_db: Path, reviewed: Engine
) -> None:
    code, out, _ = log(live_db, "--participant", "TWH-001")
    assert code == 0
    events = [line.split()[6] for line in out.splitlines() if not line.startswith(" " * 8)]
    assert events == ["participant.screen", "participant.consent", "participant.withdraw"]
    assert "SHS-001" not in out


def test_sign_ins_are_shown_only_on_request(live_db: Path, reviewed: Engine) -> None:
    _, out, _ = log(live_db)
    assert " login " not in out and "user.add" in out
    _, out, _ = log(live_db, "--sign-ins")
    assert " login " in out


def test_user_action_and_site_filters(live_db: Path, reviewed: Engine) -> None:
    # --user names who acts, on every command: the filter is --by.
    _, by_cora, _ = log(live_db, "--by", "cora")
    actions = {line.split()[6] for line in by_cora.splitlines() if not line.startswith(" " * 8)}
    assert actions == {"participant.screen", "participant.consent", "participant.withdraw",
                       "user.activate"}
    _, shs, _ = log(live_db, "--site", "shs")
    ids = {line.split()[7] for line in shs.splitlines() if not line.startswith(" " * 8)}
    assert ids == {"participant:SHS-001"}


def test_the_json_form_is_one_document_with_the_changes(live_db: Path, reviewed: Engine) -> None:
    run = trialkit("--json", "audit", "log", "--action", "participant.withdraw", db=live_db,
                   cwd=live_db.parent, user="mona")
    assert_done(run)
    [event] = json.loads(run.out)
    assert (event["user"], event["participants"], event["reason"]) == (
        "cora", ["TWH-001"], "moved away")
    assert sorted((c["field"], c["kind"], c["before"], c["after"]) for c in event["changes"]) == [
        ("withdrawal_reason", "changed", None, "moved away"),
        ("withdrawn", "changed", False, True)]


def test_a_period_of_whole_utc_days(live_db: Path, reviewed: Engine) -> None:
    # The fixture's clock starts on 2026-03-02; the withdrawal came a day later.
    _, out, _ = log(live_db, "--since", "2026-03-03", "--until", "2026-03-03")
    assert [line.split()[6] for line in out.splitlines()
            if not line.startswith(" " * 8)] == ["participant.withdraw"]
    _, out, _ = log(live_db, "--until", "2026-03-01")
    assert out.strip() == "No events match."


@pytest.mark.parametrize(("args", "words"), [
    (["--since", "last tuesday"], ["--since", "not a date"]),
    (["--until", "2026-02-30"], ["--until", "not a date"]),
    (["--site", "XYZ"], ["no site 'XYZ'", "SHS, TWH"]),
    (["--since", "2026-03-05", "--until", "2026-03-01"], ["ends before it starts"]),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    live_db: Path, reviewed: Engine, args: list[str], words: list[str]
) -> None:
    before = audit_actions(reviewed)
    run = trialkit("audit", "log", *args, db=live_db, cwd=live_db.parent, user="mona")
    assert_refused(run, 2, *words)
    assert audit_actions(reviewed) == before


def test_a_coordinator_may_not_read_it_and_the_refusal_is_recorded(
    live_db: Path, reviewed: Engine
) -> None:
    run = trialkit("audit", "log", db=live_db, cwd=live_db.parent, user="cora")
    assert_refused(run, 1, "read the audit log")
    assert audit_actions(reviewed)[-2:] == ["login", "audit.log.refused"]
