"""After the envelope is opened: the UNBLINDED panel (arm, products, volumes and rates) and
the preparation form (a lot per preparation, the checking pharmacist and their password,
which signs the check, the labels' PDF).

To prepare again (the preparation expired or was spoilt before the infusion) the form also
asks why; recording then makes the current preparation and its labels void.

UNBLINDED: this screen is for the pharmacy only. It keeps the password given to open the
envelope in memory until it closes, because recording opens the envelope again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Label, Static

from trialkit.domain.dosing import format_ml, format_number
from trialkit.domain.errors import TrialkitError
from trialkit.domain.site_time import shown
from trialkit.render.labels import LabelSheet
from trialkit.tui.commands import BACK, RECORD_PREPARATION, quiet_session_keys
from trialkit.tui.messages import ServiceFailed
from trialkit.tui.widgets.field_form import FieldForm
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.services.actor import Actor
    from trialkit.services.pharmacy.dispensing import Dispensing
    from trialkit.tui.app import TrialkitApp


def default_labels_path(pid: str, folder: Path, *, browser: bool = False) -> str:
    """Where the labels go unless told otherwise: ``labels-<PID>.pdf`` in the label folder
    (``TrialDatabase.label_folder``), shown in full; in a browser session the file name only
    (the PDF is sent to the browser, the server's folder is not the user's)."""
    return f"labels-{pid}.pdf" if browser else str(folder / f"labels-{pid}.pdf")


def labels_path(text: str, folder: Path) -> Path:
    """A .pdf file in a folder that exists, or ValueError with the user's message; a
    relative path is taken in the label folder."""
    path = Path(text.strip()).expanduser()
    if not path.is_absolute():
        path = folder / path
    if path.suffix.lower() != ".pdf":
        raise ValueError(f"{text!r}: give a file name ending in .pdf")
    if path.is_dir() or not path.parent.is_dir():
        raise ValueError(f"{text!r}: the folder {path.parent} does not exist")
    return path


def instructions(d: Dispensing) -> str:
    """The arm and how to prepare each preparation. UNBLINDED."""
    plan = d.plan
    weight = f"{format_number(plan.dosing_weight_kg)} kg" + (" (capped)" if plan.capped else "")
    lines = [f"Arm: {d.arm_name} ({d.arm_code}) · envelope {d.envelope}",
             f"{d.participant_id} · {d.randomization_number} · dosing weight {weight}"]
    for dose in plan.doses:
        how = f"{format_ml(dose.volume_ml)} mL"
        if dose.rate_ml_h is not None and dose.hours is not None:
            how += f" at {format_ml(dose.rate_ml_h)} mL/h for {format_number(dose.hours)} h"
        else:
            how += ", single dose"
        lines.append(f"{dose.name}: {d.products.get(dose.preparation_id, '?')} — {how}")
    if d.concomitant:
        lines.append("With: " + "; ".join(d.concomitant))
    return "\n".join(lines)


class PreparationFields(FieldForm):
    """The preparation's fields, label beside input: Enter and Tab move on at once, so a
    fast typist's (or a browser's batched) keys land in the right fields; Enter in the last
    records."""

    DEFAULT_CSS = "PreparationFields { layout: grid; }"

    def submit(self) -> None:
        cast("PreparationScreen", self.screen).action_record_preparation()


class PreparationScreen(Screen[tuple[LabelSheet, Path] | None]):
    """Returns the blinded labels and where they were written, or None if left unrecorded."""

    BINDINGS = [RECORD_PREPARATION.binding(), BACK.binding(), *quiet_session_keys()]

    def __init__(
        self, db: TrialDatabase, actor: Actor, opened: Dispensing, password: str,
        *, label_folder: Path, again: bool = False,
    ) -> None:
        super().__init__()
        self._label_folder = label_folder
        self._db = db
        self._actor = actor
        self._opened = opened
        self._password = password
        self._again = again
        self._busy = False

    def compose(self) -> ComposeResult:
        """The red UNBLINDED panel, then the form."""
        yield Header()
        yield TrainingBanner()
        with VerticalScroll(id="preparation-body"):
            panel = Static(Content(instructions(self._opened)), id="unblinded-panel")
            panel.border_title = "UNBLINDED — pharmacy only"
            yield panel
            if self._again and self._opened.record is not None:
                old = self._opened.record
                yield Static(Content(
                    f"Preparing again: preparation {old.number} (prepared "
                    f"{shown(old.prepared_at)}, expires {shown(old.expires_at)}) "
                    "and its labels become void when the new one is recorded."
                ), id="prepare-again-note")
            with PreparationFields(id="preparation-form"):
                if self._again:
                    yield Label("Why again")
                    yield Input(placeholder="e.g. expired before the infusion", id="reason",
                                compact=True)
                for dose in self._opened.plan.doses:
                    yield Label(f"Lot {dose.preparation_id}")
                    yield Input(placeholder="e.g. KT2403-17", id=f"lot-{dose.preparation_id}",
                                compact=True)
                yield Label("Checked by")
                yield Input(placeholder="another pharmacist's user name", id="checker",
                            compact=True)
                yield Label("Checker password")
                yield Input(placeholder="the checker types it: signs the check", password=True,
                            id="checker-password", compact=True)
                app = cast("TrialkitApp", self.app)
                if app.trial is not None and app.trial.second_factor:
                    yield Label("Checker's code")
                    yield Input(placeholder="from the checker's authenticator app",
                                id="checker-code", max_length=8, compact=True)
                yield Label("Labels PDF")
                browser = cast("TrialkitApp", self.app).ticket is not None
                yield Input(default_labels_path(self._opened.participant_id, self._label_folder,
                                                browser=browser),
                            id="labels-path",
                            compact=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Start at the first field."""
        what = "Prepare again" if self._again else "Prepare"
        self.sub_title = f"{what} {self._opened.participant_id}"
        self.query("#preparation-form Input").first().focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter moves on; in the last field it records."""
        event.stop()
        fields = list(self.query(Input))
        if event.input is fields[-1]:
            self.action_record_preparation()
        else:
            fields[fields.index(event.input) + 1].focus()

    def action_record_preparation(self) -> None:
        """Check the form, then record the preparation and write the labels."""
        if self._busy:
            return
        lots = {d.preparation_id: self.query_one(f"#lot-{d.preparation_id}", Input).value.strip()
                for d in self._opened.plan.doses}
        checker = self.query_one("#checker", Input).value.strip()
        signature = self.query_one("#checker-password", Input)
        reason = self.query_one("#reason", Input).value.strip() if self._again else ""
        try:
            if self._again and not reason:
                raise ValueError("Say why it is prepared again (e.g. expired).")
            if not all(lots.values()):
                raise ValueError("Give a lot number for every preparation.")
            if not checker:
                raise ValueError("Name the second pharmacist who checked the preparation.")
            if not signature.value:
                raise ValueError(f"{checker} signs the check: they type their password.")
            path = labels_path(cast("TrialkitApp", self.app).place(
                self.query_one("#labels-path", Input).value), self._label_folder)
        except ValueError as exc:
            self.notify(str(exc), title="Preparation", severity="error")
            return
        self._busy = True
        checker_password, signature.value = signature.value, ""  # typed again on a retry
        checker_code = None
        for box in self.query("#checker-code").results(Input):
            checker_code, box.value = box.value.strip() or None, ""
        self._record(lots, checker, checker_password, checker_code, path, reason)

    @work(thread=True, exclusive=True, group="preparation")
    def _record(self, lots: dict[str, str], checker: str, checker_password: str,
                checker_code: str | None, path: Path, reason: str) -> None:
        pid = self._opened.participant_id
        try:
            if self._again:
                sheet = self._db.reprepare(
                    self._actor, pid, password=self._password, reason=reason, lots=lots,
                    checked_by=checker, checker_password=checker_password,
                    checker_code=checker_code, labels_path=path,
                )
            else:
                sheet = self._db.record_preparation(
                    self._actor, pid, password=self._password, lots=lots,
                    checked_by=checker, checker_password=checker_password,
                    checker_code=checker_code, labels_path=path,
                )
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.app.call_from_thread(self.dismiss, (sheet, path))

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app says why): the form stays for another try."""
        self._busy = False

    def action_back(self) -> None:
        """Leave without recording (the opening stays audited)."""
        self.dismiss(None)
