"""Steps for ``features/unblinding.feature``: an unblinding custodian learns one
participant's treatment in an emergency, with a reason and their password again; everyone
else sees the flag and the event, never the treatment.

Runs on SQLite and, with TRIALKIT_TEST_PG_URL, on PostgreSQL, on the trial the pharmacy
steps build (``tests.step_defs.test_pharmacy``), each scenario in a rolled-back window."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.db.test_pharmacy import ARMS, World, trial_on_each_backend, window
from tests.step_defs.test_pharmacy import TREATMENTS, PharmacyWorld, names_a_treatment
from trialkit.domain.errors import InvalidInput, Refused
from trialkit.services.pharmacy.unblinding import Unblinding

scenarios("unblinding.feature")


trial = trial_on_each_backend("unblinding-bdd")


@pytest.fixture(autouse=True)
def world(trial: World) -> Iterator[PharmacyWorld]:
    """Autouse, so that every scenario is collected once per backend."""
    with window(trial) as box:
        yield PharmacyWorld(box, me="ivan")


# --- Background ----------------------------------------------------------------------------------


@given(parsers.parse('the KetHead trial is running with the custodian investigator "{ivan}" and '
                     'the monitor "{mona}"'))
def custodian_and_monitor(world: PharmacyWorld, ivan: str, mona: str) -> None:
    investigator, monitor = world.box.actor(ivan), world.box.actor(mona)
    assert (investigator.role.value, investigator.custodian) == ("investigator", True)
    assert monitor.role.value == "monitor"


@given(parsers.parse('"{pid}" has been randomized and the pharmacy has prepared the infusion '
                     'from the lots "{bolus}" and "{infusion}"'))
def prepared(world: PharmacyWorld, pid: str, bolus: str, infusion: str) -> None:
    world.box.dispense(pid, by="phil", lots={"bolus": bolus, "infusion": infusion},
                       checked_by="pia")


@given(parsers.parse('I am the investigator "{name}"'))
def i_am(world: PharmacyWorld, name: str) -> None:
    world.me = name


# --- unblinding ----------------------------------------------------------------------------------


@when(parsers.re(r'I unblind "(?P<pid>[^"]+)" because "(?P<reason>[^"]*)", typing my '
                 r"password again"))
def i_unblind(world: PharmacyWorld, pid: str, reason: str) -> None:
    world.attempt(lambda: world.box.unblind(pid, reason, by=world.me))


@when(parsers.parse('I unblind "{pid}" because "{reason}", typing the password "{password}"'))
def i_unblind_with(world: PharmacyWorld, pid: str, reason: str, password: str) -> None:
    world.attempt(lambda: world.box.unblind(pid, reason, by=world.me, password=password))


@when(parsers.parse('"{who}" tries to unblind "{pid}" because "{reason}"'))
def someone_unblinds(world: PharmacyWorld, who: str, pid: str, reason: str) -> None:
    world.attempt(lambda: world.box.unblind(pid, reason, by=who))


@when(parsers.parse('the pharmacist "{who}" unblinds "{pid}" because "{reason}"'))
def pharmacist_unblinds(world: PharmacyWorld, who: str, pid: str, reason: str) -> None:
    world.attempt(lambda: world.box.unblind(pid, reason, by=who))


@then(parsers.parse('I am shown that "{pid}" received {treatment}, prepared from the lots '
                    '"{bolus}" and "{infusion}"'))
def shown_with_lots(world: PharmacyWorld, pid: str, treatment: str, bolus: str,
                    infusion: str) -> None:
    u = world.outcome
    assert isinstance(u, Unblinding), u
    assert (u.participant_id, u.arm_code) == (pid, TREATMENTS[treatment]) == (pid, ARMS[pid])
    assert u.record is not None and u.record.lots == {"bolus": bolus, "infusion": infusion}


@then(parsers.parse('he is shown that "{pid}" received {treatment}'))
def shown(world: PharmacyWorld, pid: str, treatment: str) -> None:
    u = world.outcome
    assert isinstance(u, Unblinding), u
    assert (u.participant_id, u.arm_code) == (pid, TREATMENTS[treatment])


@then(parsers.parse("the coordinator's list of participants flags \"{pid}\" as unblinded in an "
                    "emergency"))
def flagged(world: PharmacyWorld, pid: str) -> None:
    assert world.box.participants("cora")[pid].unblinded_emergency


@then("no other participant is flagged")
def no_other_flagged(world: PharmacyWorld) -> None:
    flagged = [v.id for v in world.box.participants("cora").values() if v.unblinded_emergency]
    assert flagged == [world.outcome.participant_id]


@then(parsers.parse('the monitor "{monitor}" sees that "{who}" unblinded "{pid}" because '
                    '"{reason}"'))
def monitor_sees(world: PharmacyWorld, monitor: str, who: str, pid: str, reason: str) -> None:
    log = world.audit_log(monitor)
    [event] = world.box.events("participant.unblind")
    assert (event.user_name, event.entity_id, event.reason) == (who, pid, reason)
    assert "participant.unblind" in log and reason in log


@then("nothing the monitor or the coordinator sees names the treatment")
def nothing_names_the_treatment(world: PharmacyWorld) -> None:
    assert not names_a_treatment(world.audit_log("mona"))
    assert not names_a_treatment(repr(world.box.participants("cora")))


@then(parsers.parse('I am told the input is wrong: "{message}"'))
def told_input_wrong(world: PharmacyWorld, message: str) -> None:
    err = world.error(InvalidInput)
    assert message in err.message and err.exit_code == 2


@then(parsers.parse('I am refused: "{message}"'))
@then(parsers.parse('they are refused: "{message}"'))
def refused(world: PharmacyWorld, message: str) -> None:
    err = world.error(Refused)
    assert message in err.message and err.exit_code == 1


@then(parsers.parse('"{pid}" is not flagged as unblinded and nothing has been recorded'))
def not_flagged_nothing_recorded(world: PharmacyWorld, pid: str) -> None:
    assert not world.box.participants("cora")[pid].unblinded_emergency
    assert world.box.state() == world.before and world.new_events() == []


@then(parsers.parse('"{pid}" is not flagged as unblinded and nothing has been recorded but '
                    'the refusal'))
def not_flagged_but_the_refusal(world: PharmacyWorld, pid: str) -> None:
    assert not world.box.participants("cora")[pid].unblinded_emergency
    assert world.box.state() == world.before
    assert world.new_events() == ["participant.unblind.refused"]


@then(parsers.parse('"{pid}" is not flagged as unblinded'))
def not_flagged(world: PharmacyWorld, pid: str) -> None:
    assert not world.box.participants("cora")[pid].unblinded_emergency


@then(parsers.parse('the audit trail shows that "{who}" was refused'))
def refusal_audited(world: PharmacyWorld, who: str) -> None:
    assert world.new_events() == ["unblind.refused"]
    [refusal] = world.box.events("unblind.refused")
    assert refusal.user_name == who and "lacks the permission" in (refusal.reason or "")
