"""A form of inputs filled in one after another that keeps up with a fast typist.

A terminal hands over a burst of keys at once, and the app passes each key to the field
that has the focus as it arrives. An Input's own Enter is handled only after every key
already passed to it, and ``Widget.focus`` takes effect later still, so "alice⏎secret⏎"
typed quickly all lands in the first field. Here Enter and Tab are priority bindings: the
app runs them as each arrives, and they move the focus at once (``Screen.set_focus``), so
the keys that follow land in the next field."""

from __future__ import annotations

from collections.abc import Callable

from textual.actions import SkipAction
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Input


class FieldForm(Vertical):
    """Inputs in order: Enter or Tab moves on to the next, Enter in the last calls
    ``submit``. Field navigation, not commands: no palette entries."""

    BINDINGS = [
        Binding("enter", "enter_field", show=False, priority=True, id="form-enter"),
        Binding("tab", "next_field", show=False, priority=True, id="form-tab"),
    ]

    def fields(self) -> list[Input]:
        """The inputs that take part, in order (the displayed and enabled ones)."""
        return [f for f in self.query(Input) if f.display and not f.disabled]

    def _position(self) -> tuple[list[Input], int]:
        fields = self.fields()
        focused = self.screen.focused
        if not isinstance(focused, Input) or focused not in fields:
            raise SkipAction()  # the focus is elsewhere: the key does what it would
        return fields, fields.index(focused)

    def action_enter_field(self) -> None:
        """On to the next field, or submit from the last."""
        fields, at = self._position()
        if at < len(fields) - 1:
            self.screen.set_focus(fields[at + 1])
        else:
            # Keys typed before this Enter may still wait in a field's queue: submit once
            # every field has taken what was passed to it.
            self._after(fields, self.submit)

    def action_next_field(self) -> None:
        """On to the next field (from the last, Tab does what it does elsewhere)."""
        fields, at = self._position()
        if at == len(fields) - 1:
            raise SkipAction()
        self.screen.set_focus(fields[at + 1])

    def _after(self, fields: list[Input], then: Callable[[], None]) -> None:
        if not fields:
            then()
        else:
            fields[0].call_later(self._after, fields[1:], then)

    def submit(self) -> None:
        """Enter in the last field: what the form does with what was typed."""
        raise NotImplementedError
