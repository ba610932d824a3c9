"""The app side of a browser session started by ``trialkit serve``: its user signed in on
the serve sign-in page, and the server handed this process a single-use ticket (in its
environment, never on a command line) that it redeems over the server's private socket
for the user's name."""

from __future__ import annotations

import base64
import binascii
import json
import os
import socket
from dataclasses import dataclass

from trialkit.domain.errors import Refused

TICKET_ENV = "TRIALKIT_WEB_TICKET"
SOCKET_ENV = "TRIALKIT_WEB_SOCKET"
REDEEM_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Ticket:
    socket_path: str
    token: str


def ticket_from_environment() -> Ticket | None:
    """The ticket this process was started with, taken out of the environment so nothing
    it starts inherits it."""
    token, path = os.environ.pop(TICKET_ENV, None), os.environ.pop(SOCKET_ENV, None)
    if not token or not path:
        return None
    return Ticket(path, token)


@dataclass(frozen=True)
class BrowserUser:
    """Who a browser session is: their name, and the signing key their sign-in at the
    server's page unlocked (raw Ed25519 private bytes), to sign their events with."""

    name: str
    signing_key: bytes | None = None


def redeem(ticket: Ticket) -> BrowserUser:
    """The user the server gave this ticket; the server forgets the ticket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(REDEEM_TIMEOUT_SECONDS)
        try:
            conn.connect(ticket.socket_path)
            conn.sendall(ticket.token.encode("ascii") + b"\n")
            answer = conn.makefile("rb").readline()
        except OSError as exc:
            raise Refused(f"the browser session could not be opened: {exc}") from None
    try:
        reply = json.loads(answer)
    except ValueError:
        reply = {}
    user = reply.get("user") if isinstance(reply, dict) else None
    if not isinstance(user, str):
        raise Refused("the browser session's ticket was refused: sign in again")
    key = reply.get("signing_key")
    try:
        raw = base64.b64decode(key, validate=True) if isinstance(key, str) else None
    except (binascii.Error, ValueError):
        raw = None
    return BrowserUser(user, raw)
