"""Pharmacy commands: queue, dispense, label, preparation, unblind.

What these print after opening an envelope is UNBLINDED and goes only to the person who
typed the command (a pharmacist or an unblinding custodian); labels are blinded."""

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from trialkit.cli.context import YES_HELP, Cli, ask_secret, cli, confirm_irreversible, env
from trialkit.cli.enrol_cmds import parse_pairs
from trialkit.domain.errors import InvalidInput
from trialkit.domain.site_time import shown

if TYPE_CHECKING:
    from trialkit.domain.roles import Permission
    from trialkit.services.actor import Actor
    from trialkit.services.pharmacy.dispensing import Dispensing, PreparationRecord

UNBLINDED = "UNBLINDED - for the research pharmacy only: do not show this to blinded staff"
OPEN_PROMPT = "Password to open the envelope (custodian key of {}): "
CHECKER_PROMPT = "Password of {}, who checked the preparation (signs the check): "


def _when(at: datetime) -> str:
    # Services hand over the site's local times; shown with their zone (EST, EDT).
    return shown(at)


def _pdf_path(text: str, option: str) -> Path:
    """Where labels go: a .pdf file in a folder that exists (checked before anything),
    absolute so that the path shown says where it is."""
    path = Path(text).expanduser().absolute()
    if path.suffix.lower() != ".pdf":
        raise InvalidInput(f"{option} {text!r}: give a file name ending in .pdf")
    if path.is_dir():
        raise InvalidInput(f"{option} {text!r} is a folder: give a file name ending in .pdf")
    if not path.parent.is_dir():
        raise InvalidInput(f"{option} {text!r}: folder {path.parent} does not exist")
    return path


def _key_password(actor: "Actor", permission: "Permission", prompt: str) -> str:
    """The actor's password again, to unlock their custodian key: asked before any
    use case starts (a prompt must not hold the database), and not at all from someone
    the service will refuse anyway (it audits the refusal)."""
    if not actor.can(permission):
        return ""
    return ask_secret(prompt, "TRIALKIT_PASSWORD")


def _checker_password(actor: "Actor", checked_by: str | None) -> str:
    """The checker's own password, their signature of the check: asked (or read from
    TRIALKIT_CHECKER_PASSWORD) before any use case starts, and only when a checker is
    named by someone the service will not refuse anyway."""
    from trialkit.domain.roles import Permission

    name = (checked_by or "").strip()
    if not name or not actor.can(Permission.DISPENSE):
        return ""
    return ask_secret(CHECKER_PROMPT.format(name), "TRIALKIT_CHECKER_PASSWORD")


def _checker_code(c: Cli, checker_password: str) -> str | None:
    """The checker's code from their authenticator app when the protocol gives custodians a
    second factor: TRIALKIT_CHECKER_TOTP, or asked at a terminal (of every checker alike)."""
    code = env("TRIALKIT_CHECKER_TOTP")
    if code is None and checker_password and c.trial().second_factor and sys.stdin.isatty():
        code = input("Checker's code from their authenticator app (Enter if none): ")
    return code


def _record_doc(r: "PreparationRecord") -> dict[str, Any]:
    return {
        "prepared_at": r.prepared_at.isoformat(),
        "prepared_by": r.prepared_by,
        "checked_by": r.checked_by,
        "check_signed_at": None if r.checked_at is None else r.checked_at.isoformat(),
        "expires_at": r.expires_at.isoformat(),
        "lots": r.lots,
        "label_prints": r.label_prints,
        "number": r.number,
    }


def _dispensing_doc(d: "Dispensing") -> dict[str, Any]:
    from trialkit.domain.dosing import format_ml, format_number

    return {
        "unblinded": True,
        "participant_id": d.participant_id,
        "site": d.site,
        "randomization_number": d.randomization_number,
        "label_code": d.label_code,
        "envelope": d.envelope,
        "commitment_verified": True,
        "arm": d.arm_code,
        "arm_name": d.arm_name,
        "dosing_weight_kg": format_number(d.plan.dosing_weight_kg),
        "weight_capped": d.plan.capped,
        "preparations": [
            {
                "id": dose.preparation_id,
                "name": dose.name,
                "product": d.products[dose.preparation_id],
                "volume_ml": format_ml(dose.volume_ml),
                "rate_ml_h": None if dose.rate_ml_h is None else format_ml(dose.rate_ml_h),
                "hours": None if dose.hours is None else format_number(dose.hours),
                "instructions": dose.instructions,
            }
            for dose in d.plan.doses
        ],
        "total_ml": format_ml(d.plan.total_ml),
        "concomitant": list(d.concomitant),
        "preparation": None if d.record is None else _record_doc(d.record),
    }


def _dispensing_text(d: "Dispensing") -> list[str]:
    from trialkit.domain.dosing import format_ml, format_number

    weight = f"{format_number(d.plan.dosing_weight_kg)} kg"
    if d.plan.capped:
        weight += f" (capped by the protocol; recorded {format_number(d.plan.weight_kg)} kg)"
    lines = [
        UNBLINDED,
        f"{d.participant_id} ({d.randomization_number}, label code {d.label_code}), "
        f"envelope {d.envelope}: commitment verified",
        f"Arm: {d.arm_code} - {d.arm_name}",
        f"Dosing weight: {weight}",
    ]
    for dose in d.plan.doses:
        lines.append(f"  {dose.name}: {d.products[dose.preparation_id]}")
        if dose.rate_ml_h is None:
            amount = f"{format_ml(dose.volume_ml)} mL ({format_number(dose.ml_per_kg)} mL/kg)"
        else:
            assert dose.hours is not None
            amount = (
                f"{format_ml(dose.volume_ml)} mL at {format_ml(dose.rate_ml_h)} mL/h "
                f"({format_number(dose.ml_per_kg)} mL/kg/h) for {format_number(dose.hours)} h"
            )
        lines.append(f"      {amount}. {dose.instructions or ''}".rstrip())
    lines.append(f"  Total volume: {format_ml(d.plan.total_ml)} mL")
    if d.concomitant:
        lines.append("Given to every participant (not randomized): " + "; ".join(d.concomitant))
    return lines


def _record_text(r: "PreparationRecord") -> list[str]:
    lots = ", ".join(f"{prep} {lot}" for prep, lot in r.lots.items())
    again = (
        f"  Preparation {r.number}: the earlier ones and their labels are void"
        if r.number > 1
        else None
    )
    signed = (
        "the check not signed (recorded before checks were signed)"
        if r.checked_at is None
        else f"the check signed by {r.checked_by} {_when(r.checked_at)}"
    )
    return [
        f"Preparation: prepared {_when(r.prepared_at)} by {r.prepared_by}, checked by "
        f"{r.checked_by}; expires {_when(r.expires_at)}",
        f"  Lots: {lots}",
        f"  {signed[0].upper()}{signed[1:]}",
        *([again] if again else []),
    ]


def queue(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option("--site", help="Only this site")] = None,
) -> None:
    """Randomized participants awaiting preparation, oldest first (pharmacist; blinded):
    never prepared, or prepared but expired before the infusion (to prepare again)."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        rows = trial.dispense_queue(actor, site=site)

    def text() -> str:
        if not rows:
            return "No participant is awaiting preparation."
        lines = [
            f"{'site':<5} {'id':<9} {'rand no':<8} {'randomized':<20}  {'weight':>8}  "
            f"{'infusion':<10}  flags"
        ]
        for e in rows:
            flags = ["unblinded_emergency"] if e.unblinded_emergency else []
            if e.expired_at is not None:
                flags.append(f"expired {_when(e.expired_at)}: prepare again")
            flag = "; ".join(flags)
            lines.append(
                f"{e.site:<5} {e.participant_id:<9} {e.randomization_number:<8} "
                f"{_when(e.randomized_at):<20}  {f'{e.weight_kg:.1f} kg':>8}  "
                f"{e.infusion_date or '-':<10}  {flag}".rstrip()
            )
        return "\n".join(lines)

    c.emit(
        [
            {
                "participant_id": e.participant_id,
                "site": e.site,
                "randomization_number": e.randomization_number,
                "label_code": e.label_code,
                "randomized_at": e.randomized_at.isoformat(),
                "weight_kg": e.weight_kg,
                "infusion_date": e.infusion_date,
                "unblinded_emergency": e.unblinded_emergency,
                "expired_at": None if e.expired_at is None else e.expired_at.isoformat(),
            }
            for e in rows
        ],
        text,
    )


def dispense(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id, e.g. TWH-001")],
    label_out: Annotated[
        str | None,
        typer.Option("--label-out", help="Write the two blinded labels to this PDF file"),
    ] = None,
    lot: Annotated[
        list[str] | None,
        typer.Option(
            "--lot",
            help="PREPARATION=LOT for every preparation, e.g. --lot bolus=KT2403-17 "
            "--lot infusion=NS2401-02 (3-20 of A-Z, 0-9, '-')",
        ),
    ] = None,
    checked_by: Annotated[
        str | None,
        typer.Option(
            "--checked-by",
            help="The second pharmacist who checked the preparation; they sign the check "
            "with their password (asked, or TRIALKIT_CHECKER_PASSWORD)",
        ),
    ] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--reprepare",
            help="Prepare again (the preparation expired or was spoilt before the infusion): "
            "the current one and its labels become void; needs --reason, --lot and "
            "--checked-by",
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why it is prepared again (--reprepare)")
    ] = None,
) -> None:
    """Open a participant's sealed envelope (pharmacist): shows the arm and how to prepare
    it. With --lot and --checked-by the preparation is recorded (the checker signs with
    their own password); with --label-out its labels are written too. With --reprepare
    --reason TEXT an expired (or spoilt) preparation is made again from the same envelope.
    Needs your password again to unlock your custodian key."""
    from trialkit.domain.roles import Permission

    c = cli(ctx)
    out = _pdf_path(label_out, "--label-out") if label_out else None
    lots = parse_pairs(lot, "lot") if lot else None
    if reason is not None and not again:
        raise InvalidInput("--reason goes with --reprepare (preparing again)")
    if again and not (reason or "").strip():
        raise InvalidInput("say why it is prepared again: --reprepare --reason TEXT")
    if again and (lots is None or not (checked_by or "").strip()):
        raise InvalidInput(
            "preparing again records the new preparation: give a --lot for each preparation "
            "and --checked-by NAME (to see the arm and the current lots first: "
            f"trialkit preparation {pid})"
        )
    actor = c.actor()
    password = _key_password(actor, Permission.DISPENSE, OPEN_PROMPT.format(actor.name))
    checker_password = _checker_password(actor, checked_by)
    checker_code = _checker_code(c, checker_password)
    trial = c.use_cases()  # the labels' PDF is written before the record is committed
    if again:
        assert lots is not None and checked_by is not None
        d = trial.prepare_again(
            actor, pid, reason=reason or "", password=password, lots=lots,
            checked_by=checked_by, checker_password=checker_password,
            checker_code=checker_code, labels_path=out,
        )
    else:
        d = trial.prepare(
            actor, pid, password=password, lots=lots, checked_by=checked_by,
            checker_password=checker_password, checker_code=checker_code, labels_path=out,
        )

    def text() -> str:
        lines = _dispensing_text(d)
        if d.record is None:
            preps = " ".join(f"--lot {dose.preparation_id}=LOT" for dose in d.plan.doses)
            lines.append(
                "Not recorded yet. Once prepared and checked: trialkit dispense "
                f"{d.participant_id} {preps} --checked-by NAME --label-out FILE.pdf"
            )
        else:
            lines += _record_text(d.record)
        if out is not None:
            lines.append(f"Labels: {out} ({len(d.plan.doses)} labels, blinded)")
        return "\n".join(lines)

    c.emit(_dispensing_doc(d) | {"labels": str(out) if out else None}, text)


def label(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="PDF file to write the labels to (default: labels-<PID>.pdf in "
            "TRIALKIT_LABEL_DIR, else the protocol's [labels] folder, else the current folder)",
        ),
    ] = None,
) -> None:
    """Print a dispensed participant's blinded labels again (pharmacist; logged, and the
    label shows the reprint count)."""
    from trialkit.render.labels import LABEL_DIR_ENV, default_label_file, print_note

    c = cli(ctx)
    if out is None:
        configured = c.use_cases().protocol().labels.folder
        where = LABEL_DIR_ENV if os.environ.get(LABEL_DIR_ENV) else "the protocol's [labels] folder"
        path = _pdf_path(str(default_label_file(pid.strip().upper(), configured)), where)
    else:
        path = _pdf_path(out, "--out")
    actor = c.actor()
    sheet = c.use_cases().reprint_labels(actor, pid, labels_path=path)
    note = print_note(sheet.print_number, sheet.preparation_number).lower()
    c.emit(
        {
            "participant_id": sheet.participant_id,
            "labels": str(path),
            "count": len(sheet.items),
            "print_number": sheet.print_number,
        },
        f"{sheet.participant_id}: {len(sheet.items)} labels written to {path} ({note})",
    )


def preparation(
    ctx: typer.Context, pid: Annotated[str, typer.Argument(help="Participant id")]
) -> None:
    """Show a recorded preparation with its sealed details: arm and product lots
    (pharmacist; unblinded, logged as an opening)."""
    from trialkit.domain.roles import Permission

    c = cli(ctx)
    actor = c.actor()
    password = _key_password(actor, Permission.DISPENSE, OPEN_PROMPT.format(actor.name))
    d = c.use_cases().read_preparation(actor, pid, password=password)
    record = d.record
    assert record is not None
    c.emit(_dispensing_doc(d), lambda: "\n".join(_dispensing_text(d) + _record_text(record)))


def unblind(
    ctx: typer.Context,
    pid: Annotated[str, typer.Argument(help="Participant id (one at a time)")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why this emergency unblinding is needed")
    ] = "",
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
) -> None:
    """Emergency unblinding of one participant (pharmacist or custodian investigator):
    the arm is shown to you only, the reason is logged and the participant is flagged in
    every blinded view. Cannot be undone: asks at a terminal, and needs --yes without one."""
    from trialkit.domain.roles import Permission
    from trialkit.services.pharmacy.unblinding import check_reason

    c = cli(ctx)
    check_reason(reason)
    confirm_irreversible(
        f"Unblind {pid.strip().upper()}? Its arm will be shown to you and the unblinding "
        "logged; this cannot be undone", yes=yes, what="an emergency unblinding")
    actor = c.actor()
    prompt = f"Re-enter the password of {actor.name} to unblind: "
    password = _key_password(actor, Permission.UNBLIND, prompt)
    u = c.use_cases().unblind(actor, pid, reason=reason, password=password)

    def text() -> str:
        lines = [
            f"UNBLINDED (emergency) - shown to {actor.name} only; logged with your reason",
            f"{u.participant_id} ({u.randomization_number}): {u.arm_code} - {u.arm_name}",
            f"{u.participant_id} is now flagged unblinded_emergency in every blinded view.",
        ]
        if u.record is not None:
            lines += _record_text(u.record)
        return "\n".join(lines)

    c.emit(
        {
            "unblinded": True,
            "participant_id": u.participant_id,
            "randomization_number": u.randomization_number,
            "arm": u.arm_code,
            "arm_name": u.arm_name,
            "at": u.at.isoformat(),
            "reason": u.reason,
            "preparation": None if u.record is None else _record_doc(u.record),
        },
        text,
    )

