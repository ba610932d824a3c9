"""The frame every dialog shares: a titled box, its fields, a line for what is wrong, and
OK / Cancel. Escape cancels; Enter in a field submits."""

from __future__ import annotations

from typing import TypeVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from trialkit.tui.commands import CANCEL

ResultT = TypeVar("ResultT")


class Dialog(ModalScreen[ResultT]):
    """A modal dialog returning ``ResultT``; cancelling returns ``cancel_result``.

    Subclasses yield their fields from ``fields`` and turn them into a result in
    ``result``, raising ``ValueError`` with a message for the user when something is
    missing or wrong (the dialog stays open and says so)."""

    BINDINGS = [CANCEL.binding()]

    def __init__(
        self,
        title: str,
        *,
        cancel_result: ResultT,
        ok_label: str = "OK",
        show_cancel: bool = True,
    ) -> None:
        super().__init__()
        self._title = title
        self._cancel_result = cancel_result
        self._ok_label = ok_label
        self._show_cancel = show_cancel

    def compose(self) -> ComposeResult:
        """The box: fields, message line, buttons."""
        with Vertical(classes="dialog") as box:
            box.border_title = self._title
            yield from self.fields()
            yield Static("", classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button(self._ok_label, variant="primary", id="ok", compact=True)
                if self._show_cancel:
                    yield Button("Cancel", id="cancel", compact=True)

    def fields(self) -> ComposeResult:
        """The dialog's own content (nothing by default)."""
        yield from ()

    def result(self) -> ResultT:
        """What OK returns; raise ``ValueError("message")`` to keep the dialog open."""
        raise NotImplementedError

    def on_mount(self) -> None:
        """Start in the first field, or on OK when there is none."""
        inputs = self.query(Input)
        (inputs.first() if inputs else self.query_one("#ok", Button)).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """OK submits, Cancel cancels."""
        event.stop()
        if event.button.id == "ok":
            self.submit()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field is the same as OK."""
        event.stop()
        self.submit()

    def submit(self) -> None:
        """Close with the result, or say what is missing."""
        try:
            value = self.result()
        except ValueError as exc:
            self.say(str(exc))
            return
        self.dismiss(value)

    def say(self, text: str) -> None:
        """Show what is wrong, under the fields."""
        line = self.query_one(".dialog-message", Static)
        line.update(Content(text))
        line.set_class(bool(text), "error")

    def action_cancel(self) -> None:
        """Close without doing anything."""
        self.dismiss(self._cancel_result)
