"""Eligibility: automatic checks (age range) plus the coordinator's yes/no answers.
An inclusion criterion is met by "yes", an exclusion criterion by "no"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import Criterion, Protocol

# Beyond these, an age is a typing error, not a screen failure.
PLAUSIBLE_AGE = (0, 120)
SEXES = ("F", "M")


@dataclass(frozen=True)
class Screening:
    """What the coordinator records at screening."""

    age: int
    sex: str
    weight_kg: float
    answers: Mapping[str, bool]


@dataclass(frozen=True)
class Verdict:
    eligible: bool
    failed: tuple[str, ...]  # criterion ids not met, in protocol order


def parse_answer(criterion_id: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("yes", "y", "true"):
        return True
    if value in ("no", "n", "false"):
        return False
    raise InvalidInput(f"answer for {criterion_id}: {text!r} is not yes or no")


def answered_criteria(protocol: Protocol) -> list[Criterion]:
    """Criteria the coordinator answers (everything not checked automatically)."""
    return [c for c in protocol.eligibility.criteria if c.automatic is None]


def check_screening(s: Screening, protocol: Protocol) -> None:
    """Refuse implausible input (a typo), as opposed to an ineligible participant."""
    lo, hi = PLAUSIBLE_AGE
    if not lo <= s.age <= hi:
        raise InvalidInput(f"age {s.age} is not plausible ({lo}-{hi})")
    if s.sex not in SEXES:
        raise InvalidInput(f"sex {s.sex!r}: use F or M")
    e = protocol.eligibility
    if not e.weight_min_kg <= s.weight_kg <= e.weight_max_kg:
        raise InvalidInput(
            f"weight {s.weight_kg:g} kg is outside the plausible range "
            f"{e.weight_min_kg:g}-{e.weight_max_kg:g} kg"
        )
    expected = {c.id for c in answered_criteria(protocol)}
    unknown = sorted(set(s.answers) - expected)
    if unknown:
        raise InvalidInput(f"unknown criterion {unknown[0]!r}")
    missing = [c.id for c in answered_criteria(protocol) if c.id not in s.answers]
    if missing:
        raise InvalidInput(f"missing answers for {len(missing)} criteria: {', '.join(missing)}")


def _met(c: Criterion, s: Screening, protocol: Protocol) -> bool:
    if c.automatic == "age":
        return protocol.eligibility.age_min <= s.age <= protocol.eligibility.age_max
    answer = s.answers[c.id]
    return answer if c.kind == "inclusion" else not answer


def evaluate(s: Screening, protocol: Protocol) -> Verdict:
    """Eligible when every criterion is met; otherwise the ones that are not."""
    check_screening(s, protocol)
    failed = tuple(c.id for c in protocol.eligibility.criteria if not _met(c, s, protocol))
    return Verdict(eligible=not failed, failed=failed)


def live_verdict(
    age: int | None, answers: Mapping[str, bool | None], protocol: Protocol
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """For a form being filled in: (failed so far, still unanswered) criterion ids."""
    failed: list[str] = []
    pending: list[str] = []
    for c in protocol.eligibility.criteria:
        if c.automatic == "age":
            if age is None:
                pending.append(c.id)
            elif not protocol.eligibility.age_min <= age <= protocol.eligibility.age_max:
                failed.append(c.id)
            continue
        answer = answers.get(c.id)
        if answer is None:
            pending.append(c.id)
        elif answer != (c.kind == "inclusion"):
            failed.append(c.id)
    return tuple(failed), tuple(pending)
