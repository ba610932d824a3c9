"""Coordinator commands for outcomes: diary record/import/history, infuse, outcomes.
Everything shown is blinded: no arm, nothing that depends on one."""

from pathlib import Path
from typing import Annotated, Any

import typer

from trialkit.cli.context import cli
from trialkit.cli.enrol_cmds import parse_date
from trialkit.domain.errors import InvalidInput
from trialkit.domain.site_time import shown

diary_app = typer.Typer(help="The headache diary: record, import, history.", no_args_is_help=True)


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


@diary_app.command("record")
def record(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id, e.g. TWH-001")],
    on: Annotated[str, typer.Option("--date", help="Diary date (YYYY-MM-DD)")],
    headache: Annotated[str, typer.Option("--headache", help="yes or no")],
    severity: Annotated[
        str | None,
        typer.Option("--severity", help="Peak severity: none, mild, moderate, severe"),
    ] = None,
    hours: Annotated[
        str | None, typer.Option("--hours", help="Headache duration in hours (0-24)")
    ] = None,
    acute_medication: Annotated[
        str, typer.Option("--acute-medication", help="Acute medication taken: yes or no")
    ] = "no",
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why a recorded day is corrected")
    ] = None,
) -> None:
    """Record one diary day; correcting a recorded day needs --reason (the old version is
    kept)."""
    from trialkit.domain.diary import read_day

    c = cli(ctx)
    when = parse_date(on, "diary date")
    actor = c.actor()
    trial = c.use_cases()
    day, problems = read_day(
        when,
        headache=headache,
        severity=severity,
        duration_hours=hours,
        acute_medication=acute_medication,
        rules=trial.protocol().diary,  # the protocol's diary rules, fixed at init
    )
    if day is None:
        raise InvalidInput(f"{pid.strip().upper()} {when}: " + "; ".join(problems))
    r = trial.record_day(actor, pid, day, reason=reason)
    verb = "corrected" if r.corrected else "recorded"
    counted = "a headache day" if r.headache_day else "not a headache day"
    where = f"window {r.window}" if r.window else "in no outcome window"
    c.emit(
        {
            "participant_id": r.participant_id,
            "date": r.date.isoformat(),
            "version": r.version,
            "corrected": r.corrected,
            "headache_day": r.headache_day,
            "window": r.window,
            "study_day": r.study_day,
        },
        f"{r.participant_id} {r.date}: {verb} (version {r.version}; {counted}; {where})",
    )


@diary_app.command("import")
def import_file(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV with participant_id, date, headache, severity, duration_hours, "
            "acute_medication"
        ),
    ],
) -> None:
    """Import diary days from a CSV file: every row or none (each bad row is reported
    with its line number)."""

    c = cli(ctx)
    try:
        data = file.read_bytes()
    except OSError as err:
        raise InvalidInput(f"cannot read {file}: {err.strerror or err}") from None
    actor = c.actor()
    r = c.use_cases().import_diary_data(actor, data, source=str(file))
    c.emit(
        {"file": r.source, "sha256": r.sha256, "rows": r.rows, "participants": r.participants},
        f"Imported {r.rows} diary days of {r.participants} participants from {r.source} "
        f"(sha256 {r.sha256[:12]}…)",
    )


@diary_app.command("history")
def history(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id")],
    on: Annotated[str | None, typer.Option("--date", help="Only this date")] = None,
) -> None:
    """Every version of a participant's diary days, corrections included."""
    c = cli(ctx)
    when = parse_date(on, "diary date") if on is not None else None
    with c.as_reader() as (actor, trial):
        rows = trial.day_history(actor, pid, when)

    def doc(v: Any) -> dict[str, Any]:
        return {
            "date": v.date.isoformat(),
            "version": v.version,
            "current": v.current,
            "headache": v.headache,
            "severity": v.severity,
            "duration_hours": v.duration_hours,
            "acute_medication": v.acute_medication,
            "headache_day": v.headache_day,
            "window": v.window,
            "study_day": v.study_day,
            "recorded_by": v.recorded_by,
            "recorded_at": v.recorded_at.isoformat(),
            "reason": v.reason,
        }

    def text() -> str:
        if not rows:
            return f"{pid.strip().upper()}: no diary days recorded"
        lines = [
            f"{'date':<10} {'v':>2} {'':1} {'headache':<8} {'severity':<8} {'hours':>5} "
            f"{'acute':<5} {'hd':<3} {'window':<8} {'by':<8} {'recorded at':<20} reason"
        ]
        for v in rows:
            lines.append(
                f"{v.date.isoformat():<10} {v.version:>2} {'*' if v.current else ' '} "
                f"{_yes_no(v.headache):<8} {v.severity:<8} {v.duration_hours:>5g} "
                f"{_yes_no(v.acute_medication):<5} {_yes_no(v.headache_day):<3} "
                f"{v.window or '-':<8} {v.recorded_by:<8} "
                f"{shown(v.recorded_at):<20} {v.reason or ''}".rstrip()
            )
        lines.append("* current version; hd: counts as a headache day")
        return "\n".join(lines)

    c.emit([doc(v) for v in rows], text)


def infuse(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id")],
    on: Annotated[str, typer.Option("--date", help="Day of the infusion (YYYY-MM-DD)")],
    at: Annotated[
        str | None,
        typer.Option(
            "--time",
            help="Time the infusion started (HH:MM, the site's local time); without it, "
            "an infusion today is taken to be now",
        ),
    ] = None,
) -> None:
    """Record the infusion (study day 0) of a randomized, dispensed participant. Refused if
    the preparation had expired at the infusion time (to the minute): --time HH:MM, or now
    for an infusion today; an earlier day without --time is accepted only if the
    preparation was good all that day."""
    from trialkit.domain.infusion_time import parse_time

    c = cli(ctx)
    when = parse_date(on, "infusion date")
    started = parse_time(at) if at is not None else None
    actor = c.actor()
    day0 = c.use_cases().infuse(actor, pid, on=when, at=started)
    c.emit(
        {"participant_id": pid.strip().upper(), "infusion_date": day0.isoformat()},
        f"{pid.strip().upper()}: infused on {day0} (study day 0)",
    )


def outcomes(
    ctx: typer.Context, pid: Annotated[str, typer.Argument(help="Participant id")]
) -> None:
    """Derived outcomes per window: days recorded, headache days, proration, change from
    baseline (blinded)."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        o = trial.outcomes(actor, pid)
    windows = [
        {
            "window": w.window,
            "primary": w.primary,
            "window_start": w.start.isoformat() if w.start else None,
            "window_end": w.end.isoformat() if w.end else None,
            "days_expected": w.days_expected,
            "days_recorded": w.days_recorded,
            "headache_days": w.headache_days,
            "moderate_severe_days": w.moderate_severe_days,
            "acute_medication_days": w.acute_medication_days,
            "headache_days_28": w.headache_days_28,
            "baseline_headache_days_28": w.baseline_headache_days_28,
            "change_from_baseline": w.change_from_baseline,
        }
        for w in o.windows
    ]

    def text() -> str:
        head = (
            f"{o.participant_id} ({o.status}): randomized "
            f"{o.randomized_on or 'not yet'}, infused {o.infused_on or 'not yet'}"
        )
        lines = [head]
        if o.provisional:
            lines.append("Baseline shown as it would be if randomized today.")
        lines.append(
            f"{'window':<9} {'from':<10} {'to':<10} {'expected':>8} {'recorded':>8} "
            f"{'headache':>8} {'mod/sev':>7} {'acute':>5} {'per 28':>6} {'change':>6}"
        )
        for w in o.windows:
            mark = "*" if w.primary else " "
            lines.append(
                f"{w.window + mark:<9} {_cell(w.start):<10} {_cell(w.end):<10} "
                f"{w.days_expected:>8} {w.days_recorded:>8} {_cell(w.headache_days):>8} "
                f"{_cell(w.moderate_severe_days):>7} {_cell(w.acute_medication_days):>5} "
                f"{_cell(w.headache_days_28):>6} {_cell(w.change_from_baseline):>6}"
            )
        lines.append("* primary window; '-' is missing (too few days recorded)")
        return "\n".join(lines)

    c.emit(
        {
            "participant_id": o.participant_id,
            "site": o.site,
            "status": o.status,
            "randomization_number": o.randomization_number,
            "randomized_on": o.randomized_on.isoformat() if o.randomized_on else None,
            "infusion_on": o.infused_on.isoformat() if o.infused_on else None,
            "provisional_baseline": o.provisional,
            "windows": windows,
        },
        text,
    )
