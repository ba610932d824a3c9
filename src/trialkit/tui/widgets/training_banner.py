"""The TRAINING banner every screen carries while the database holds a training trial."""

from __future__ import annotations

from textual.widgets import Static

TRAINING_TEXT = "TRAINING — not for clinical use"


class TrainingBanner(Static):
    """A one-line warning, shown only in a training trial (follows ``App.training``)."""

    def __init__(self) -> None:
        super().__init__(TRAINING_TEXT)

    def on_mount(self) -> None:
        """Show or hide with the app's ``training`` flag, now and whenever it changes."""
        self.watch(self.app, "training", self._follow)

    def _follow(self, training: bool) -> None:
        self.display = training
