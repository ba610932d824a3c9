"""``trialkit user add|list|disable|enable|passwd``."""

from typing import Annotated

import typer

from trialkit.cli.context import ask_new_password, ask_secret, cli

app = typer.Typer(help="Manage users (admin).", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="New user's sign-in name")],
    role: Annotated[
        str, typer.Option("--role", help="admin, coordinator, pharmacist, investigator or monitor")
    ],
    site: Annotated[list[str] | None, typer.Option("--site", help="Site code (repeat)")] = None,
    custodian: Annotated[
        bool, typer.Option("--custodian", help="Make an investigator an unblinding custodian")
    ] = False,
) -> None:
    """Add a user; the password comes from TRIALKIT_NEW_PASSWORD or a prompt."""
    from trialkit.domain.roles import parse_role
    from trialkit.services.users import create_user

    c = cli(ctx)
    parsed = parse_role(role)
    actor = c.actor()
    password = ask_new_password(f"New password for {name}: ")
    with c.write() as s:
        user = create_user(
            s,
            actor,
            name=name,
            role=parsed,
            password=password,
            sites=list(site or []),
            custodian=custodian,
            clock=c.clock(),
        )
        custodian_now = user.custodian
    extra = " (unblinding custodian)" if custodian_now else ""
    sites = f" at {', '.join(sorted({x.upper() for x in site or []}))}" if site else ""
    c.emit(
        {
            "user": name,
            "role": parsed.value,
            "sites": sorted({x.upper() for x in site or []}),
            "custodian": custodian_now,
        },
        f"Added {parsed.value} {name}{sites}{extra}",
    )


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with role, sites and state."""
    from trialkit.services.users import list_users

    c = cli(ctx)
    actor = c.actor()
    with c.read() as s:
        users = list_users(s, actor, clock=c.clock())

    def text() -> str:
        lines = [f"{'name':<16} {'role':<13} {'sites':<10} state"]
        for u in users:
            state = "disabled" if u.disabled else "locked" if u.locked else "active"
            if u.custodian:
                state += ", custodian"
            lines.append(f"{u.name:<16} {u.role:<13} {','.join(u.sites) or '-':<10} {state}")
        return "\n".join(lines)

    c.emit([u.__dict__ for u in users], text)


def _set_disabled(ctx: typer.Context, name: str, reason: str | None, disabled: bool) -> None:
    from trialkit.services.users import set_disabled

    c = cli(ctx)
    actor = c.actor()
    with c.write() as s:
        set_disabled(s, actor, name=name, disabled=disabled, reason=reason, clock=c.clock())
    c.emit({"user": name, "disabled": disabled}, f"{'Disabled' if disabled else 'Enabled'} {name}")


Reason = Annotated[str | None, typer.Option("--reason", help="Why")]


@app.command("disable")
def disable(ctx: typer.Context, name: str, reason: Reason = None) -> None:
    """Disable a user: they can no longer sign in. Nothing of theirs is deleted."""
    _set_disabled(ctx, name, reason, disabled=True)


@app.command("enable")
def enable(ctx: typer.Context, name: str, reason: Reason = None) -> None:
    """Enable a disabled user again (also lifts a lockout)."""
    _set_disabled(ctx, name, reason, disabled=False)


@app.command("passwd")
def passwd(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Another user (admin reset)")] = None,
) -> None:
    """Change your password (TRIALKIT_PASSWORD is the current one, TRIALKIT_NEW_PASSWORD the
    new one), or as admin reset another user's."""
    from trialkit.services.users import change_password

    c = cli(ctx)
    actor = c.actor()
    target = name or actor.name
    current = (
        ask_secret("Current password: ", "TRIALKIT_PASSWORD") if target == actor.name else None
    )
    new = ask_new_password()
    with c.write() as s:
        change_password(
            s, actor, name=target, new_password=new, current_password=current, clock=c.clock()
        )
    c.emit({"user": target, "password_changed": True}, f"Password changed for {target}")
