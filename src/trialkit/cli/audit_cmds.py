"""``trialkit audit verify|log``."""

from typing import Annotated

import typer

from trialkit.cli.context import cli

Opt = str | None

app = typer.Typer(help="Verify and read the audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    head: Annotated[
        str | None,
        typer.Option(
            "--head", help="A chain head printed earlier: check the chain still contains it"
        ),
    ] = None,
    read_only: Annotated[
        bool,
        typer.Option("--read-only", help="Open the database for reading only (a copy, a "
                     "replica); so does a URL like file:copy.db?mode=ro"),
    ] = False,
) -> None:
    """Recompute the hash chain and compare stored data with the audited state.
    Prints OK, or the first broken event and why (exit 1). Verifying writes nothing and
    needs no sign-in: anyone holding a copy can check it."""
    from trialkit.domain.errors import IntegrityFailure
    from trialkit.services.integrity import verify as run_verify

    c = cli(ctx)
    c.read_only = read_only
    c.trial()
    with c.read() as s:
        report = run_verify(s, expected_head=head)
    if not report.ok:
        details = {"ok": False, "events": report.events, "first_bad_event": report.bad_seq,
                   "problem": report.problem}
        raise IntegrityFailure(f"verification failed: {report.problem}", details=details)
    c.emit(
        {"ok": True, "events": report.events, "head": report.head},
        f"OK: {report.events} events, chain head {report.head[:16]}",
    )


@app.command("log")
def log(
    ctx: typer.Context,
    user: Annotated[Opt, typer.Option("--user-name", help="Only this user's events")] = None,
    action: Annotated[Opt, typer.Option("--action", help="Actions starting with this")] = None,
    entity: Annotated[Opt, typer.Option("--entity", help="user, trial, participant, …")] = None,
    entity_id: Annotated[Opt, typer.Option("--id", help="One entity's id")] = None,
    participant: Annotated[Opt, typer.Option("--participant", help="One participant")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the newest N", min=1)] = None,
) -> None:
    """Show audit events (monitor, admin, investigator)."""
    from trialkit.services.audit import log as read_log

    c = cli(ctx)
    actor = c.actor()
    if participant:
        entity, entity_id = "participant", participant
    with c.read() as s:
        entries = read_log(
            s, actor, user=user, action=action, entity=entity, entity_id=entity_id, limit=limit
        )

    def text() -> str:
        # Stored text is shown escaped: one event is one line, whatever its fields hold.
        from trialkit.domain.text import printable as p

        lines = []
        for e in entries:
            line = (
                f"{e.seq:>6} {e.at:%Y-%m-%d %H:%M:%S} UTC {p(e.user):<12} {p(e.role):<12} "
                f"{p(e.action):<18} {p(e.entity)}:{p(e.entity_id)}"
            )
            if e.reason:
                line += f"  reason: {p(e.reason)}"
            lines.append(line)
            if e.before:
                lines.append(f"{'':>8}before: {p(_short(e.before))}")
            if e.after:
                lines.append(f"{'':>8}after:  {p(_short(e.after))}")
        return "\n".join(lines) or "No events match."

    c.emit([e.__dict__ for e in entries], text)


SHOWN = 400


def _short(state: str) -> str:
    """A state as one readable line: a 100,000-row import's batch event would fill pages."""
    if len(state) <= SHOWN:
        return state
    return f"{state[:SHOWN]}… ({len(state):,} characters; --json shows all)"
