"""How the command line words what an error says the user still needs to give
(``TrialkitError.needs``) and what they can do instead (``next_step``): as its options
and command lines. The TUI words the same errors as its own fields and keys
(``tui.wording``)."""

from __future__ import annotations

from trialkit.domain.errors import Need, NextStep, StepAction, TrialkitError

OPTIONS: dict[Need, str] = {
    "lots": "--lot PREPARATION=LOT for each preparation",
    "checker": "--checked-by NAME",
    "reason": "--reason TEXT",
    "infusion-time": "--time HH:MM",
    "sites": "--site SITE",
    "procedure": "--procedure NAME",
}

COMMANDS: dict[StepAction, tuple[str, str]] = {
    "prepare-again": ("to prepare it again",
                      "trialkit dispense {subject} --reprepare --reason TEXT --lot ... "
                      "--checked-by NAME"),
    "print-labels-again": ("to print its labels again", "trialkit label {subject} --out FILE.pdf"),
    "dispense": ("to dispense it", "trialkit dispense {subject} --lot ... --checked-by NAME"),
    "extend-list": ("to extend it", "trialkit seal --extend {subject}"),
    "correct-diary-day": ("to correct it",
                          "trialkit diary record {subject} --date {day} ... --reason TEXT"),
    "approve-custodian": ("to approve them", "trialkit custodian approve {subject}"),
    "seal-lists": ("to seal them", "trialkit seal"),
    "create-trial": ("to create one", "trialkit init"),
    "verify-audit": ("to find what else is wrong", "trialkit audit verify"),
    "change-own-password": ("to change it", "trialkit user passwd"),
    "enrol-second-factor": ("to enrol it", "trialkit user totp-enrol"),
}


def command_line(step: NextStep) -> str:
    """The command line that takes ``step``."""
    _why, template = COMMANDS[step.action]
    return template.format(subject=step.subject, day=step.day or "DATE")


def cli_message(err: TrialkitError) -> str:
    """The error's message with, in the command line's words, what to add and what to run."""
    text = err.message
    if err.needs:
        text += ": give " + " and ".join(OPTIONS[n] for n in err.needs)
    if err.next_step is not None:
        why, _template = COMMANDS[err.next_step.action]
        text += f"; {why}: {command_line(err.next_step)}"
    return text


def error_line(err: TrialkitError) -> str:
    """What the command line prints on stderr for an error: ``Error:`` for invalid input
    (exit 2), ``Refused:`` for a refusal (exit 1), then the message, terminal escapes
    made visible."""
    from trialkit.domain.text import printable

    label = "Error" if err.exit_code == 2 else "Refused"
    shown = "\n".join(printable(line) for line in cli_message(err).split("\n"))
    return f"{label}: {shown}"


def activated_in_a_browser(name: str, signing_key: str, custodian_key: str | None, *,
                           second_factor: bool) -> str:
    """What `serve`'s activation page tells a person whose account it just activated (one
    paragraph a line), as `trialkit user activate` does at a terminal."""
    lines = [f"Activated {name}: sign in below with your new password.",
             f"Your signing key: {signing_key}."]
    if custodian_key:
        lines.append(f"Your custodian key: {custodian_key} (read it out to whoever approves "
                     "you as a custodian).")
        if second_factor:
            lines.append("This trial's custodians also sign in with a code from an "
                         "authenticator app: enrol yours at a terminal first "
                         f"(trialkit --user {name} user totp-enrol).")
    return "\n".join(lines)
