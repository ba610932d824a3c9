"""The pharmacist's home: randomized participants awaiting preparation, oldest first, in
blinded columns, with those whose preparation expired before the infusion (to prepare
again). Opening an envelope asks the password and leads to the UNBLINDED preparation
screen (for an expired one, in its "prepare again" form, which asks why); recording it
shows the (blinded) label text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from trialkit.domain.errors import TrialkitError
from trialkit.domain.roles import Permission
from trialkit.domain.site_time import shown
from trialkit.tui.commands import (
    BACK,
    EMERGENCY_UNBLIND,
    OPEN_ENVELOPE,
    PREPARE_AGAIN,
    REFRESH,
    REPRINT_LABELS,
    quiet_session_keys,
)
from trialkit.tui.dialogs.labels import LabelPreviewDialog
from trialkit.tui.dialogs.password import PasswordDialog
from trialkit.tui.dialogs.reprint import ReprintDialog
from trialkit.tui.dialogs.unblind import UnblindDialog
from trialkit.tui.messages import EnvelopeOpened, LabelsPrinted, QueueLoaded, ServiceFailed
from trialkit.tui.screens.preparation import PreparationScreen
from trialkit.tui.widgets.fitted_table import fill_table
from trialkit.tui.widgets.training_banner import TrainingBanner
from trialkit.tui.wording import tui_message

if TYPE_CHECKING:
    from trialkit.application.trial_database import TrialDatabase
    from trialkit.render.labels import LabelSheet
    from trialkit.services.actor import Actor
    from trialkit.services.pharmacy.dispensing import QueueEntry
    from trialkit.tui.app import TrialkitApp

COLUMNS = ("Site", "Participant", "Rand. no.", "Weight", "Infusion", "Randomized")


class DispenseQueueScreen(Screen[None]):
    """The dispense queue of the pharmacist's sites."""

    BINDINGS = [
        *(c.binding() for c in (OPEN_ENVELOPE, PREPARE_AGAIN, REPRINT_LABELS,
                                      EMERGENCY_UNBLIND, REFRESH, BACK)),
        *quiet_session_keys(),
    ]

    def __init__(self, db: TrialDatabase, actor: Actor) -> None:
        super().__init__()
        self._db = db
        self._actor = actor
        self._busy = False
        self._last: str | None = None
        self._entries: dict[str, QueueEntry] = {}
        self._label_folder: Path | None = None  # read with the queue

    def compose(self) -> ComposeResult:
        """The queue and a line under it."""
        yield Header()
        yield TrainingBanner()
        table: DataTable[str] = DataTable(id="queue", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("Reading the queue…", id="queue-detail")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Columns, then the queue."""
        self.sub_title = "Dispense queue"
        table = self.query_one("#queue", DataTable)
        fill_table(table, COLUMNS, [])
        table.focus()
        self._load()

    @work(thread=True, exclusive=True, group="queue")
    def _load(self) -> None:
        try:
            entries = sorted(self._db.dispense_queue(self._actor),
                             key=lambda e: (e.randomized_at, e.participant_id))
            folder = self._db.label_folder()
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(QueueLoaded(entries, folder))

    def on_queue_loaded(self, message: QueueLoaded) -> None:
        """Fill the table, oldest randomization first."""
        table = self.query_one("#queue", DataTable)
        self._entries = {e.participant_id: e for e in message.entries}
        self._label_folder = message.label_folder
        fill_table(
            table, COLUMNS,
            [(e.site, e.participant_id, e.randomization_number, f"{e.weight_kg:g} kg",
              e.infusion_date or "—", shown(e.randomized_at)) for e in message.entries],
            [e.participant_id for e in message.entries],
        )
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        """How many wait, and what the selected one needs."""
        n = len(self._entries)
        expired = sum(e.expired_at is not None for e in self._entries.values())
        text = (f"{n} awaiting preparation. Press {OPEN_ENVELOPE.key} to open the selected "
                "envelope." if n else "Nobody is waiting for a preparation.")
        if expired:
            text = f"{n} awaiting preparation, {expired} to prepare again (expired)."
        selected = self._entries.get(self.selected_id() or "")
        if selected is not None and selected.expired_at is not None:
            text += (f"\n{selected.participant_id}: the preparation expired "
                     f"{shown(selected.expired_at)} before the infusion. Press "
                     f"{PREPARE_AGAIN.key} to prepare it again (its labels become void).")
        self.query_one("#queue-detail", Static).update(Content(text))

    def selected_id(self) -> str | None:
        """The participant under the cursor, if any."""
        table = self.query_one("#queue", DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return key if isinstance(key, str) else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Greyed while nothing is selected; unblinding only for those allowed."""
        if action == EMERGENCY_UNBLIND.action and not self._actor.can(Permission.UNBLIND):
            return False
        if action in (OPEN_ENVELOPE.action, EMERGENCY_UNBLIND.action):
            return True if self.selected_id() is not None else None
        if action == PREPARE_AGAIN.action:
            return True if self._expired(self.selected_id()) else None
        return True

    def _expired(self, pid: str | None) -> bool:
        entry = self._entries.get(pid or "")
        return entry is not None and entry.expired_at is not None

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        """Keys and the detail line follow the selection."""
        self._show_detail()
        self.refresh_bindings()

    # --- opening and preparing ---------------------------------------------------------

    def action_open_envelope(self) -> None:
        """Ask the password, then open the selected participant's envelope (to prepare
        again if their preparation expired)."""
        pid = self.selected_id()
        if pid is None or self._busy:
            return
        if self._expired(pid):
            self.action_prepare_again()
            return
        dialog = PasswordDialog(
            f"Open envelope of {pid}",
            "Opening the envelope shows the arm to you (audited). Your password unlocks "
            "your custodian key.", ok_label="Open",
        )

        def opened(password: str | None) -> None:
            if password is not None:
                self._busy = True
                self._open(pid, password)

        self.app.push_screen(dialog, opened)

    def action_prepare_again(self) -> None:
        """Ask the password, open the envelope and read the expired preparation, then the
        preparation form that asks why and records the new one."""
        pid = self.selected_id()
        if pid is None or self._busy or not self._expired(pid):
            return
        dialog = PasswordDialog(
            f"Prepare {pid} again",
            "The preparation expired before the infusion. Opening the envelope again shows "
            "the arm to you (audited). Your password unlocks your custodian key.",
            ok_label="Open",
        )

        def opened(password: str | None) -> None:
            if password is not None:
                self._busy = True
                self._open(pid, password, again=True)

        self.app.push_screen(dialog, opened)

    @work(thread=True, exclusive=True, group="pharmacy")
    def _open(self, pid: str, password: str, *, again: bool = False) -> None:
        try:
            if again:
                opened = self._db.read_preparation(self._actor, pid, password=password)
            else:
                opened = self._db.open_envelope(self._actor, pid, password=password)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(EnvelopeOpened(opened, password, again=again))

    def on_envelope_opened(self, message: EnvelopeOpened) -> None:
        """The UNBLINDED preparation screen; when recorded, the blinded label text."""
        self._busy = False
        if cast("TrialkitApp", self.app).discard_while_locked(
            f"The envelope of {message.opened.participant_id} was opened (audited) while the "
            "screen was locked, so nothing was shown. Open it again to prepare."
        ):
            return
        screen = PreparationScreen(self._db, self._actor, message.opened, message.password,
                                   label_folder=self._label_folder or Path.cwd(),
                                   again=message.again)
        self.app.push_screen(screen, self._prepared)

    def _prepared(self, done: tuple[LabelSheet, Path] | None) -> None:
        if done is not None:
            sheet, path = done
            self._last = sheet.participant_id
            self.app.push_screen(LabelPreviewDialog(sheet, path))
        self._load()

    # --- labels and unblinding ---------------------------------------------------------

    def action_reprint_labels(self) -> None:
        """Ask which participant (and where), then print their labels again."""
        if self._busy or self._label_folder is None:  # read with the queue
            return

        def reprint(answer: tuple[str, Path] | None) -> None:
            if answer is not None:
                self._busy = True
                self._reprint(*answer)

        self.app.push_screen(ReprintDialog(self._last or "", self._label_folder), reprint)

    @work(thread=True, exclusive=True, group="pharmacy")
    def _reprint(self, pid: str, path: Path) -> None:
        try:
            sheet = self._db.reprint_labels(self._actor, pid, labels_path=path)
        except TrialkitError as exc:
            self.post_message(ServiceFailed(tui_message(exc)))
        else:
            self.post_message(LabelsPrinted(sheet, path))

    def on_labels_printed(self, message: LabelsPrinted) -> None:
        """Show what the reprinted labels say."""
        self._busy = False
        self._last = message.sheet.participant_id
        self.app.push_screen(LabelPreviewDialog(message.sheet, message.path))

    def action_emergency_unblind(self) -> None:
        """Reason and password; the arm shows in the dialog only."""
        pid = self.selected_id()
        if pid is None:
            return

        def closed(_done: bool | None) -> None:
            self._load()

        self.app.push_screen(UnblindDialog(self._db, self._actor, pid), closed)

    def on_service_failed(self, _message: ServiceFailed) -> None:
        """Refused (the app says why): ready again."""
        self._busy = False

    def action_refresh(self) -> None:
        """Read the queue again."""
        self._load()

    def action_back(self) -> None:
        """Back to home."""
        self.dismiss(None)
