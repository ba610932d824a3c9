"""Reviewing the audit trail (monitor, admin, investigator): filters, keyset pages, a
participant's whole history with the pharmacy and the diary in it, what each event
changed field by field, and never an arm — on both backends.

The world is the pharmacy tests' (lists forced to KET, PLA, ... so arms are known):
TWH-001 KET, TWH-002 PLA, TWH-003 KET, TWH-004 PLA, SHS-001 KET randomized; TWH-005
withdrawn; TWH-006 consented only. Each test works in a window rolled back at its end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from tests.builders import baseline_days
from tests.conftest import ADMIN, BACKENDS
from tests.db.test_pharmacy import ARM_WORDS, LOTS, Box, World, build_world, window
from trialkit.domain.audit_diff import SEALED, FieldChange, field_changes
from trialkit.domain.diary import DiaryDay
from trialkit.domain.errors import InvalidInput, PermissionDenied
from trialkit.services.diary.entries import record_day
from trialkit.services.diary.file_import import import_diary
from trialkit.services.integrity import audit
from trialkit.services.integrity.audit_review import (
    AuditFilter,
    ReviewedEvent,
    audit_events,
    audit_page,
    participant_timeline,
    time_bound,
)
from trialkit.store.db import read_only
from trialkit.store.models import AuditEvent

READERS = ("mona", "iris", "ivan", ADMIN)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    with build_world(request.param, tmp_path_factory.mktemp("review")) as w:
        yield w


@pytest.fixture
def box(world: World) -> Iterator[Box]:
    with window(world) as b:
        yield b


def events(box: Box, who: str = "mona", **filters: Any) -> list[ReviewedEvent]:
    with box.tx() as s:
        return list(audit_events(s, box.actor(who), AuditFilter(**filters)))


def timeline(box: Box, pid: str, who: str = "mona") -> list[ReviewedEvent]:
    with box.tx() as s:
        return participant_timeline(s, box.actor(who), pid)


def stored(box: Box) -> list[AuditEvent]:
    with box.tx() as s:
        return list(s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))


# --- a participant's whole history --------------------------------------------------------------


def test_a_participants_history_holds_the_pharmacy_and_the_diary(box: Box) -> None:
    box.prepare("TWH-001")
    box.labels("TWH-001", by="pia")
    box.prepare("TWH-002")  # someone else's day: not in TWH-001's history
    # What was done to TWH-001, in order, as the world and this test did it.
    assert [e.action for e in timeline(box, "TWH-001")] == [
        "participant.screen", "participant.consent", "diary.import", "participant.randomize",
        "envelope.open", "preparation.record", "label.reprint",
    ]
    for e in timeline(box, "TWH-001"):
        assert e.participants == ("TWH-001",)
    opened = [e for e in timeline(box, "TWH-001") if e.action == "envelope.open"]
    assert opened[0].user == "phil" and opened[0].after["purpose"] == "dispense"


def test_a_diary_day_and_its_correction_are_in_the_history_with_what_changed(box: Box) -> None:
    on = box.clock.now().date() - timedelta(days=1)
    cora = box.actor("cora")
    with box.tx() as s:
        record_day(s, cora, "TWH-006", DiaryDay(on, False, "none", 0.0, False), clock=box.clock)
    box.clock.advance(minutes=3)
    with box.tx() as s:
        record_day(s, cora, "TWH-006", DiaryDay(on, True, "severe", 6.0, True),
                   clock=box.clock, reason="patient rang: it was a bad day")
    recorded, corrected = [e for e in timeline(box, "TWH-006") if e.entity == "diary"][-2:]
    assert (recorded.action, corrected.action) == ("diary.record", "diary.correct")
    assert corrected.reason == "patient rang: it was a bad day"
    changed = {c.field: (c.before, c.after) for c in corrected.changes}
    # The four values the coordinator changed, the new version, who and when it was recorded.
    assert changed["headache"] == (False, True)
    assert changed["severity"] == ("none", "severe")
    assert changed["duration_hours"] == (0.0, 6.0)
    assert changed["acute_medication"] == (False, True)
    assert changed["version"] == (1, 2)
    assert "date" not in changed and "participant" not in changed


def test_a_diary_file_of_two_participants_shows_each_only_their_own_rows(box: Box) -> None:
    cora = box.actor("cora")
    a = consented_in(box, "TWH")
    b = consented_in(box, "SHS")
    box.clock.advance(days=10)
    first = box.clock.now().date() - timedelta(days=9)
    days_a, days_b = baseline_days(first, days=6), baseline_days(first, days=4)
    lines = ["participant_id,date,headache,severity,duration_hours,acute_medication"]
    for pid, days in ((a, days_a), (b, days_b)):
        lines += [f"{pid},{d.day},{'yes' if d.headache else 'no'},{d.severity},"
                  f"{d.duration_hours},{'yes' if d.acute_medication else 'no'}" for d in days]
    with box.tx() as s:
        import_diary(s, cora, "\n".join(lines).encode(), source="paper.csv", clock=box.clock)
    [mine] = [e for e in timeline(box, a) if e.action == "diary.import"]
    assert {r[0] for r in mine.after["rows"]} == {a}
    assert sorted(r[1] for r in mine.after["rows"]) == [d.day.isoformat() for d in days_a]
    [theirs] = [e for e in events(box, site="SHS", action="diary.import") if b in e.participants]
    assert theirs.participants == (b,)
    assert len(theirs.after["rows"]) == len(days_b)
    # Unfiltered, the batch names both and holds every row.
    [whole] = [e for e in events(box, action="diary.import") if e.seq == mine.seq]
    assert whole.participants == tuple(sorted((a, b)))
    assert len(whole.after["rows"]) == len(days_a) + len(days_b)


def consented_in(box: Box, site: str) -> str:
    from tests.builders import eligible_answers
    from trialkit.services.enrolment.participants import consent, screen

    cora = box.actor("cora")
    with box.tx() as s:
        v = screen(s, cora, site=site, age=33, sex="M", weight_kg=80.0,
                   factors={"headache_type": "CM"}, answers=eligible_answers(), clock=box.clock)
    with box.tx() as s:
        consent(s, cora, v.id, on=box.clock.now().date(), form_version="2.0", clock=box.clock)
    return v.id


# --- what an event changed -----------------------------------------------------------------------


def test_a_consent_shows_the_two_fields_it_changed_and_nothing_else(box: Box) -> None:
    [consent] = [e for e in timeline(box, "TWH-006") if e.action == "participant.consent"]
    assert {c.field: (c.kind, c.before) for c in consent.changes} == {
        "consent_date": ("changed", None), "consent_form_version": ("changed", None)}
    assert dict((c.field, c.after) for c in consent.changes)["consent_form_version"] == "2.0"


def test_a_withdrawal_shows_its_reason_and_the_two_fields_it_changed(box: Box) -> None:
    [withdrawal] = [e for e in timeline(box, "TWH-005") if e.action == "participant.withdraw"]
    assert {(c.field, c.before, c.after) for c in withdrawal.changes} == {
        ("withdrawn", False, True), ("withdrawal_reason", None, "moved away")}


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text("abcxyz", min_size=1, max_size=3), inner, max_size=3),
    max_leaves=12))
def test_a_state_compared_with_itself_changed_nothing(state: Any) -> None:
    assert field_changes(state, state) == []


@given(st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4),
                       st.integers() | st.text(max_size=4) | st.none(), max_size=8),
       st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4),
                       st.integers() | st.text(max_size=4) | st.none(), max_size=8))
def test_a_flat_states_changes_are_the_keys_whose_values_differ(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    expected = {k for k in old.keys() | new.keys()
                if k not in old or k not in new or old[k] != new[k]
                or type(old[k]) is not type(new[k])}
    assert {c.field for c in field_changes(old, new)} == expected
    for c in field_changes(old, new):
        assert c.kind == ("added" if c.field not in old else
                          "removed" if c.field not in new else "changed")


def test_nested_fields_are_named_by_their_path() -> None:
    old = {"answers": {"E01": False, "E02": False}, "earlier": [{"severity": "mild"}]}
    new = {"answers": {"E01": False, "E02": True}, "earlier": [{"severity": "severe"}]}
    assert field_changes(old, new) == [
        FieldChange("answers.E02", "changed", False, True),
        FieldChange("earlier[0].severity", "changed", "mild", "severe"),
    ]


# --- filters and pages ---------------------------------------------------------------------------


def site_of(e: AuditEvent) -> set[str]:
    """The site an event concerns, worked out independently: participant ids start with
    their site's code in KetHead, and so do its strata."""
    text = f"{e.entity_id} {e.after_json or ''} {e.before_json or ''}"
    if e.entity in ("participant", "preparation", "diary", "envelope", "list"):
        return {site for site in ("TWH", "SHS") if f"{site}-" in text}
    return set()


FILTERS = [
    {}, {"user": "cora"}, {"action": "participant."}, {"action": "envelope"},
    {"site": "SHS"}, {"site": "TWH", "action": "participant.randomize"},
    {"sign_ins": True}, {"user": "phil", "sign_ins": True}, {"action": "login", "sign_ins": True},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_every_filter_returns_exactly_the_events_that_match_it(
    box: Box, filters: dict[str, Any]
) -> None:
    box.prepare("SHS-001")
    box.prepare("TWH-003")
    shown = [e.seq for e in events(box, **filters)]
    expected = [e.seq for e in stored(box)
                if (filters.get("sign_ins") or e.action not in ("login", "login.fail"))
                and ("user" not in filters or e.user_name == filters["user"])
                and e.action.startswith(filters.get("action", ""))
                and ("site" not in filters or filters["site"] in site_of(e))]
    assert expected, "a filter that matches nothing proves nothing here"
    assert shown == expected


def test_a_period_keeps_the_events_from_since_up_to_until(box: Box) -> None:
    start = box.clock.now()
    box.clock.advance(hours=1)
    box.prepare("TWH-001")  # at start + 1 h
    box.clock.advance(hours=2)
    box.labels("TWH-001")   # at start + 3 h
    inside = events(box, since=start + timedelta(minutes=30), until=start + timedelta(hours=2))
    assert [e.action for e in inside] == ["envelope.open", "preparation.record"]
    assert all(start < e.at < start + timedelta(hours=2) for e in inside)


def test_a_date_means_the_whole_utc_day() -> None:
    assert time_bound("2026-03-02", "--since", end=False) == datetime(2026, 3, 2, tzinfo=UTC)
    assert time_bound("2026-03-02", "--until", end=True) == datetime(2026, 3, 3, tzinfo=UTC)
    assert time_bound("2026-03-02T09:30Z", "--since", end=False) == datetime(
        2026, 3, 2, 9, 30, tzinfo=UTC)
    assert time_bound("2026-03-02T09:30-05:00", "--since", end=False) == datetime(
        2026, 3, 2, 14, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="not a date or time"):
        time_bound("yesterday", "--since", end=False)


def test_an_unknown_site_or_a_period_backwards_is_refused_as_bad_input(box: Box) -> None:
    with pytest.raises(InvalidInput, match="no site 'XYZ'"):
        events(box, site="XYZ")
    now = box.clock.now()
    with pytest.raises(InvalidInput, match="ends before it starts"):
        events(box, since=now, until=now - timedelta(days=1))


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=1, max_value=40), site=st.sampled_from([None, "TWH", "SHS"]))
def test_pages_joined_are_the_whole_list(box: Box, size: int, site: str | None) -> None:
    whole = [e.seq for e in events(box, site=site, sign_ins=True)]
    joined: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        with box.tx() as s:
            page = audit_page(s, box.actor("mona"), AuditFilter(site=site, sign_ins=True),
                              after=after, limit=size)
        pages += 1
        assert len(page.events) <= size
        joined += [e.seq for e in page.events]
        if page.next_after is None:
            break
        assert page.next_after == page.events[-1].seq
        after = page.next_after
    assert joined == whole
    assert pages == max(1, -(-len(whole) // size))  # a full last page says there is no more


def test_the_newest_n_are_the_last_n(box: Box) -> None:
    whole = [e.seq for e in events(box)]
    with box.tx() as s:
        newest = [e.seq for e in audit_events(s, box.actor("iris"), AuditFilter(), newest=5)]
    assert newest == whole[-5:]


# --- who may read, and blinding ----------------------------------------------------------------


@pytest.mark.parametrize("who", ["cora", "phil"])
def test_coordinators_and_pharmacists_may_not_read_the_audit_trail(box: Box, who: str) -> None:
    with pytest.raises(PermissionDenied, match="read the audit log"):
        events(box, who)


@pytest.mark.parametrize("who", READERS)
def test_no_reader_learns_an_arm_or_a_lot_from_the_audit_trail(box: Box, who: str) -> None:
    for pid in ("TWH-001", "TWH-002", "SHS-001"):
        box.prepare(pid)
        box.labels(pid)
    box.unblind("TWH-002", "suspected serious adverse reaction")
    shown = json.dumps([[e.action, e.after, e.before, e.reason, [vars(c) for c in e.changes]]
                        for e in events(box, who, sign_ins=True)], default=str)
    lots = {lot for arm in LOTS.values() for lot in arm.values()}
    assert ARM_WORDS.findall(shown.replace(box_title(box), "")) == []
    assert [lot for lot in lots if lot in shown] == []
    assert "participant.unblind" in shown and "envelope.open" in shown


def box_title(box: Box) -> str:
    [created] = [e for e in stored(box) if e.action == "trial.create"]
    return str(json.loads(created.after_json or "{}")["title"])


def test_an_event_holding_an_arm_shows_it_sealed(box: Box) -> None:
    # A service's mistake, or a row written outside trialkit: the reader never sees it.
    with box.tx() as s:
        audit.record(s, box.actor(ADMIN), action="participant.note", entity="participant",
                     entity_id="TWH-001", after={"arm": "KET", "lots": LOTS["KET"],
                                                 "note": {"arm_code": "PLA"}},
                     clock=box.clock)
    [note] = [e for e in timeline(box, "TWH-001") if e.action == "participant.note"]
    assert note.after == {"arm": SEALED, "lots": SEALED, "note": {"arm_code": SEALED}}
    assert "KET" not in json.dumps([vars(c) for c in note.changes])


def test_reading_the_audit_trail_writes_nothing(box: Box) -> None:
    before = box.state()
    events(box, "mona", sign_ins=True, site="TWH")
    timeline(box, "TWH-001")
    assert box.state() == before


def test_a_refused_reader_is_recorded(world: World) -> None:
    with pytest.raises(PermissionDenied), read_only(world.engine) as s:
        audit_events(s, world.actors["cora"], AuditFilter())
    with read_only(world.engine) as s:
        last = s.exec(select(AuditEvent.action, AuditEvent.user_name)
                      .order_by(col(AuditEvent.seq).desc())).first()
    assert last is not None and tuple(last) == ("audit.log.refused", "cora")
