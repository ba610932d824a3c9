"""Steps for ``features/outcomes.feature``: headache days, moderate/severe and
acute-medication days per window, prorated to 28 days when enough days are recorded, and
the change from baseline, all derived as the protocol says. Both backends, through the
services; the Background steps are those of ``test_diary.py``."""

from __future__ import annotations

from datetime import timedelta

from pytest_bdd import given, parsers, scenarios, then, when

from tests.step_defs import test_diary as diary_steps
from tests.step_defs.test_diary import COLUMNS, DiaryWorld, on
from trialkit.domain.diary import WindowOutcome
from trialkit.services.diary.outcomes import ParticipantOutcomes

scenarios("outcomes.feature")

# The Background is the diary feature's: borrow its step definitions (and its world).
globals().update(diary_steps.step_fixtures())
world = diary_steps.world


def window(world: DiaryWorld, code: str) -> WindowOutcome:
    assert isinstance(world.outcome, ParticipantOutcomes), world.outcome
    [found] = [w for w in world.outcome.windows if w.window == code]
    return found


# --- Background -------------------------------------------------------------------------------


@given(parsers.parse('"{pid}" was randomized on {day} with headache on {aching:d} of her 28 '
                     "baseline days"))
def randomized_with_baseline(world: DiaryWorld, pid: str, day: str, aching: int) -> None:
    assert world.screen("TWH").id == pid
    world.consent(pid)
    world.go_to(on(day))
    world.baseline(pid, 28, aching)
    world.randomize(pid)


@given(parsers.parse("the pharmacy prepared her infusion and she was infused on {day}"))
def prepared_and_infused(world: DiaryWorld, day: str) -> None:
    world.go_to(on(day))
    world.dispense_and_infuse("TWH-001")


# --- the diary kept ---------------------------------------------------------------------------


@given(parsers.parse('"{pid}" kept this diary:'))
def kept_this_diary(world: DiaryWorld, pid: str, datatable: list[list[str]]) -> None:
    assert tuple(datatable[0]) == COLUMNS[1:]
    world.import_rows([list(COLUMNS)] + [[pid, *row] for row in datatable[1:]])


@given(parsers.parse('"{pid}" kept her diary on {days:d} days from {first}, with a headache '
                     "of {hours:g} hours on {aching:d} of them"))
def kept_days(world: DiaryWorld, pid: str, days: int, first: str, hours: float,
              aching: int) -> None:
    start = on(first)
    rows = [[pid, (start + timedelta(days=i)).isoformat(),
             *(["yes", "moderate", f"{hours:g}"] if i < aching else ["no", "", ""]), "no"]
            for i in range(days)]
    world.import_rows([list(COLUMNS), *rows])


@when(parsers.parse('I look at the outcomes of "{pid}"'))
def look_at_outcomes(world: DiaryWorld, pid: str) -> None:
    world.attempt(lambda: world.outcomes(pid))


# --- what the outcomes show -------------------------------------------------------------------


@then(parsers.parse('the window "{code}" shows {expected:d} days expected, {recorded:d} '
                    "recorded, {aching:d} headache days, {severe:d} moderate or severe days "
                    "and {acute:d} acute-medication days"))
def window_counts(world: DiaryWorld, code: str, expected: int, recorded: int, aching: int,
                  severe: int, acute: int) -> None:
    w = window(world, code)
    assert (w.days_expected, w.days_recorded, w.headache_days, w.moderate_severe_days,
            w.acute_medication_days) == (expected, recorded, aching, severe, acute)


@then(parsers.parse('the window "{code}" has no prorated headache days and no change from '
                    "baseline"))
def not_prorated(world: DiaryWorld, code: str) -> None:
    w = window(world, code)
    assert (w.headache_days_28, w.change_from_baseline) == (None, None)


@then(parsers.parse('the window "{code}" shows {per_28:g} headache days per 28 days'))
def prorated(world: DiaryWorld, code: str, per_28: float) -> None:
    assert window(world, code).headache_days_28 == per_28


@then(parsers.parse('the window "{code}" shows {per_28:g} headache days per 28 days, a change '
                    "of {change:g} from baseline"))
def prorated_and_changed(world: DiaryWorld, code: str, per_28: float, change: float) -> None:
    w = window(world, code)
    assert (w.headache_days_28, w.change_from_baseline) == (per_28, change)


@then(parsers.parse('the window "{code}" is missing, not zero'))
def missing(world: DiaryWorld, code: str) -> None:
    w = window(world, code)
    assert w.days_recorded == 0
    assert (w.headache_days, w.moderate_severe_days, w.acute_medication_days,
            w.headache_days_28, w.change_from_baseline) == (None,) * 5


@then(parsers.parse('the window "{code}" shows {recorded:d} days recorded but no prorated '
                    "headache days"))
def too_few(world: DiaryWorld, code: str, recorded: int) -> None:
    w = window(world, code)
    assert (w.days_recorded, w.headache_days_28) == (recorded, None)
    assert w.headache_days == recorded


# --- a baseline of mixed severities -------------------------------------------------------------


@given(parsers.parse('"{pid}" kept her baseline diary on {days:d} of the 28 days from {first}, '
                     "these days in turn:"))
def kept_mixed_baseline(world: DiaryWorld, pid: str, days: int, first: str,
                        datatable: list[list[str]]) -> None:
    """The table's days (``days`` of each kind), spread over the 28 days from ``first`` in a
    fixed mixed order, the days left over unrecorded (the gaps fall every 7th day); the
    clock moves on to the day after them."""
    assert datatable[0][0] == "days" and tuple(datatable[0][1:]) == COLUMNS[2:]
    kinds = [row[1:] for row in datatable[1:] for _ in range(int(row[0]))]
    assert len(kinds) == days
    mixed = [kinds[(i * 5) % days] for i in range(days)]  # 5 is prime to 24: every day once
    dates = [d for d in (on(first) + timedelta(days=i) for i in range(28))
             if (d - on(first)).days % 7 != 6][:days]
    world.go_to(on(first) + timedelta(days=28))  # kept: the 28 days are over
    world.import_rows([list(COLUMNS)] + [[pid, d.isoformat(), *kind]
                                         for d, kind in zip(dates, mixed, strict=True)])


@given(parsers.parse('"{pid}" was randomized on {day}, and infused the same day'))
def randomized_and_infused(world: DiaryWorld, pid: str, day: str) -> None:
    world.go_to(on(day))
    world.randomize(pid)
    world.dispense_and_infuse(pid)
