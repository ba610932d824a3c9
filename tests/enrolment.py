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


# A custodian's activation prints their key fingerprint, which they read out to whoever
# approves them; a scripted flow writes ``approve(NAME)`` and the fingerprint NAME's
# activation printed is filled in when the step runs.
_KEY = re.compile(r"Your custodian key: (?P<key>[0-9a-f]{4}(?: [0-9a-f]{4}){3})")
_READ_OUT: dict[tuple[str, str], str] = {}


def remember_key(db: object, name: str, stdout: str) -> None:
    """Note the custodian key fingerprint an activation printed (nothing for others)."""
    found = _KEY.search(stdout)
    if found:
        _READ_OUT[(str(db), name)] = found["key"]


def approve(name: str) -> list[str]:
    """``custodian approve NAME --fingerprint ...`` with what NAME read out."""
    return ["custodian", "approve", name, "--fingerprint", f"<key of {name}>"]


def read_out(db: object, args: list[str] | tuple[str, ...]) -> list[str]:
    """``args`` with each ``<key of NAME>`` replaced by the fingerprint NAME read out."""
    return [_READ_OUT[(str(db), a[len("<key of "):-1])] if a.startswith("<key of ") else a
            for a in args]
