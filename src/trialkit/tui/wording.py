"""How the terminal UI words what an error says the user still needs to give
(``TrialkitError.needs``) and what they can do instead (``next_step``): as the fields of its
forms and the actions of its screens, never as command-line options (``cli.wording``)."""

from __future__ import annotations

from trialkit.domain.errors import Need, StepAction, TrialkitError

FIELDS: dict[Need, str] = {
    "lots": "a lot number for each preparation",
    "checker": "the second pharmacist who checks the preparation",
    "reason": "a reason",
    "infusion-time": "the infusion time",
    "sites": "a site",
    "procedure": "a procedure",
}

ACTIONS: dict[StepAction, str] = {
    "prepare-again": "the pharmacy prepares it again (Prepare again, in the pharmacy queue)",
    "print-labels-again": "its labels can be printed again from its preparation record",
    "dispense": "the pharmacy dispenses it first (the pharmacy queue)",
    "extend-list": "the admin extends that stratum's list (Allocation lists)",
    "correct-diary-day": "correct that day in the participant's diary, with a reason",
    "approve-custodian": "an approved custodian, or an investigator for the first ones, "
                         "approves them (Custodians)",
    "seal-lists": "the admin seals them (Allocation lists)",
    "create-trial": "the trial admin creates the trial first",
    "verify-audit": "verify the audit trail (Audit) to find what else is wrong",
    "change-own-password": "its owner changes it, signed in as themselves",
    "enrol-second-factor": "sign in again: the app then shows the code to scan into "
                           "your authenticator app",
}


def without_location(err: TrialkitError, location: str, label: str) -> None:
    """Word ``err`` without naming ``location`` (the server's database file or URL, which a
    browser user is not told): ``label`` stands in its place."""
    err.message = err.message.replace(location, label)
    err.args = (err.message,)


def tui_message(err: TrialkitError) -> str:
    """The error's message with, in the TUI's words, what to fill in and what to do."""
    text = err.message
    if err.needs:
        text += ": fill in " + " and ".join(FIELDS[n] for n in err.needs)
    if err.next_step is not None:
        text += f"; {ACTIONS[err.next_step.action]}"
    return text


# A browser session (``trialkit serve``): what its header and messages call the database,
# which is the server's business, never its file path or URL.
BROWSER_DB_LABEL = "on the server"
ALL_SITES = "all sites"
NO_SITE = "no site"
