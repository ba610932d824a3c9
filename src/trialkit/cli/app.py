"""The ``trialkit`` command: the scriptable face of the same services the TUI uses.

Each command imports what it needs inside its body: printing help must stay fast."""

from pathlib import Path
from typing import Annotated

import typer

from trialkit.cli.context import (
    DEFAULT_DB,
    YES_HELP,
    Cli,
    ask_new_password,
    cli,
    confirm_irreversible,
    env,
)
from trialkit.domain.errors import InvalidInput

app = typer.Typer(
    name="trialkit",
    help="Sealed, stratified randomization and headache-diary capture for the KetHead trial.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback(invoke_without_command=True)
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL or SQLite file [env TRIALKIT_DB; trialkit.db]"),
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Who acts [env TRIALKIT_USER]")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document")] = False,
) -> None:
    """Options that apply to every command."""
    ctx.obj = Cli(db=db or env("TRIALKIT_DB") or DEFAULT_DB, user=user, json=json_out)
    if ctx.invoked_subcommand is None:
        open_tui(ctx.obj)


def open_tui(c: Cli) -> None:
    """The sign-in screen paints first and the database opens in its first worker (which
    checks the schema and turns TRAINING on), so start-up pays for no database work. With
    TRIALKIT_CLOCK set the trial is read first: only a training trial takes a stated time."""
    from trialkit.tui.app import make_app

    if env("TRIALKIT_CLOCK") is not None:
        info = c.trial()
        make_app(c.engine(), clock=c.clock(), db_label=c.db, training=info.training).run()
        return
    from trialkit.tui.launch import open_tui_lazily

    open_tui_lazily(c.db)


@app.command()
def tui(ctx: typer.Context) -> None:
    """Open the terminal UI (the same as `trialkit` alone)."""
    open_tui(cli(ctx))


@app.command()
def init(
    ctx: typer.Context,
    protocol: Annotated[Path, typer.Argument(help="Protocol file, e.g. protocols/kethead.toml")],
    admin: Annotated[str, typer.Option("--admin", help="Name of the first admin")],
    training: Annotated[
        bool, typer.Option("--training", help="A training trial: TRAINING everywhere")
    ] = False,
    recovery_sheet: Annotated[
        Path | None,
        typer.Option(
            "--recovery-sheet",
            help="Where to write the recovery sheet once (.pdf, or .txt for text; default "
            "TRIAL-recovery-sheet-FINGERPRINT.pdf here)",
        ),
    ] = None,
) -> None:
    """Create the database, load the protocol and create the first admin; write the trial's
    recovery sheet once, for the sponsor's safe."""
    from trialkit.application.maintenance import create_trial
    from trialkit.cli.context import resolve_clock
    from trialkit.domain.protocol import load_protocol

    c = cli(ctx)
    clock = resolve_clock(training=training)
    c.training = training
    loaded = load_protocol(protocol)
    if recovery_sheet is not None and recovery_sheet.exists():
        raise InvalidInput(f"--recovery-sheet {recovery_sheet}: the file exists; nothing was done")
    password = ask_new_password(f"New password for {admin}: ")
    made = create_trial(c.db, loaded, admin=admin, password=password, training=training,
                        clock=clock, recovery_sheet=recovery_sheet)
    facts = loaded.protocol
    kind = "training trial" if training else "trial"
    where = made.database
    c.emit(
        {
            "trial": facts.trial.id,
            "version": facts.trial.version,
            "protocol_sha256": loaded.sha256,
            "training": training,
            "admin": admin,
            "database": where,
            "recovery_sheet": str(made.sheet),
            "recovery_key": made.fingerprint,
        },
        f"Created {kind} {facts.trial.id} (protocol {facts.trial.version}, "
        f"sha256 {loaded.sha256[:12]}…) in {where}; admin: {admin}\n"
        f"Recovery sheet written to {made.sheet} (key {made.fingerprint}): print it, "
        "seal it in an envelope for the sponsor's safe and delete the file. It is shown only "
        "this once and never stored.",
    )


@app.command()
def demo(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild even if it exists")] = False,
    participants: Annotated[int | None, typer.Option(
        "--participants", min=1, max=200_000,
        help="Generate N participants at every stage (a trial at scale)")] = None,
) -> None:
    """Build a ready demo KetHead training trial (users for every role)."""
    from trialkit.demo import build_demo

    c = cli(ctx)
    db = c.db if c.db != DEFAULT_DB else "demo.db"
    summary = build_demo(db, fresh=fresh, participants=participants)
    c.training = True
    c.emit(summary.as_dict(), summary.text())


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", help="The address people open, when a proxy sits in "
                     "front (https://host/prefix); needed for any --host but loopback"),
    ] = None,
    max_sessions: Annotated[
        int, typer.Option("--max-sessions", help="Browser sessions (app processes) in all",
                          min=1, max=1000)] = 20,
    max_per_user: Annotated[
        int, typer.Option("--max-per-user", help="Browser sessions per user", min=1,
                          max=100)] = 2,
) -> None:
    """Serve the terminal UI in a browser: a sign-in page first (the same accounts,
    throttling and audit as the TUI); an app process only for a signed-in user."""
    import shlex
    import sys

    from trialkit.application.opening import public_url as public_url_of
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.domain.clock import SystemClock
    from trialkit.web.gate import Gate, GateSettings, SignedIn, check_binding
    from trialkit.web.gate import serve as run

    c = cli(ctx)
    url = check_binding(host, port, public_url)
    info = c.trial()
    # The gate signs people in on the real clock, whatever this command was started with.
    trial = TrialDatabase(engine=c.engine(), clock=SystemClock(), label=public_url_of(c.db))

    def sign_in(name: str, password: str, code: str | None) -> SignedIn:
        actor = trial.sign_in(name, password, code).actor
        key = actor.signing_key
        return SignedIn(actor.name, key.private_bytes_raw() if key is not None else None)

    def activate(name: str, code: str, password: str) -> str:
        from trialkit.cli.wording import activated_in_a_browser

        done = trial.activate_account(name, code, password)
        return activated_in_a_browser(done.name, done.signing_key, done.custodian_key,
                                      second_factor=info.second_factor)

    # Each browser session runs `trialkit tui` in a child process. The database URL (which
    # may carry a password) reaches it in the environment, never on its command line,
    # where any user of the machine could read it.
    import os

    os.environ["TRIALKIT_DB"] = c.db
    command = f"{shlex.quote(sys.executable)} -m trialkit tui"
    settings = GateSettings(host=host, port=port, public_url=url, title=info.title,
                            training=info.training, idle_seconds=info.idle_lock_minutes * 60.0,
                            max_sessions=max_sessions, max_per_user=max_per_user,
                            second_factor=info.second_factor)
    run(Gate(command, settings, sign_in, activate))


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
    backup: Annotated[
        Path | None,
        typer.Option("--backup", help="Where the backup taken first goes [beside a SQLite "
                     "file; else in the current directory]"),
    ] = None,
) -> None:
    """Back the database up, then apply schema migrations (admin). The admin signs in on the
    new schema in the same transaction and the upgrade is audited (old and new schema, the
    backup); a refused sign-in rolls it back. Cannot be undone: asks at a terminal, and
    needs --yes without one."""
    from trialkit.application.maintenance import (
        pending_upgrade,
        upgrade_backup_path,
        upgrade_schema,
    )
    from trialkit.application.opening import public_url
    from trialkit.cli.context import ask_secret, resolve_clock

    c = cli(ctx)
    engine = c.engine(check_schema=False)
    revision, head = pending_upgrade(engine)
    if revision is not None and revision != head:
        confirm_irreversible(
            f"Upgrade the schema of {public_url(c.db)} from {revision} to {head}? "
            "A database cannot be downgraded (a backup is taken first)",
            yes=yes, what="a schema upgrade")
    name = c.user or env("TRIALKIT_USER")
    if name is None:
        raise InvalidInput("who is acting? give --user NAME or set TRIALKIT_USER")
    password = ask_secret(f"Password for {name}: ", "TRIALKIT_PASSWORD")
    out = backup or upgrade_backup_path(c.db, revision or "none")
    done = upgrade_schema(engine, name, password, out, clock=resolve_clock(training=False))
    if done.backup is None:
        c.emit({"schema": done.after, "upgraded": False},
               f"Database schema is at {done.after}; nothing to upgrade")
        return
    c.emit({"schema": done.after, "upgraded": True, "from": done.before,
            "backup": str(done.backup.path), "backup_sha256": done.backup.sha256},
           f"Backed up to {done.backup.path} (sha256 {done.backup.sha256[:12]}…); "
           f"database schema upgraded from {done.before} to {done.after}")


@app.command()
def backup(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="The new backup file")],
) -> None:
    """Write a consistent backup while the trial runs (admin; audited): SQLite through its
    online backup API, PostgreSQL through pg_dump -Fc (which must be on the PATH)."""
    from trialkit.application.maintenance import check_new_backup_file

    c = cli(ctx)
    check_new_backup_file(out)
    actor = c.actor()
    done = c.use_cases().backup(actor, out)
    c.emit({"file": str(done.path), "kind": done.kind, "bytes": done.size,
            "sha256": done.sha256, "events": done.events, "head": done.head},
           f"Backed up to {done.path} ({done.kind}, {done.size:,} bytes, sha256 "
           f"{done.sha256[:12]}…): {done.events} audit events, chain head {done.head[:16]}")


@app.command("restore-check")
def restore_check(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A backup from `trialkit backup`")],
    into: Annotated[
        str | None,
        typer.Option("--into", help="Restore it first into this NEW database (a new SQLite "
                     "file, or an empty PostgreSQL database: needed for a pg_dump file)"),
    ] = None,
) -> None:
    """Open a backup read-only and verify its audit trail and allocation lists (exit 1
    naming what fails). Needs no sign-in and writes nothing to the backup."""
    from trialkit.application.maintenance import check_backup
    from trialkit.application.opening import public_url

    c = cli(ctx)
    restored = check_backup(file, into=into, live=c.db)
    done, where, gap = restored.check, restored.database, restored.live
    facts: dict[str, object] = {
        "ok": True, "database": where, "schema": done.schema, "events": done.events,
        "head": done.head, "lists": done.lists, "envelopes": done.envelopes,
        "newest_event": done.newest_event}
    lines = [f"OK: {where} (schema {done.schema}): {done.events} audit events, chain head "
             f"{done.head[:16]}, newest event {done.newest_event}; {done.lists} lists "
             f"verified ({done.envelopes} envelopes released)"]
    if isinstance(gap, str):
        lines.append(f"Not compared with a live database: {gap}")
    else:
        facts["live"] = {"database": public_url(c.db), "schema": gap.schema,
                         "events": gap.events, "holds_backup_head": gap.holds_head,
                         "lacking": gap.lacking, "lacking_since": gap.since,
                         "lacking_actions": gap.actions}
        lines.append(f"Live database {public_url(c.db)} (schema {gap.schema}, {gap.events} "
                     f"audit events): {gap.describe()}.")
    c.emit(facts, "\n".join(lines))


def register() -> None:
    from trialkit.cli import (
        audit_cmds,
        design_cmds,
        diary_cmds,
        enrol_cmds,
        list_cmds,
        pharmacy_cmds,
        report_cmds,
        user_cmds,
    )

    app.add_typer(user_cmds.app, name="user")
    app.add_typer(audit_cmds.app, name="audit")
    app.command("seal")(list_cmds.seal)
    app.add_typer(list_cmds.list_app, name="list")
    app.add_typer(list_cmds.custodian_app, name="custodian")
    app.add_typer(design_cmds.design_app, name="design")
    app.add_typer(design_cmds.report_app, name="report")
    enrol_cmds.register(app)
    diary_cmds.register(app)
    pharmacy_cmds.register(app)
    report_cmds.register(app)


register()
