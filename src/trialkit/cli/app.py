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
) -> None:
    """Create the database, load the protocol and create the first admin."""
    from trialkit.cli.context import resolve_clock
    from trialkit.domain.protocol import load_protocol
    from trialkit.services.setup import initialize
    from trialkit.store.db import check_reachable, make_engine, normalize_url, sqlite_path
    from trialkit.store.urls import public_url

    c = cli(ctx)
    clock = resolve_clock(training=training)
    c.training = training
    loaded = load_protocol(protocol)
    password = ask_new_password(f"New password for {admin}: ")
    path = sqlite_path(normalize_url(c.db))
    existed = path is None or path.exists()
    engine = make_engine(c.db, must_exist=False)
    try:
        check_reachable(engine)
        initialize(
            engine, loaded, admin=admin, admin_password=password, training=training, clock=clock
        )
    except BaseException:
        engine.dispose()
        if not existed and path is not None:
            for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                p.unlink(missing_ok=True)
        raise
    facts = loaded.protocol
    kind = "training trial" if training else "trial"
    where = public_url(c.db)
    c.emit(
        {
            "trial": facts.trial.id,
            "version": facts.trial.version,
            "protocol_sha256": loaded.sha256,
            "training": training,
            "admin": admin,
            "database": where,
        },
        f"Created {kind} {facts.trial.id} (protocol {facts.trial.version}, "
        f"sha256 {loaded.sha256[:12]}…) in {where}; admin: {admin}",
    )


@app.command()
def demo(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option("--fresh", help="Rebuild even if it exists")] = False,
) -> None:
    """Build a ready demo KetHead training trial (users for every role)."""
    from trialkit.demo import build_demo

    c = cli(ctx)
    db = c.db if c.db != DEFAULT_DB else "demo.db"
    summary = build_demo(db, fresh=fresh)
    c.training = True
    c.emit(summary.as_dict(), summary.text())


@app.command()
def serve(
    ctx: typer.Context,
    port: Annotated[int, typer.Option("--port", help="Port on localhost")] = 8000,
) -> None:
    """Serve the terminal UI in a browser, bound to localhost only."""
    import os
    import shlex
    import sys

    from textual_serve.server import Server

    c = cli(ctx)
    c.engine()
    # Each browser session runs `trialkit tui` in a child process. The database URL (which
    # may carry a password) reaches it in the environment, never on its command line,
    # where any user of the machine could read it.
    os.environ["TRIALKIT_DB"] = c.db
    command = f"{shlex.quote(sys.executable)} -m trialkit tui"
    Server(command, host="127.0.0.1", port=port, title="trialkit").serve()


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help=YES_HELP)] = False,
) -> None:
    """Apply schema migrations to an existing trial database (admin; take a backup first).
    Cannot be undone: asks at a terminal, and needs --yes without one."""
    from trialkit.domain.roles import Permission
    from trialkit.services.actor import require
    from trialkit.services.setup import upgrade_schema
    from trialkit.store.schema import SCHEMA_HEAD, schema_revision
    from trialkit.store.urls import public_url

    c = cli(ctx)
    revision = schema_revision(c.engine(check_schema=False))
    if revision is not None and revision != SCHEMA_HEAD:
        confirm_irreversible(
            f"Upgrade the schema of {public_url(c.db)} from {revision} to {SCHEMA_HEAD}? "
            "A database cannot be downgraded; take a backup first",
            yes=yes, what="a schema upgrade")
    require(c.actor(), Permission.MANAGE_USERS)
    revision = upgrade_schema(c.engine(check_schema=False))
    c.emit({"schema": revision}, f"Database schema is at {revision}")


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
