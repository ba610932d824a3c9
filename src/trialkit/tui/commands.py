"""Every user action defined once: the same ``Command`` makes its key binding (with an id,
so a keymap can rebind it), its footer entry and its command-palette entry.

The palette offers exactly the commands whose bindings are active on the screen it was
opened from, so a screen that adds a binding built from a ``Command`` gets a palette
entry for free, and a disabled action (say, Lock screen while locked) offers none."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Command:
    """One user action: its palette title and help, its key and the action it runs."""

    id: str
    title: str
    help: str
    key: str
    action: str
    priority: bool = False
    footer: str | None = None
    """A shorter name for the footer, where 80 columns are shared by every binding."""
    show: bool = True

    def binding(self) -> Binding:
        """The key binding for this command, shown in the footer."""
        return Binding(
            self.key, self.action, self.footer or self.title, show=self.show,
            tooltip=self.help, priority=self.priority, id=self.id,
        )


QUIT = Command(
    "quit", "Quit", "Close trialkit and return to the shell", "ctrl+q", "quit", priority=True
)
LOCK_SCREEN = Command(
    "lock-screen", "Lock screen", "Hide everything until your password is entered again",
    "ctrl+l", "lock_screen", priority=True, footer="Lock",
)
SIGN_OUT = Command(
    "sign-out", "Sign out", "End your session and return to the sign-in screen",
    "ctrl+o", "sign_out", priority=True,
)
# F5 refreshes every screen, as in a browser; the palette offers it. Not in the footer: 80
# columns are shared by each screen's own keys and Sign out.
REFRESH = Command(
    "refresh", "Refresh", "Read what this screen shows again from the database", "f5", "refresh",
    show=False,
)

FIRST_SIGN_IN = Command(
    "first-sign-in", "First sign-in", "Set your own password with your one-time enrolment code",
    "f2", "first_sign_in", footer="First sign-in",
)

BACK = Command("back", "Back", "Close this screen and return to the one before", "escape", "back")

# Home: each role's workspace.
PARTICIPANTS = Command(
    "participants", "Participants", "Screen, consent, randomize and withdraw participants",
    "p", "open_participants",
)
ALLOCATION_LISTS = Command(
    "allocation-lists", "Allocation lists", "Sealed envelopes per stratum: seal and extend",
    "a", "open_allocation_lists", footer="Lists",
)

# Users (admin).
USERS = Command(
    "users", "Users", "Every user: role, sites, sign-in and custodian status; add, disable, enable",
    "m", "open_users",
)
ADD_USER = Command(
    "add-user", "Add user", "Add a user; their one-time enrolment code is shown once", "n",
    "add_user", footer="Add",
)
DISABLE_USER = Command(
    "disable-user", "Disable user", "The selected user can no longer sign in (reason kept)",
    "d", "disable_user", footer="Disable",
)
ENABLE_USER = Command(
    "enable-user", "Enable user", "The selected disabled user may sign in again", "e",
    "enable_user", footer="Enable",
)

# Participants.
SCREEN_PARTICIPANT = Command(
    "screen-participant", "Screen a participant", "Record a screening and check eligibility",
    "n", "screen_participant", footer="Screen",
)
RECORD_CONSENT = Command(
    "record-consent", "Record consent", "Record informed consent of the selected participant",
    "c", "record_consent", footer="Consent",
)
RANDOMIZE = Command(
    "randomize", "Randomize", "Claim the next sealed envelope for the selected participant",
    "r", "randomize",
)
WITHDRAW = Command(
    "withdraw", "Withdraw", "Withdraw the selected participant (a reason is required)",
    "w", "withdraw",
)
SCHEDULE_INFUSION = Command(
    "schedule-infusion", "Plan infusion", "Set or move the selected participant's infusion day",
    "s", "schedule_infusion", footer="Plan",
)
RECORD_INFUSION = Command(
    "record-infusion", "Record infusion",
    "Record the selected participant's infusion (study day 0)", "i", "record_infusion",
    footer="Infuse",
)
SHOW_OUTCOMES = Command(
    "show-outcomes", "Outcomes",
    "Headache days per 28 days, baseline and each window, of the selected participant", "o",
    "show_outcomes",
)
IMPORT_DIARY = Command(
    "import-diary", "Import diary file",
    "Import diary days from a CSV file: every row or none, each bad line reported", "m",
    "import_diary", footer="Import",
)
SEARCH = Command(
    "search", "Search participants", "Type part of a participant id", "slash", "focus_search",
    footer="Search",
)
NEXT_PAGE = Command(
    "next-page", "Next page", "Show the next page of the list", "right_square_bracket",
    "next_page", show=False,
)
PREVIOUS_PAGE = Command(
    "previous-page", "Previous page", "Show the previous page of the list",
    "left_square_bracket", "previous_page", show=False,
)

# The screening form.
SUBMIT_SCREENING = Command(
    "submit-screening", "Submit screening", "Screen the participant with these answers",
    "ctrl+s", "submit", footer="Submit",
)
ANSWER_YES = Command(
    "answer-yes", "Answer yes", "Answer the criterion under the cursor with yes", "y",
    "answer(True)", footer="Yes",
)
ANSWER_NO = Command(
    "answer-no", "Answer no", "Answer the criterion under the cursor with no", "n",
    "answer(False)", footer="No",
)

# Allocation lists (admin).
SEAL_LISTS = Command(
    "seal-lists", "Seal lists", "Generate and seal an allocation list for every stratum",
    "s", "seal_lists", footer="Seal",
)
EXTEND_LIST = Command(
    "extend-list", "Extend stratum", "Add sealed envelopes to the selected stratum", "e",
    "extend_list", footer="Extend",
)

# Custodians (pharmacists and investigators): a second person approves a new one.
CUSTODIANS = Command(
    "custodians", "Custodians", "Unblinding custodians: who is approved, by whom; approve one",
    "c", "open_custodians",
)
APPROVE_CUSTODIAN = Command(
    "approve-custodian", "Approve custodian",
    "Approve the selected custodian after checking the key fingerprint they read out",
    "a", "approve_custodian", footer="Approve",
)

# The research pharmacy (pharmacists; emergency unblinding also custodian investigators).
DISPENSE_QUEUE = Command(
    "dispense-queue", "Dispense queue", "Randomized participants awaiting preparation", "d",
    "open_dispense_queue", footer="Queue",
)
OPEN_ENVELOPE = Command(
    "open-envelope", "Open envelope", "Open the selected participant's envelope (password)",
    "o", "open_envelope", footer="Open",
)
RECORD_PREPARATION = Command(
    "record-preparation", "Record preparation",
    "Record lots and checker, and write the labels' PDF", "ctrl+s", "record_preparation",
    footer="Record",
)
PREPARE_AGAIN = Command(
    "prepare-again", "Prepare again",
    "Prepare the selected participant's expired preparation again (reason, password)", "a",
    "prepare_again", footer="Prepare again",
)
REPRINT_LABELS = Command(
    "reprint-labels", "Reprint labels", "Print a dispensed participant's labels again", "l",
    "reprint_labels", footer="Reprint",
)
EMERGENCY_UNBLIND = Command(
    "emergency-unblind", "Emergency unblind",
    "Reveal the selected participant's arm to you alone (reason and password)", "u",
    "emergency_unblind", footer="Unblind",
)

# The headache diary calendar.
OPEN_DIARY = Command(
    "open-diary", "Headache diary", "The selected participant's diary, a window at a time",
    "d", "open_diary", footer="Diary",
)
DIARY_NONE = Command(
    "diary-no-headache", "Record: no headache", "Record the day under the cursor as headache-free",
    "0", "digit(0)", footer="No HA", show=False,
)
DIARY_MILD = Command(
    "diary-mild", "Enter: mild headache", "Start a mild headache day; type hours, then Enter",
    "1", "digit(1)", show=False,
)
DIARY_MODERATE = Command(
    "diary-moderate", "Enter: moderate headache",
    "Start a moderate headache day; type hours, then Enter", "2", "digit(2)", show=False,
)
DIARY_SEVERE = Command(
    "diary-severe", "Enter: severe headache",
    "Start a severe headache day; type hours, then Enter", "3", "digit(3)", show=False,
)
DIARY_ACUTE = Command(
    "diary-acute", "Toggle acute medication", "Acute medication taken on the day being entered",
    "a", "toggle_acute", footer="Acute",
)
DIARY_RECORD = Command(
    "diary-record", "Record day", "Record the day being entered", "enter", "record_entry",
    footer="Record",
)
DIARY_HISTORY = Command(
    "diary-history", "Day history", "Every version of the day under the cursor", "h",
    "day_history", footer="History",
)
NEXT_WINDOW = Command(
    "next-window", "Next window", "Show the next diary window", "tab", "window(1)",
    footer="Window", priority=True,
)
PREVIOUS_WINDOW = Command(
    "previous-window", "Previous window", "Show the previous diary window", "shift+tab",
    "window(-1)", show=False, priority=True,
)

# The investigator's dashboard.
DASHBOARD = Command(
    "dashboard", "Dashboard", "Enrolment, CONSORT counts, diary completeness, the curve", "i",
    "open_dashboard",
)
LOCK_DATABASE = Command(
    "lock-database", "Lock database", "Lock the trial database for analysis (cannot be undone)",
    "k", "lock_database", footer="Lock DB",
)
EXPORT_DATA = Command(
    "export-data", "Export data",
    "Write the blinded outcomes, diary or participants with its dictionary",
    "x", "export_data", footer="Export",
)

# Audit review (monitor, admin, investigator).
AUDIT_REVIEW = Command(
    "audit-review", "Audit review",
    "Read the audit trail: filters, what each event changed, timelines, verify", "l",
    "open_audit_review", footer="Audit",
)
AUDIT_FILTER = Command(
    "audit-filter", "Filter events",
    "Type a participant, user, action or UTC dates; Enter applies", "f", "focus_filters",
    footer="Filter",
)
AUDIT_TIMELINE = Command(
    "audit-timeline", "Participant timeline",
    "Every event of the selected event's participant, in order", "t", "timeline",
    footer="Timeline",
)
AUDIT_SIGN_INS = Command(
    "audit-sign-ins", "Show or hide sign-ins", "Sign-ins are left out unless asked for", "s",
    "toggle_sign_ins", footer="Sign-ins",
)
AUDIT_VERIFY = Command(
    "audit-verify", "Verify the audit trail",
    "Recompute the chain and compare every audited record and list", "v", "verify",
    footer="Verify",
)
AUDIT_CHECKPOINT = Command(
    "audit-checkpoint", "Write a signed checkpoint",
    "The trail's count and last hash, signed with your key, to keep outside the database",
    "k", "write_checkpoint", footer="Checkpoint",
)

# The emergency-unblinding report (monitor, admin, investigator): never an arm.
UNBLINDINGS = Command(
    "unblindings", "Emergency unblindings",
    "Who unblinded which participant, when and why (never the arm); refused attempts too",
    "u", "open_unblindings", show=False,  # the role panel names it: 80 columns are full
)

# Dialogs.
CANCEL = Command("cancel", "Cancel", "Close this dialog without doing anything", "escape", "cancel")

APP_COMMANDS: tuple[Command, ...] = (QUIT, LOCK_SCREEN, SIGN_OUT)


def quiet_session_keys() -> list[Binding]:
    """The session's keys (Quit, Lock, Sign out) as a screen's own bindings, left out of its
    footer: 80 columns hold a screen's own keys or these, not both. The home screen's footer
    shows them, and the palette (^p) offers them everywhere; they work on every screen."""
    return [Binding(c.key, f"app.{c.action}", c.footer or c.title, show=False, tooltip=c.help,
                    priority=True, id=c.id) for c in APP_COMMANDS]
ALL_COMMANDS: dict[str, Command] = {
    c.id: c
    for c in (
        *APP_COMMANDS, REFRESH, BACK, PARTICIPANTS, ALLOCATION_LISTS, SCREEN_PARTICIPANT,
        RECORD_CONSENT, RANDOMIZE, WITHDRAW, SCHEDULE_INFUSION, RECORD_INFUSION, SHOW_OUTCOMES,
        IMPORT_DIARY, SEARCH, NEXT_PAGE, PREVIOUS_PAGE, SUBMIT_SCREENING,
        ANSWER_YES, ANSWER_NO,
        SEAL_LISTS, EXTEND_LIST, CANCEL, DISPENSE_QUEUE, OPEN_ENVELOPE, RECORD_PREPARATION,
        PREPARE_AGAIN, REPRINT_LABELS, EMERGENCY_UNBLIND, OPEN_DIARY, DIARY_NONE, DIARY_MILD,
        DIARY_MODERATE, DIARY_SEVERE, DIARY_ACUTE, DIARY_RECORD, DIARY_HISTORY, NEXT_WINDOW,
        PREVIOUS_WINDOW, DASHBOARD, LOCK_DATABASE, EXPORT_DATA, CUSTODIANS, APPROVE_CUSTODIAN,
        AUDIT_REVIEW, AUDIT_FILTER, AUDIT_TIMELINE, AUDIT_SIGN_INS, AUDIT_VERIFY, AUDIT_CHECKPOINT,
        UNBLINDINGS, USERS, ADD_USER, DISABLE_USER, ENABLE_USER,
    )
}


class TrialkitCommands(Provider):
    """Command-palette entries for the actions available on the current screen."""

    def _available(self) -> list[tuple[Command, Callable[[], Awaitable[bool]]]]:
        found: dict[str, tuple[Command, Callable[[], Awaitable[bool]]]] = {}
        for active in self.screen.active_bindings.values():
            command = ALL_COMMANDS.get(active.binding.id or "")
            if command is None or not active.enabled or command.id in found:
                continue
            found[command.id] = (command, partial(self.app.run_action, command.action, active.node))
        return sorted(found.values(), key=lambda pair: pair[0].title)

    async def discover(self) -> Hits:
        """All available commands, shown when the palette opens."""
        for command, run in self._available():
            yield DiscoveryHit(command.title, run, text=command.title, help=command.help)

    async def search(self, query: str) -> Hits:
        """The available commands whose title matches what was typed."""
        matcher = self.matcher(query)
        for command, run in self._available():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(command.title), run, text=command.title,
                    help=command.help,
                )
