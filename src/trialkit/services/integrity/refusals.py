"""Every refusal is audited: who tried what, on what, and why it was refused.

A use case decorated with :func:`audits_refusals` that refuses (exit 1: a permission, a
site it does not serve, the state of the trial) attaches the record of the refusal to the
error; ``store.db.transaction`` rolls the refused work back and appends that record in a
small transaction of its own (one short write, only when something is refused). Refusals a
use case already records in its own transaction (``keep_record``: a refused sign-in, an
unblinded export, a pharmacy action) are left as they are. Invalid input (exit 2) is not a
refusal and changes nothing."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlmodel import Session

from trialkit.domain.clock import Clock, SystemClock
from trialkit.domain.errors import Refused
from trialkit.services.actor import Actor

P = ParamSpec("P")
R = TypeVar("R")

# Entity ids are user input: a refusal records at most this much of one.
ID_MAX = 128


def audits_refusals(
    action: str, *, entity: str, entity_id: str | None = None
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a use case taking ``(session, actor, ...)``: a refusal it raises is recorded
    as ``<action>.refused`` on ``entity`` (its id from the parameter named ``entity_id``, if
    any) with the refusal's words as the reason."""

    def decorate(use_case: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(use_case)

        @functools.wraps(use_case)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return use_case(*args, **kwargs)
            except Refused as exc:
                if not exc.keep_record:  # the outermost use case names the attempt
                    bound = signature.bind_partial(*args, **kwargs).arguments
                    exc.record_after = _recorder(bound, action, entity, entity_id, exc.message)
                raise

        return run

    return decorate


def _recorder(
    bound: dict[str, Any], action: str, entity: str, id_param: str | None, why: str
) -> Callable[[Session], None] | None:
    actor = bound.get("actor")
    if not isinstance(actor, Actor):
        return None
    raw = bound.get(id_param) if id_param else None
    target = "-" if raw is None else str(raw).strip()[:ID_MAX] or "-"
    clock: Clock = bound.get("clock") or SystemClock()  # use cases that only read take none

    def record(session: Session) -> None:
        from trialkit.services.integrity import (
            audit,  # audit's own use case (log) is decorated here
        )

        audit.record(session, actor, action=f"{action}.refused", entity=entity,
                     entity_id=target, reason=why, clock=clock)

    return record
