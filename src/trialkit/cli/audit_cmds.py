"""``trialkit audit verify|log|checkpoint``."""

import dataclasses
import itertools
import json
import sys
from collections.abc import Iterator
from contextlib import closing
from typing import TYPE_CHECKING, Annotated

import typer

from trialkit.cli.context import cli

if TYPE_CHECKING:
    from trialkit.services.integrity.audit_review import ReviewedEvent

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
    checkpoints: Annotated[
        list[str] | None,
        typer.Option("--checkpoint", help="A signed checkpoint file kept outside the "
                     "database (audit checkpoint, exports, the lock): check the trail still "
                     "holds what it signed; give it once per file"),
    ] = None,
) -> None:
    """Recompute the hash chain and compare stored data with the audited state.
    Prints OK, or the first broken event and why (exit 1). Verifying writes nothing and
    needs no sign-in: anyone holding a copy can check it. With --checkpoint FILE: nothing
    the checkpoint counted was removed or rewritten, and its signature and signer's key
    hold."""
    from rich.progress import Progress

    from trialkit.application.review import verify_trail
    from trialkit.domain.errors import IntegrityFailure
    from trialkit.services.integrity.checkpoints import read_checkpoint

    c = cli(ctx)
    c.copy_read_only = read_only
    files = [(where, read_checkpoint(where)) for where in checkpoints or []]  # bad input first
    c.trial()
    with Progress(transient=True, disable=c.json or not sys.stdout.isatty()) as bar:
        task = bar.add_task("Verifying", total=None)
        held, report = verify_trail(
            c.use_cases(), files, expected_head=head,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if not report.ok:
        details = {"ok": False, "events": report.events, "first_bad_event": report.bad_seq,
                   "problem": report.problem}
        raise IntegrityFailure(f"verification failed: {report.problem}", details=details)
    from trialkit.domain.text import printable as p

    lines = [f"OK: {report.events} events, chain head {report.head[:16]}"]
    for h in held:
        cp = h.checkpoint
        lines.append(f"  checkpoint {p(h.where)}: holds ({cp.events} events, signed by "
                     f"{p(cp.signer)} on {cp.at:%Y-%m-%d %H:%M:%S} UTC)")
        if h.note:
            lines.append(f"    note: {p(h.note)}")
    doc = {"ok": True, "events": report.events, "head": report.head}
    if held:  # the document stays as it was when no checkpoint is given
        doc["checkpoints"] = [{"file": h.where, "events": h.checkpoint.events,
                               "head": h.checkpoint.head, "signer": h.checkpoint.signer,
                               "at": h.checkpoint.at.isoformat(), "note": h.note}
                              for h in held]
    c.emit(doc, "\n".join(lines))


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    out: Annotated[str, typer.Option("--out", help="The file to write, e.g. "
                                     "kethead-2026-03-02.checkpoint.json (never overwritten)")],
) -> None:
    """Write a signed checkpoint of the audit trail (any signed-in user): the number of
    events, the last one's hash, the time, the trial and your name and public key, signed
    with your own key. Keep it outside the database (mail it, print it, file it): later,
    `audit verify --checkpoint FILE` proves nothing it counted was removed or rewritten.
    Audited (audit.checkpoint); it says nothing about arms."""
    from trialkit.domain.credentials import key_fingerprint
    from trialkit.services.integrity.checkpoints import checkpoint_path

    c = cli(ctx)
    path = checkpoint_path(out)  # bad input before anyone signs in
    actor = c.actor()
    cp = c.use_cases().write_checkpoint(actor, path)
    c.emit(
        {"checkpoint": str(path), "events": cp.events, "head": cp.head,
         "at": cp.at.isoformat(), "signer": cp.signer, "public_key": cp.public_key},
        f"Checkpoint written to {path}: {cp.events} events, head {cp.head[:16]}, signed by "
        f"{cp.signer} (key {key_fingerprint(bytes.fromhex(cp.public_key))}). Keep it outside "
        "the database; check it with `trialkit audit verify --checkpoint FILE`.",
    )


@app.command("log")
def log(
    ctx: typer.Context,
    participant: Annotated[Opt, typer.Option(
        "--participant", help="One participant's whole history: screening to diary, the "
        "pharmacy's envelope openings, preparations and labels included")] = None,
    action: Annotated[Opt, typer.Option("--action", help="Actions starting with this")] = None,
    # --user is everywhere who acts (it is read before the command): the filter is --by.
    user: Annotated[Opt, typer.Option("--by", "--user-name",
                                      help="Only what this user did")] = None,
    since: Annotated[Opt, typer.Option(
        "--since", help="From this UTC date or time on (2026-03-01, 2026-03-01T09:30Z)")] = None,
    until: Annotated[Opt, typer.Option(
        "--until", help="Up to this UTC date (the whole day) or time")] = None,
    site: Annotated[Opt, typer.Option("--site", help="Events about this site's participants "
                                      "and lists")] = None,
    entity: Annotated[Opt, typer.Option("--entity", help="user, trial, participant, …")] = None,
    entity_id: Annotated[Opt, typer.Option("--id", help="One entity's id")] = None,
    sign_ins: Annotated[bool, typer.Option("--sign-ins", help="Show sign-ins and failed "
                                           "sign-ins too (left out by default)")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the newest N", min=1)] = None,
) -> None:
    """Show audit events, each with the fields it changed (monitor, admin, investigator).
    Streams: a trial of any size prints as it is read."""
    from trialkit.application.review import audit_events, check_filters
    from trialkit.services.integrity.audit_review import AuditFilter, time_bound

    c = cli(ctx)
    filters = AuditFilter(
        participant=_given(participant), user=_given(user), action=_given(action),
        since=time_bound(since, "--since", end=False), until=time_bound(until, "--until", end=True),
        site=_given(site, upper=True), entity=_given(entity), entity_id=_given(entity_id),
        sign_ins=sign_ins,
    )
    check_filters(c.use_cases(), filters)  # bad input is told before the sign-in is recorded
    actor = c.actor()
    with closing(audit_events(c.use_cases(), actor, filters, newest=limit)) as events:
        first = next(events, None)  # a failure is told before anything is printed
        stream = itertools.chain([] if first is None else [first], events)
        if c.json:
            _print_json(stream)
        else:
            _print_text(stream, training=c.training)


def _given(text: str | None, *, upper: bool = False) -> str | None:
    shown = (text or "").strip()
    return (shown.upper() if upper else shown) or None


def _print_json(events: Iterator["ReviewedEvent"]) -> None:
    """One JSON array, written an event at a time."""
    typer.echo("[", nl=False)
    for n, e in enumerate(events):
        doc = {
            "seq": e.seq, "at": e.at.isoformat(), "user": e.user, "role": e.role,
            "action": e.action, "entity": e.entity, "entity_id": e.entity_id,
            "reason": e.reason, "participants": list(e.participants),
            "changes": [dataclasses.asdict(ch) for ch in e.changes],
            "before": e.before, "after": e.after,
        }
        typer.echo(("," if n else "") + "\n" + json.dumps(doc, ensure_ascii=False, default=str),
                   nl=False)
    typer.echo("\n]")


# Fields listed per event in text; a 100,000-day import's batch would fill pages.
TEXT_FIELDS = 60


def _print_text(events: Iterator["ReviewedEvent"], *, training: bool) -> None:
    """One line per event, then its changed fields indented below it. Stored text is shown
    escaped: one event is one line, whatever its fields hold."""
    from trialkit.domain.audit_diff import describe
    from trialkit.domain.text import printable as p

    if training:
        typer.echo("TRAINING — not for clinical use")
    shown = 0
    for e in events:
        shown += 1
        line = (
            f"{e.seq:>6} {e.at:%Y-%m-%d %H:%M:%S} UTC {p(e.user):<12} {p(e.role):<12} "
            f"{p(e.action):<18} {p(e.entity)}:{p(e.entity_id)}"
        )
        if e.reason:
            line += f"  reason: {p(e.reason)}"
        lines = [line]
        lines += [f"{'':>8}{p(describe(ch))}" for ch in e.changes[:TEXT_FIELDS]]
        if len(e.changes) > TEXT_FIELDS:
            more = len(e.changes) - TEXT_FIELDS
            lines.append(f"{'':>8}… {more:,} more fields (--json shows them all)")
        typer.echo("\n".join(lines))
    if not shown:
        typer.echo("No events match.")


@app.command("unblindings")
def unblindings(ctx: typer.Context) -> None:
    """Every emergency unblinding and refused attempt: who, when, why and which participant
    (monitor, admin, investigator). Never the arm, whoever asks."""
    from trialkit.domain.site_time import shown
    from trialkit.domain.text import printable as p
    from trialkit.services.pharmacy.unblinding import unblinding_summary

    c = cli(ctx)
    actor = c.actor()
    entries = c.use_cases().unblindings(actor)  # a refusal is recorded in the audit trail
    doc = [{"seq": e.seq, "participant": e.participant_id, "site": e.site,
            "at": e.at.isoformat(), "at_site": shown(e.at_site), "user": e.user,
            "role": e.role, "outcome": "refused" if e.refused else "unblinded",
            "reason": e.reason} for e in entries]

    def text() -> str:
        lines = []
        for e in entries:
            outcome = "REFUSED  " if e.refused else "unblinded"
            lines.append(f"{e.seq:>6} {shown(e.at_site):<22} {p(e.participant_id):<9} "
                         f"{p(e.site):<5} {outcome} by {p(e.user)} ({p(e.role)}): "
                         f"{p(e.reason)}")
        lines.append(unblinding_summary(entries))
        return "\n".join(lines)

    c.emit(doc, text)
