"""Dose arithmetic from the protocol's dosing section: the KetHead worked example, rounding
as the protocol says, a weight cap when one is set, and the same volumes for every arm
because no arm goes in."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.builders import PROTOCOL
from trialkit.domain.dosing import (
    dose_plan,
    format_ml,
    format_number,
    products_for,
    round_to_step,
)
from trialkit.domain.errors import IntegrityFailure, InvalidInput

DOSING = PROTOCOL.dosing
D = Decimal


def test_the_kethead_worked_example_for_70_kg() -> None:
    """kethead.md: bolus 7 mL; infusion 35 mL/h x 6 h = 210 mL; 217 mL in all."""
    plan = dose_plan(DOSING, 70.0)
    bolus, bag = plan.dose("bolus"), plan.dose("infusion")
    assert (bolus.kind, bolus.volume_ml, bolus.rate_ml_h, bolus.hours) == (
        "bolus", D("7.0"), None, None)
    assert (bag.kind, bag.volume_ml, bag.rate_ml_h, bag.hours) == (
        "infusion", D("210.0"), D("35.0"), D("6"))
    assert plan.total_ml == D("217.0")
    assert (plan.dosing_weight_kg, plan.capped) == (D("70.0"), False)


def test_volumes_and_rates_are_rounded_to_the_protocol_step_halves_up() -> None:
    # 68.3 kg: 6.83 mL -> 6.8; 34.15 mL/h -> 34.2 (binary floats would give 34.1); the bag
    # holds the rounded rate for 6 h, so the pump empties it on time: 205.2 mL.
    plan = dose_plan(DOSING, 68.3)
    assert plan.dose("bolus").volume_ml == D("6.8")
    assert plan.dose("infusion").rate_ml_h == D("34.2")
    assert plan.dose("infusion").volume_ml == D("205.2")
    assert format_ml(plan.dose("infusion").volume_ml) == "205.2"


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [("34.15", "0.1", "34.2"), ("34.14", "0.1", "34.1"), ("7", "0.1", "7.0"),
     ("7.26", "0.5", "7.5"), ("7.24", "0.5", "7.0"), ("7.125", "0.25", "7.25"),
     ("7.4", "1", "7"), ("7.5", "1", "8")],
)
def test_round_to_step(value: str, step: str, expected: str) -> None:
    assert format_ml(round_to_step(D(value), D(step))) == expected


def test_a_rounding_step_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="must be positive"):
        round_to_step(D("7"), D("0"))


def test_numbers_print_without_trailing_zeros() -> None:
    assert [format_number(D(v)) for v in ("6", "6.0", "6.50", "70.0", "83.7")] == [
        "6", "6", "6.5", "70", "83.7"]


def test_a_weight_cap_in_the_protocol_caps_the_dosing_weight() -> None:
    capped = DOSING.model_copy(update={"weight_cap_kg": 100.0})
    plan = dose_plan(capped, 120.0)
    assert (plan.weight_kg, plan.dosing_weight_kg, plan.capped) == (D("120.0"), D("100.0"), True)
    assert plan.dose("bolus").volume_ml == D("10.0")
    assert dose_plan(capped, 99.0).capped is False


@pytest.mark.parametrize("weight", [0.0, -70.0, float("nan")])
def test_a_dose_needs_a_positive_weight(weight: float) -> None:
    with pytest.raises(InvalidInput, match="positive weight"):
        dose_plan(DOSING, weight)


def test_no_arm_goes_into_the_dose_plan() -> None:
    """Identical volumes for every arm by construction: the plan cannot even be told one."""
    assert list(inspect.signature(dose_plan).parameters) == ["dosing", "weight_kg"]


def test_only_the_product_differs_by_arm() -> None:
    ket, pla = products_for(DOSING, "KET"), products_for(DOSING, "PLA")
    assert set(ket) == set(pla) == {"bolus", "infusion"}
    assert ket["bolus"].startswith("Ketamine 10 mg/mL")
    assert ket["infusion"].startswith("Ketamine 2 mg/mL")
    assert pla == {"bolus": "Sodium chloride 0.9 %", "infusion": "Sodium chloride 0.9 %"}


def test_an_arm_the_protocol_does_not_know_has_no_product() -> None:
    with pytest.raises(IntegrityFailure, match="no product for arm 'XYZ'"):
        products_for(DOSING, "XYZ")


@given(tenths=st.integers(min_value=300, max_value=2500))
def test_every_plausible_weight_gives_volumes_on_the_step_and_within_half_a_step(
    tenths: int,
) -> None:
    weight = tenths / 10
    plan = dose_plan(DOSING, weight)
    step = D(str(DOSING.round_ml))
    exact_kg = D(tenths) / 10
    for dose in plan.doses:
        assert dose.volume_ml % step == 0
        per_kg_exact = dose.ml_per_kg * exact_kg
        if dose.kind == "bolus":
            assert abs(dose.volume_ml - per_kg_exact) <= step / 2
        else:
            assert dose.rate_ml_h is not None and dose.hours is not None
            assert dose.rate_ml_h % step == 0
            assert abs(dose.rate_ml_h - per_kg_exact) <= step / 2
            assert dose.volume_ml == round_to_step(dose.rate_ml_h * dose.hours, step)
    assert plan.total_ml == sum(d.volume_ml for d in plan.doses)
