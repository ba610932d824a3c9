"""Words about one participant and the rules for which enrolment step fits them now:
blinded (nothing here depends on an arm)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trialkit.tui.commands import RANDOMIZE, RECORD_CONSENT

if TYPE_CHECKING:
    from trialkit.services.enrolment import ParticipantView


def describe_participant(p: ParticipantView) -> str:
    """One line about the selected participant (blinded: no arm, nothing arm-dependent)."""
    parts = [f"{p.id} · {p.status}", f"{p.age} y, {p.sex}, {p.weight_kg:g} kg"]
    if p.failed:
        parts.append(f"failed {', '.join(p.failed)}")
    if p.consent_date:
        parts.append(f"consented {p.consent_date}")
    if p.randomization_number:
        parts.append(f"{p.randomization_number}, label {p.label_code}")
    if p.unblinded_emergency:
        parts.append("EMERGENCY-UNBLINDED")
    return " · ".join(parts)


def refusal(action: str, p: ParticipantView) -> str | None:
    """Why this step cannot be taken for this participant now, or None if it can."""
    if p.status == "withdrawn":
        return f"{p.id} has withdrawn."
    if action == RECORD_CONSENT.action and p.status != "eligible":
        reason = {"ineligible": "is not eligible"}.get(p.status, f"is already {p.status}")
        return f"{p.id} {reason}: consent is recorded once, for an eligible participant."
    if action == RANDOMIZE.action and p.status != "consented" and not p.randomization_number:
        return f"{p.id} is {p.status}: randomize after consent."
    return None
