"""``trialkit user add|activate|list|disable|enable|passwd``."""

from typing import TYPE_CHECKING, Annotated

import typer

from trialkit.cli.context import Cli, ask_code, ask_new_password, ask_secret, cli, env
from trialkit.domain.errors import InvalidInput

if TYPE_CHECKING:
    from trialkit.services.administration.users import NewAccount

app = typer.Typer(help="Manage users (admin).", no_args_is_help=True)


def _show_code(c: Cli, account: "NewAccount", done: str) -> None:
    """The one-time code, shown here once: handed to its owner out of band."""
    until = account.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    c.emit(
        {
            "user": account.name,
            "role": account.role,
            "sites": list(account.sites),
            "custodian": account.custodian,
            "enrolment_code": account.enrolment_code,
            "expires_at": account.expires_at.isoformat(),
        },
        f"{done}\n"
        f"One-time enrolment code for {account.name}: {account.enrolment_code}\n"
        f"Give it to {account.name} in person or by phone (valid until {until}, once); "
        f"they set their own password with `trialkit user activate {account.name}`. "
        "It is not shown again.",
    )


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
    """Add a user and print their one-time enrolment code (--json: enrolment_code); they
    set their own password with `trialkit user activate`."""
    from trialkit.domain.roles import parse_role

    c = cli(ctx)
    parsed = parse_role(role)  # refused before anyone signs in
    actor = c.actor()
    account = c.use_cases().add_user(actor, name=name, role=parsed.value,
                                     sites=list(site or []), custodian=custodian)
    extra = " (unblinding custodian once approved)" if account.custodian else ""
    sites = f" at {', '.join(account.sites)}" if account.sites else ""
    _show_code(c, account, f"Added {parsed.value} {name}{sites}{extra}")


@app.command("activate")
def activate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Your sign-in name")],
) -> None:
    """First sign-in: your enrolment code (TRIALKIT_ENROLMENT_CODE or a prompt) and the
    password you choose (TRIALKIT_NEW_PASSWORD or a prompt). Makes your own keys."""
    c = cli(ctx)
    code = ask_secret(f"Enrolment code for {name}: ", "TRIALKIT_ENROLMENT_CODE")
    password = ask_new_password(f"Choose your password, {name}: ")
    done = c.use_cases().activate_account(name, code, password)
    lines = [f"Activated {name}: sign in with your new password.",
             f"Your signing key: {done.signing_key}"]
    if done.custodian_key:
        lines.append(f"Your custodian key: {done.custodian_key} (read it out to whoever "
                     "approves you with `trialkit custodian approve`)")
    c.emit(
        {"user": name, "activated": True, "signing_key": done.signing_key,
         "custodian_key": done.custodian_key},
        "\n".join(lines),
    )
    if done.custodian_key and c.trial().second_factor and not c.json:
        typer.echo("This trial's custodians also sign in with a code from an authenticator "
                   "app: enrol yours now.")
        _enrol_second_factor(c, name, password)


def _enrol_second_factor(c: Cli, name: str, password: str) -> None:
    """Sign in, show a new secret once (URI and QR), confirm it with a code from the app."""
    actor = c.sign_in(name, password, env("TRIALKIT_TOTP"))
    offer = c.use_cases().offer_second_factor(actor)
    if not c.json:
        typer.echo(f"Scan this with your authenticator app (shown once):\n{offer.qr_text}"
                   f"or add it by hand: {offer.uri}")
    code = ask_code("Code the app shows now: ", "TRIALKIT_TOTP_CONFIRM")
    c.use_cases().enrol_second_factor(actor, password=password, secret=offer.secret,
                                      code=code)
    c.emit({"user": name, "second_factor": True, "uri": offer.uri},
           f"Second factor enrolled for {name}: sign in with your password and the code "
           "your app shows (each code once).")


@app.command("totp-enrol")
def totp_enrol(ctx: typer.Context) -> None:
    """Enrol your second factor (custodians, when the protocol uses one): a QR code for
    your authenticator app is shown once, then you type the code it shows
    (TRIALKIT_TOTP_CONFIRM in scripts)."""
    c = cli(ctx)
    if c.user is None and env("TRIALKIT_USER") is None:
        raise InvalidInput("who is enrolling? give --user NAME or set TRIALKIT_USER")
    name = c.user or env("TRIALKIT_USER") or ""
    password = ask_secret(f"Password for {name}: ", "TRIALKIT_PASSWORD")
    _enrol_second_factor(c, name, password)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List users with role, sites and state."""
    c = cli(ctx)
    with c.as_reader() as (actor, trial):
        users = trial.users(actor)

    def text() -> str:
        lines = [f"{'name':<16} {'role':<13} {'sites':<10} state"]
        for u in users:
            state = "disabled" if u.disabled else "waiting" if u.locked else u.state
            lines.append(f"{u.name:<16} {u.role:<13} {','.join(u.sites) or '-':<10} {state}")
        return "\n".join(lines)

    c.emit([u.__dict__ | {"state": u.state} for u in users], text)


def _set_disabled(ctx: typer.Context, name: str, reason: str | None, disabled: bool) -> None:
    c = cli(ctx)
    actor = c.actor()
    c.use_cases().set_disabled(actor, name=name, disabled=disabled, reason=reason)
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
    name: Annotated[
        str | None, typer.Argument(help="Another user: an admin issues them a new enrolment code")
    ] = None,
) -> None:
    """Change your own password (TRIALKIT_PASSWORD is the current one, TRIALKIT_NEW_PASSWORD
    the new one): new key pairs are made and your list keys re-wrapped. As admin with a NAME:
    a new one-time enrolment code for someone who forgot theirs (never for a custodian)."""
    from trialkit.application.administration import change_password, reissue_enrolment

    c = cli(ctx)
    actor = c.actor()
    if name is not None and name != actor.name:
        account = reissue_enrolment(c.use_cases(), actor, name=name)
        _show_code(c, account, f"{name} must activate their account again")
        return
    current = ask_secret("Current password: ", "TRIALKIT_PASSWORD")
    new = ask_new_password()
    rewrapped = change_password(c.use_cases(), actor, current=current, new=new)
    extra = f"; new keys made, {rewrapped} list keys re-wrapped" if actor.custodian else ""
    c.emit(
        {"user": actor.name, "password_changed": True, "lists_rewrapped": rewrapped},
        f"Password changed for {actor.name}{extra}",
    )
