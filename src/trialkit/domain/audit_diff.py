"""What an audit event changed, field by field, as a reviewer reads it.

An event stores the whole state of its entity before and after (a participant's every
eligibility answer, a user's every setting). A reviewer wants the few fields that changed:
``field_changes`` compares the two states leaf by leaf and names each changed field by its
path (``answers.E01_pregnancy``, ``earlier[0].severity``).

Events never carry an arm. Should one ever hold a key that names sealed material (a
service's mistake, a row written outside trialkit), ``blinded`` hides its value before
anything is compared or shown: the audit trail is read only by blinded roles."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

# Keys whose value would reveal an allocation or the keys that open one.
SEALED_KEYS = frozenset({
    "arm", "arm_code", "arm_name", "arms", "allocation", "treatment",
    "lot", "lots", "sealed_policy", "blocks", "data_key", "wrapped_key", "private_key",
    "wrapped_private_key", "plaintext",
})
SEALED = "(sealed: not shown to blinded readers)"

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class FieldChange:
    """One field of an event's entity that is not the same before and after."""

    field: str
    kind: ChangeKind
    before: Any = None
    after: Any = None


def blinded(value: Any) -> Any:
    """``value`` with the value of every sealed key (at any depth) replaced by a marker."""
    if isinstance(value, Mapping):
        return {k: SEALED if str(k).lower() in SEALED_KEYS else blinded(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [blinded(v) for v in value]
    return value


def _is_leaf(value: Any) -> bool:
    """Scalars, empty containers and lists of scalars are compared whole (a list of failed
    criteria, one diary row); mappings and lists holding containers are opened up."""
    if isinstance(value, Mapping):
        return not value
    if isinstance(value, list):
        return not value or not any(isinstance(v, Mapping | list) for v in value)
    return True


def leaves(value: Any, path: str = "") -> dict[str, Any]:
    """Every leaf of a JSON value by its path, in the value's own order."""
    if _is_leaf(value):
        if not path and isinstance(value, Mapping):
            return {}  # a state with no fields
        return {path or "(value)": value}
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for key, inner in value.items():
            out |= leaves(inner, f"{path}.{key}" if path else str(key))
    else:
        for i, inner in enumerate(value):
            out |= leaves(inner, f"{path}[{i}]")
    return out


def field_changes(before: Any, after: Any) -> list[FieldChange]:
    """The fields that differ between two states (None: the entity did not exist), in the
    order the new state lists them, removed fields last."""
    old = leaves(before) if before is not None else {}
    new = leaves(after) if after is not None else {}
    changes: list[FieldChange] = []
    for path, value in new.items():
        if path not in old:
            changes.append(FieldChange(path, "added", after=value))
        elif old[path] != value or type(old[path]) is not type(value):
            changes.append(FieldChange(path, "changed", before=old[path], after=value))
    changes += [FieldChange(path, "removed", before=value)
                for path, value in old.items() if path not in new]
    return changes


def shown_value(value: Any) -> str:
    """A field's value as one line of text: JSON, so ``null``, ``"2.0"`` and ``2.0`` differ."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def describe(change: FieldChange) -> str:
    """``field: before → after``; ``+ field: value`` when added, ``- field: value`` when
    removed."""
    if change.kind == "added":
        return f"+ {change.field}: {shown_value(change.after)}"
    if change.kind == "removed":
        return f"- {change.field}: {shown_value(change.before)}"
    return f"{change.field}: {shown_value(change.before)} → {shown_value(change.after)}"
