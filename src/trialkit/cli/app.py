"""The ``trialkit`` command: the scriptable face of the same services the TUI uses.

Each command imports what it needs inside its body, and the commands of the other CLI
modules are imported only when one of them runs or shows its own help: printing help must
stay fast."""

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

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

# How every command is built and shown: plain Click help, no completion, no pretty traces.
SETTINGS: dict[str, Any] = {
    "add_completion": False, "pretty_exceptions_enable": False, "rich_markup_mode": None}


@dataclass(frozen=True)
class Elsewhere:
    """A command (or group) of another CLI module: ``attribute`` of ``trialkit.cli.MODULE``
    (a command function, or a Typer app for a group), and the first sentence of its help,
    which the root's --help lists (shortened as Click shortens any help) without importing
    the module. tests/cli/test_lazy_help.py keeps each equal to the command's own."""

    module: str
    attribute: str
    summary: str
    group: bool = False


# Typer lists a group's commands before its groups, each in the order they were added.
ELSEWHERE: dict[str, Elsewhere] = {
    "seal": Elsewhere("list_cmds", "seal", "Generate and seal the allocation lists (admin)."),
    "screen": Elsewhere("enrol_cmds", "screen",
                        "Screen a participant: prints the participant id and eligibility."),
    "consent": Elsewhere("enrol_cmds", "consent", "Record informed consent."),
    "withdraw": Elsewhere("enrol_cmds", "withdraw",
                          "Withdraw a participant (everything recorded is kept)."),
    "randomize": Elsewhere("enrol_cmds", "randomize", "Randomize: prints the randomization "
                           "number and label code, never the arm."),
    "participants": Elsewhere("enrol_cmds", "participants",
                              "List participants you may see (blinded)."),
    "schedule": Elsewhere("enrol_cmds", "schedule", "Plan (or move) a randomized "
                          "participant's infusion day; the pharmacy queue shows it."),
    "infuse": Elsewhere("diary_cmds", "infuse", "Record the infusion (study day 0) of a "
                        "randomized, dispensed participant."),
    "outcomes": Elsewhere("diary_cmds", "outcomes", "Derived outcomes per window: days "
                          "recorded, headache days, proration, change from baseline "
                          "(blinded)."),
    "queue": Elsewhere("pharmacy_cmds", "queue", "Randomized participants awaiting "
                       "preparation, oldest first (pharmacist; blinded): never prepared, or "
                       "prepared but expired before the infusion (to prepare again)."),
    "dispense": Elsewhere("pharmacy_cmds", "dispense", "Open a participant's sealed envelope "
                          "(pharmacist): shows the arm and how to prepare it."),
    "label": Elsewhere("pharmacy_cmds", "label", "Print a dispensed participant's blinded "
                       "labels again (pharmacist; logged, and the label shows the reprint "
                       "count)."),
    "preparation": Elsewhere("pharmacy_cmds", "preparation", "Show a recorded preparation "
                             "with its sealed details: arm and product lots (pharmacist; "
                             "unblinded, logged as an opening)."),
    "unblind": Elsewhere("pharmacy_cmds", "unblind", "Emergency unblinding of one "
                         "participant (pharmacist or custodian investigator): the arm is "
                         "shown to you only, the reason is logged and the participant is "
                         "flagged in every blinded view."),
    "status": Elsewhere("report_cmds", "status", "Enrolment per site and stratum against "
                        "target, diary completeness, overdue diaries and the CONSORT flow "
                        "(any role; blinded)."),
    "lock": Elsewhere("report_cmds", "lock", "Lock the database (investigator): from now on "
                      "no clinical data can change, and the unblinded export becomes "
                      "possible."),
    "export": Elsewhere("report_cmds", "export", "Export outcomes, diary or participants "
                        "(baseline covariates and the date of each stage) as CSV with a data "
                        "dictionary (NAME.dictionary.csv) and a manifest of SHA-256 checksums "
                        "(NAME.manifest.json) beside it (investigator)."),
    "user": Elsewhere("user_cmds", "app", "Manage users (admin).", group=True),
    "audit": Elsewhere("audit_cmds", "app", "Verify and read the audit trail.", group=True),
    "list": Elsewhere("list_cmds", "list_app", "Sealed allocation lists.", group=True),
    "custodian": Elsewhere("list_cmds", "custodian_app",
                           "Unblinding custodians and their keys.", group=True),
    "design": Elsewhere("design_cmds", "design_app", "Randomization designs: what they cost "
                        "in predictability and imbalance.", group=True),
    "report": Elsewhere("design_cmds", "report_app", "Reports after the database lock.",
                        group=True),
    "diary": Elsewhere("diary_cmds", "diary_app",
                       "The headache diary: record, import, history.", group=True),
}


@functools.cache
def built(name: str) -> Any:
    """The Click command ``name`` of :data:`ELSEWHERE`, imported and built as Typer builds
    it inside the whole CLI (added by that name to an app with the same settings)."""
    where = ELSEWHERE[name]
    target = getattr(importlib.import_module(f"trialkit.cli.{where.module}"), where.attribute)
    alone = typer.Typer(**SETTINGS)
    if isinstance(target, typer.Typer):
        alone.add_typer(target, name=name)
        return typer.main.get_command(alone).commands[name]  # type: ignore[attr-defined]
    alone.command(name)(target)
    return typer.main.get_command(alone)  # one command and no callback: the command itself


class LazyCommands(TyperGroup):
    """The root group. It holds the commands of :data:`ELSEWHERE` as stand-ins carrying
    their summaries, so that its list, its help and Typer's "did you mean" name them
    without importing anything; ``get_command`` imports and builds the real one when it
    runs or shows its own help (Click's lazy subcommands). (Typer's Click types are private
    to it: hence ``Any``.)"""

    listing = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        own = dict(self.commands)
        groups = [name for name, command in own.items() if isinstance(command, TyperGroup)]
        stand_ins = {name: TyperCommand(name, help=where.summary)
                     for name, where in ELSEWHERE.items()}
        # In the order Typer would list them all built: commands, then groups.
        order = ([name for name in own if name not in groups]
                 + [name for name, where in ELSEWHERE.items() if not where.group]
                 + groups + [name for name, where in ELSEWHERE.items() if where.group])
        self.commands = {name: own[name] if name in own else stand_ins[name] for name in order}

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command, imported and built now if it lives in another module (while the
        root's help is being written, its stand-in)."""
        if cmd_name in ELSEWHERE and not self.listing:
            return built(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The root's list of commands, from the summaries: nothing is imported for it."""
        self.listing = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    name="trialkit",
    help="Sealed, stratified randomization and headache-diary capture for the KetHead trial.",
    no_args_is_help=False,
    cls=LazyCommands,
    **SETTINGS,
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
