"""Scripted flows add users as an admin does (``trialkit user add`` prints a one-time code)
and then activate each account as its owner does (``trialkit user activate`` with the code):
the code is read from what ``user add`` printed, as a person would read it off the screen."""

from __future__ import annotations

import re

_CODE = re.compile(r"One-time enrolment code for (?P<name>\S+): (?P<code>[A-Z0-9-]+)")


def added(args: list[str] | tuple[str, ...]) -> bool:
    """Whether a command line adds a user (after any global options)."""
    words = [a for a in args if not a.startswith("--")]
    return "user" in words and words[words.index("user") + 1 : words.index("user") + 2] == ["add"]


def enrolment_code(stdout: str) -> tuple[str, str]:
    """The name and the code ``user add`` printed."""
    found = _CODE.search(stdout)
    assert found is not None, stdout
    return found["name"], found["code"]
