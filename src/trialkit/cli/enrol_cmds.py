"""Coordinator commands: screen, consent, withdraw, randomize, participants."""

from datetime import date
from typing import Annotated

import typer

from trialkit.cli.context import cli
from trialkit.domain.errors import InvalidInput


def parse_pairs(values: list[str] | None, what: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InvalidInput(f"{what} {item!r}: write it as KEY=VALUE")
        if key.strip() in result:
            raise InvalidInput(f"{what} {key.strip()!r} given twice")
        result[key.strip()] = value.strip()
    return result


def parse_date(text: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not a date like 2026-03-01") from None


def screen(
    ctx: typer.Context,
    site: Annotated[str, typer.Option("--site", help="Site code, e.g. TWH")],
    age: Annotated[int, typer.Option("--age", help="Age in years")],
    sex: Annotated[str, typer.Option("--sex", help="F or M")],
    weight_kg: Annotated[float, typer.Option("--weight-kg", help="Weight in kg")],
    stratum_factor: Annotated[
        list[str] | None,
        typer.Option("--stratum-factor", help="FACTOR=LEVEL, e.g. headache_type=CM"),
    ] = None,
    answer: Annotated[
        list[str] | None,
        typer.Option(
            "--answer", help="CRITERION=yes/no for every criterion not checked automatically"
        ),
    ] = None,
) -> None:
    """Screen a participant: prints the participant id and eligibility."""
    from trialkit.application.trial_database import ScreeningEntry

    c = cli(ctx)
    factors, answers = parse_pairs(stratum_factor, "stratum factor"), parse_pairs(answer, "answer")
    actor = c.actor()
    v = c.use_cases().screen(actor, ScreeningEntry(site=site, age=age, sex=sex,
                                                   weight_kg=weight_kg, factors=factors,
                                                   answers=answers))
    verdict = "eligible" if v.eligible else f"NOT eligible (failed: {', '.join(v.failed)})"
    c.emit(
        {
            "participant_id": v.id,
            "site": v.site,
            "stratum": v.stratum,
            "eligible": v.eligible,
            "failed_criteria": list(v.failed),
        },
        f"{v.id}: {verdict}",
    )


def consent(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id, e.g. TWH-001")],
    on: Annotated[str, typer.Option("--date", help="Date of consent (YYYY-MM-DD)")],
    form_version: Annotated[str, typer.Option("--form-version", help="Consent form version")],
) -> None:
    """Record informed consent."""
    c = cli(ctx)
    when = parse_date(on, "consent date")
    actor = c.actor()
    v = c.use_cases().consent(actor, pid, on=when, form_version=form_version)
    c.emit(
        {"participant_id": v.id, "consent_date": v.consent_date, "status": v.status},
        f"{v.id}: consent of {v.consent_date} recorded (form {form_version})",
    )


def withdraw(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id")],
    reason: Annotated[str, typer.Option("--reason", help="Why the participant withdraws")],
) -> None:
    """Withdraw a participant (everything recorded is kept)."""
    c = cli(ctx)
    actor = c.actor()
    v = c.use_cases().withdraw(actor, pid, reason=reason)
    c.emit({"participant_id": v.id, "status": v.status}, f"{v.id}: withdrawn")


def randomize(
    ctx: typer.Context, pid: Annotated[str, typer.Argument(help="Participant id")]
) -> None:
    """Randomize: prints the randomization number and label code, never the arm."""
    c = cli(ctx)
    actor = c.actor()
    r = c.use_cases().randomize(actor, pid)
    note = " (already randomized; no envelope used)" if r.already else ""
    c.emit(
        {
            "participant_id": r.participant_id,
            "randomization_number": r.randomization_number,
            "label_code": r.label_code,
            "already_randomized": r.already,
        },
        f"{r.participant_id}: randomization number {r.randomization_number}, "
        f"label code {r.label_code}{note}",
    )


def participants(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", help="Only this site")] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="eligible, ineligible, consented, randomized, withdrawn"),
    ] = None,
    search: Annotated[str | None, typer.Option("--search", help="Part of an id")] = None,
) -> None:
    """List participants you may see (blinded)."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        rows = trial.participants(actor, site=site, status=status, search=search)

    def text() -> str:
        lines = [f"{'id':<9} {'stratum':<9} {'status':<11} {'rand no':<8} {'label code':<12} flags"]
        for v in rows:
            flag = "UNBLINDED (emergency)" if v.unblinded_emergency else ""
            lines.append(
                f"{v.id:<9} {v.stratum:<9} {v.status:<11} "
                f"{v.randomization_number or '-':<8} {v.label_code or '-':<12} {flag}".rstrip()
            )
        return "\n".join(lines)

    c.emit([v.__dict__ for v in rows], text)


def schedule(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id")],
    on: Annotated[str, typer.Option("--date", help="Planned infusion day (YYYY-MM-DD)")],
) -> None:
    """Plan (or move) a randomized participant's infusion day; the pharmacy queue shows it."""
    c = cli(ctx)
    when = parse_date(on, "planned infusion date")
    actor = c.actor()
    v = c.use_cases().plan_infusion(actor, pid, on=when)
    c.emit(
        {"participant_id": v.id, "planned_infusion_date": when.isoformat()},
        f"{v.id}: infusion planned for {when.isoformat()}",
    )
