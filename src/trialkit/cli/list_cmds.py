"""Admin and custodian commands: seal, list verify/status/procedure, custodian approve, list
and grant."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from trialkit.cli.context import ask_secret, cli
from trialkit.domain.errors import IntegrityFailure, InvalidInput
from trialkit.domain.site_time import shown

list_app = typer.Typer(help="Sealed allocation lists.", no_args_is_help=True)
custodian_app = typer.Typer(help="Unblinding custodians and their keys.", no_args_is_help=True)


def _sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInput(f"--block-sizes {text!r}: give whole numbers like 4,6") from None


def seal(
    ctx: typer.Context,
    block_sizes: Annotated[
        str | None,
        typer.Option(
            "--block-sizes", help="Block sizes to draw from, e.g. 4,6 (default: protocol)"
        ),
    ] = None,
    per_stratum: Annotated[int, typer.Option("--per-stratum", help="Envelopes per stratum")] = 40,
    extend: Annotated[
        str | None, typer.Option("--extend", help="Add blocks to this stratum")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="Envelopes to add (--extend)")
    ] = None,
) -> None:
    """Generate and seal the allocation lists (admin). Prints counts only."""
    from rich.progress import Progress

    c = cli(ctx)
    sizes = _sizes(block_sizes)
    if extend is not None and count is None:
        raise InvalidInput("--extend needs --count N")
    actor = c.actor()
    trial = c.use_cases()
    if extend is not None:
        assert count is not None
        result = trial.extend_list(actor, stratum=extend, count=count, block_sizes=sizes)
    else:
        with Progress(transient=True, disable=c.json or not sys.stdout.isatty()) as bar:
            task = bar.add_task("Sealing lists", total=None)
            result = trial.seal_lists(
                actor,
                per_stratum=per_stratum,
                block_sizes=sizes,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    verb = "Extended" if extend else "Sealed"
    c.emit(
        {
            "lists": [{"stratum": x.stratum, "envelopes": x.envelopes} for x in result.lists],
            "total": result.total,
            "signing_key_fingerprint": result.signing_key_fingerprint,
        },
        "\n".join(
            [f"{verb} {result.total} envelopes in {len(result.lists)} strata:"]
            + [f"  {x.stratum:<10} {x.envelopes:>6}" for x in result.lists]
            + [f"Manifest signing key fingerprint: {result.signing_key_fingerprint}"]
        ),
    )


@list_app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Check every list's signature and commitments (exit 1 naming what fails)."""
    from trialkit.application.administration import verify_lists

    c = cli(ctx)
    c.trial()
    checks, custody = verify_lists(c.use_cases())
    bad = [x for x in checks if x.problem]
    if bad:
        first = bad[0]
        raise IntegrityFailure(f"list {first.list_id} ({first.stratum}): {first.problem}",
                               details={"ok": False, "problems": [x.__dict__ for x in bad]})
    if custody:
        raise IntegrityFailure(custody[0], details={"ok": False, "problems": custody})
    released = sum(x.envelopes for x in checks)
    c.emit(
        {"ok": True, "lists": len(checks), "envelopes": released},
        f"OK: {len(checks)} lists verified, every envelope in them ({released} released)",
    )


@list_app.command("status")
def status(ctx: typer.Context) -> None:
    """Envelopes sealed, used and left per stratum."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        rows = trial.stratum_usage(actor)

    def text() -> str:
        lines = [f"{'stratum':<10} {'sealed':>7} {'used':>6} {'left':>6}"]
        for r in rows:
            flag = "  EXHAUSTED" if r.sealed and not r.left else ""
            lines.append(f"{r.stratum:<10} {r.sealed:>7} {r.used:>6} {r.left:>6}{flag}")
        return "\n".join(lines)

    c.emit(
        [{"stratum": r.stratum, "sealed": r.sealed, "used": r.used, "left": r.left} for r in rows],
        text,
    )


@list_app.command("procedure")
def procedure(ctx: typer.Context) -> None:
    """After the lock, a custodian opens the sealed procedure: per list, the blocks drawn and
    where each begins and ends (audited; no arm)."""
    from trialkit.application.administration import open_procedures

    c = cli(ctx)
    actor = c.actor()
    password = ask_secret("Your password (unlocks your custodian key): ", "TRIALKIT_PASSWORD")
    segments = open_procedures(c.use_cases(), actor, password=password)

    def text() -> str:
        lines = []
        for g in segments:
            lines.append(
                f"{g.stratum} segment {g.segment} (list {g.list_id}, sealed "
                f"{shown(g.sealed_at)} by {g.sealed_by}): "
                f"{g.procedure.get('procedure')}, ratio "
                f"{':'.join(str(r) for r in g.procedure.get('ratio', []))}, "
                f"{g.count} envelopes, {g.released} released"
            )
            lines += [f"  block {b.first_seq}-{b.last_seq} (size {b.size})" for b in g.blocks]
        return "\n".join(lines)

    c.emit(
        [
            {
                "stratum": g.stratum,
                "segment": g.segment,
                "list_id": g.list_id,
                "first_seq": g.first_seq,
                "envelopes": g.count,
                "released": g.released,
                "procedure": g.procedure,
                "blocks": [
                    {"first_seq": b.first_seq, "last_seq": b.last_seq, "size": b.size}
                    for b in g.blocks
                ],
                "sealed_at": g.sealed_at.isoformat(),
                "sealed_by": g.sealed_by,
            }
            for g in segments
        ],
        text,
    )


FINGERPRINT_HELP = (
    "Their custodian key fingerprint, as they read it out to you (prompted for at a terminal)"
)


def _read_out(name: str, fingerprint: str | None) -> str:
    """The fingerprint given, or asked for at a terminal; checked for form before anyone
    signs in, so a mistyped one writes nothing."""
    from trialkit.services.administration.custody import normal_fingerprint

    if fingerprint is None:
        if not sys.stdin.isatty():
            raise InvalidInput(
                f"give --fingerprint: the custodian key fingerprint {name} read out to you"
            )
        fingerprint = input(f"Custodian key fingerprint {name} reads out to you: ")
    return normal_fingerprint(fingerprint)


@custodian_app.command("approve")
def approve(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The custodian to approve")],
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help=FINGERPRINT_HELP)
    ] = None,
) -> None:
    """Approve a new custodian as the second person (an approved custodian, or an
    investigator for the first one): check the key fingerprint they read out to you. An
    approving custodian hands them every list key (your password unlocks them)."""
    c = cli(ctx)
    fingerprint = _read_out(name, fingerprint)
    actor = c.actor()
    password = ask_secret("Your password (unlocks the list keys you hold): ", "TRIALKIT_PASSWORD")
    r = c.use_cases().approve_custodian(actor, name=name, fingerprint=fingerprint,
                                        password=password)
    c.emit(
        {"custodian": r.name, "approved_by": r.approved_by, "fingerprint": r.fingerprint,
         "lists_wrapped": r.lists_wrapped},
        f"Approved {r.name} as an unblinding custodian (key {r.fingerprint}); "
        f"{r.lists_wrapped} list keys wrapped to them",
    )


@custodian_app.command("reset-factor")
def reset_factor(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The custodian who lost their phone")],
    reason: Annotated[str, typer.Option("--reason", help="Why, e.g. 'phone lost'")],
) -> None:
    """A lost phone: as a second approved custodian, remove NAME's second factor (never an
    admin); NAME then enrols a new one with `trialkit user totp-enrol`. Audited."""
    from trialkit.application.administration import reset_second_factor

    c = cli(ctx)
    actor = c.actor()
    reset_second_factor(c.use_cases(), actor, name=name, reason=reason)
    c.emit({"custodian": name, "second_factor": False, "reset_by": actor.name},
           f"Reset {name}'s second factor; they enrol a new one with "
           "`trialkit user totp-enrol`")


@custodian_app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every custodian: approved (by whom) or pending, their key fingerprint, list keys held."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        rows, _ = trial.custodians(actor)

    def text() -> str:
        lines = [f"{'name':<16} {'role':<13} {'key':<20} {'lists':>5}  state"]
        for r in rows:
            lines.append(
                f"{r.name:<16} {r.role:<13} {r.fingerprint or '-':<20} {r.lists_held:>5}  "
                f"{r.state}"
            )
        return "\n".join(lines)

    c.emit(
        [
            {"name": r.name, "role": r.role, "state": r.state, "fingerprint": r.fingerprint,
             "approved_by": r.approved_by,
             "approved_at": r.approved_at.isoformat() if r.approved_at else None,
             "lists_held": r.lists_held}
            for r in rows
        ],
        text,
    )


@custodian_app.command("recover")
def recover(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The approved custodian to hand the keys to")],
    sheet: Annotated[
        Path | None,
        typer.Option("--sheet", help="The recovery sheet as text (else type its 24 words)"),
    ] = None,
    fingerprint: Annotated[
        str | None, typer.Option("--fingerprint", help=FINGERPRINT_HELP)
    ] = None,
) -> None:
    """Restore custody from the sponsor's recovery sheet: every list key is wrapped to a
    custodian whose key fingerprint you checked, who is approved by the sheet if nobody
    approved them yet (an investigator or approved custodian signs in; audited)."""
    from trialkit.application.administration import recover_custody
    from trialkit.domain.recovery import recovery_private_key, words_on_sheet

    c = cli(ctx)
    fingerprint = _read_out(name, fingerprint)
    if sheet is not None:
        if sheet.suffix.lower() == ".pdf":
            raise InvalidInput(
                f"--sheet {sheet}: a PDF sheet is read by a person; leave out --sheet and type "
                "its 24 words, or give the text sheet"
            )
        try:
            words = words_on_sheet(sheet.read_text(encoding="utf-8", errors="replace"))
        except OSError as err:
            raise InvalidInput(f"--sheet {sheet}: {err.strerror or err}") from None
    else:
        words = ask_secret("The 24 words of the recovery sheet: ", "TRIALKIT_RECOVERY_WORDS")
    recovery_private_key(words)  # mistyped words: bad input before anyone signs in
    actor = c.actor()
    r = recover_custody(c.use_cases(), actor, name=name, fingerprint=fingerprint, words=words)
    c.emit(
        {"custodian": r.custodian, "lists_wrapped": r.lists, "recovery_key": r.fingerprint},
        f"Custody restored: {r.lists} list keys wrapped to {r.custodian} "
        f"(recovery key {r.fingerprint})",
    )


@custodian_app.command("grant")
def grant(ctx: typer.Context, name: Annotated[str, typer.Argument(help="New custodian")]) -> None:
    """Give an approved custodian the list keys they lack (your password unlocks them)."""
    from trialkit.application.administration import grant_custodian

    c = cli(ctx)
    actor = c.actor()
    password = ask_secret("Your password (unlocks your custodian key): ", "TRIALKIT_PASSWORD")
    r = grant_custodian(c.use_cases(), actor, password=password, grantee=name)
    c.emit(
        {"custodian": r.grantee, "lists_granted": r.lists},
        f"Granted {r.lists} list keys to {r.grantee}",
    )
