"""Dose arithmetic: weight-based volumes, rates and durations from the protocol's dosing
section, rounded as the protocol says.

Blinding rests on the shape of this module. :func:`dose_plan` takes no arm at all, so the
volumes, rates and durations of every arm are identical by construction; what differs by
arm (the product put in the syringe or bag) comes only from :func:`products_for`, which is
for the unblinded pharmacy and never reaches a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from trialkit.domain.errors import IntegrityFailure, InvalidInput
from trialkit.domain.protocol import Dosing, Preparation


@dataclass(frozen=True)
class Dose:
    """One preparation for one participant: the same for every arm."""

    preparation_id: str
    name: str
    kind: Literal["bolus", "infusion"]
    volume_ml: Decimal  # what goes in the syringe or bag
    rate_ml_h: Decimal | None  # infusions only
    hours: Decimal | None  # infusions only
    ml_per_kg: Decimal  # the protocol's volume (bolus) or rate (infusion) per kg
    instructions: str | None


@dataclass(frozen=True)
class DosePlan:
    """Every preparation of one participant, computed from the dosing weight."""

    weight_kg: Decimal  # as recorded
    dosing_weight_kg: Decimal  # after the protocol's weight cap, if any
    capped: bool
    step_ml: Decimal  # the protocol's rounding step
    doses: tuple[Dose, ...]

    @property
    def total_ml(self) -> Decimal:
        return sum((d.volume_ml for d in self.doses), Decimal(0))

    def dose(self, preparation_id: str) -> Dose:
        return next(d for d in self.doses if d.preparation_id == preparation_id)


def _decimal(value: float) -> Decimal:
    # str() gives the shortest repr, so 0.1 stays 0.1 rather than 0.1000000000000000055...
    return Decimal(str(value))


def round_to_step(value: Decimal, step: Decimal) -> Decimal:
    """``value`` to the nearest multiple of ``step``, halves away from zero (as a pharmacist
    rounds: 34.15 mL/h at a 0.1 mL step is 34.2 mL/h), with the step's decimals."""
    if step <= 0:
        raise InvalidInput(f"rounding step {step} must be positive")
    multiple = (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return (multiple * step).quantize(step)


def format_ml(value: Decimal) -> str:
    """A volume or rate as printed: as many decimals as the rounding step has."""
    return format(value, "f")


def format_number(value: Decimal) -> str:
    """A number without trailing zeros (6 h, 6.5 h, 70 kg, 70.5 kg)."""
    text = format(value.normalize(), "f")
    return text


def _bolus(prep: Preparation, weight: Decimal, step: Decimal) -> Dose:
    assert prep.volume_ml_per_kg is not None  # protocol validation guarantees it
    per_kg = _decimal(prep.volume_ml_per_kg)
    return Dose(
        preparation_id=prep.id,
        name=prep.name,
        kind="bolus",
        volume_ml=round_to_step(per_kg * weight, step),
        rate_ml_h=None,
        hours=None,
        ml_per_kg=per_kg,
        instructions=prep.instructions,
    )


def _infusion(prep: Preparation, weight: Decimal, step: Decimal) -> Dose:
    assert prep.rate_ml_per_kg_h is not None and prep.hours is not None
    per_kg, hours = _decimal(prep.rate_ml_per_kg_h), _decimal(prep.hours)
    # The pump is set to the rounded rate, so the bag holds that rate for the stated hours.
    rate = round_to_step(per_kg * weight, step)
    return Dose(
        preparation_id=prep.id,
        name=prep.name,
        kind="infusion",
        volume_ml=round_to_step(rate * hours, step),
        rate_ml_h=rate,
        hours=hours,
        ml_per_kg=per_kg,
        instructions=prep.instructions,
    )


def dose_plan(dosing: Dosing, weight_kg: float) -> DosePlan:
    """Volumes and rates of every preparation for a participant of this weight.

    KetHead, 70 kg: bolus 0.1 mL/kg = 7.0 mL; infusion 0.5 mL/kg/h = 35.0 mL/h for 6 h =
    210.0 mL. No arm goes in, so no arm can change what comes out."""
    if not weight_kg > 0:
        raise InvalidInput(f"weight {weight_kg} kg: a dose needs a positive weight")
    weight = _decimal(weight_kg)
    cap = None if dosing.weight_cap_kg is None else _decimal(dosing.weight_cap_kg)
    dosing_weight = weight if cap is None else min(weight, cap)
    step = _decimal(dosing.round_ml)
    doses = tuple(
        _bolus(p, dosing_weight, step) if p.kind == "bolus" else _infusion(p, dosing_weight, step)
        for p in dosing.preparations
    )
    return DosePlan(weight, dosing_weight, dosing_weight != weight, step, doses)


def products_for(dosing: Dosing, arm_code: str) -> dict[str, str]:
    """Preparation id -> the product to use for this arm. Unblinded: pharmacy only."""
    products: dict[str, str] = {}
    for prep in dosing.preparations:
        product = prep.products.get(arm_code)
        if product is None:
            raise IntegrityFailure(f"the protocol has no product for arm {arm_code!r}")
        products[prep.id] = product
    return products
