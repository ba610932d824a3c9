"""The pharmacy commands as people type them: ``queue``, ``dispense``, ``label``,
``preparation`` and ``unblind``, on a SQLite file holding a training trial whose
participants were randomized through the services (``tests.db.test_pharmacy.build_world``:
TWH-001 and TWH-003 got ketamine, TWH-002 and TWH-004 placebo).

One flow is played once per module, in process (each command signs in and unlocks a
custodian key; a fresh interpreter per command would cost seconds), and each test reads
what the flow printed and wrote. Two commands also run as ``python -m trialkit`` to prove
a refusal is one line on stderr and never a traceback."""

from __future__ import annotations

import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.builders import PROTOCOL
from tests.conftest import ADMIN, PASSWORD
from tests.db.test_pharmacy import build_world
from trialkit.cli.app import app
from trialkit.cli.wording import error_line
from trialkit.domain.errors import TrialkitError
from trialkit.store.db import make_engine

ARM_WORDS = re.compile(r"\b(?:KET|PLA|ketamine|placebo|saline|chloride)\b", re.IGNORECASE)
KET_LOTS = ["--lot", "bolus=K2403-117", "--lot", "infusion=K2403-118"]
PLA_LOTS = ["--lot", "bolus=S2311-042", "--lot", "infusion=NS-2311-0043-BAG"]

# (name of the step, who acts, the command line after `trialkit --db URL [--user WHO]`);
# FILE/ is replaced by the flow's folder.
FLOW: list[tuple[str, str | None, list[str]]] = [
    ("queue", "phil", ["queue"]),
    ("queue json", "phil", ["--json", "queue"]),
    ("look", "phil", ["dispense", "TWH-001"]),
    ("record ketamine", "phil", ["dispense", "TWH-001", *KET_LOTS, "--checked-by", "pia",
                                 "--label-out", "FILE/ket.pdf"]),
    ("record placebo", "phil", ["--json", "dispense", "TWH-002", *PLA_LOTS, "--checked-by",
                                "pia", "--label-out", "FILE/pla.pdf"]),
    ("queue after", "phil", ["queue"]),
    ("reprint", "pia", ["label", "TWH-001", "--out", "FILE/ket-again.pdf"]),
    ("preparation", "pia", ["preparation", "TWH-002"]),
    ("unblind", "ivan", ["unblind", "TWH-003", "--yes", "--reason",
                        "suspected serious adverse reaction"]),
    ("participants", "cora", ["--json", "participants"]),
    ("participants text", "cora", ["participants"]),
    ("audit log", "mona", ["audit", "log"]),
    ("audit verify", None, ["audit", "verify"]),
    # mistakes: exit status 2
    ("label-out not a pdf", "phil", ["dispense", "TWH-003", "--label-out", "FILE/x.txt"]),
    ("label-out in no folder", "phil", ["dispense", "TWH-003", *KET_LOTS, "--checked-by", "pia",
                                        "--label-out", "FILE/nowhere/x.pdf"]),
    ("lot of the wrong shape", "phil", ["dispense", "TWH-003", "--lot", "bolus=K", "--lot",
                                        "infusion=K2403-118", "--checked-by", "pia"]),
    ("lot without a preparation", "phil", ["dispense", "TWH-003", "--lot", "K2403-117"]),
    ("unknown participant", "phil", ["dispense", "TWH-999"]),
    ("no reason", "ivan", ["unblind", "TWH-004"]),
    ("blank reason", "ivan", ["unblind", "TWH-004", "--reason", "   "]),
    # refusals: exit status 1
    ("coordinator dispenses", "cora", ["dispense", "TWH-003"]),
    ("coordinator reprints", "cora", ["label", "TWH-001", "--out", "FILE/cora.pdf"]),
    ("monitor unblinds", "mona", ["unblind", "TWH-004", "--reason", "curious", "--yes"]),
    ("investigator unblinds", "iris", ["unblind", "TWH-004", "--reason", "curious",
                                       "--yes"]),
    ("admin dispenses", ADMIN, ["dispense", "TWH-003"]),
    # the emergency-unblinding report: ivan's unblinding and the two refused attempts
    ("unblindings", "mona", ["audit", "unblindings"]),
    ("unblindings json", "iris", ["--json", "audit", "unblindings"]),
    ("coordinator reads unblindings", "cora", ["audit", "unblindings"]),
    ("dispensed again", "phil", ["dispense", "TWH-001"]),
    ("own check", "phil", ["dispense", "TWH-003", *KET_LOTS, "--checked-by", "phil"]),
    ("not randomized", "phil", ["dispense", "TWH-006"]),
    ("labels before dispensing", "phil", ["label", "TWH-003", "--out", "FILE/early.pdf"]),
    # the checker signs the check with their own password (TRIALKIT_CHECKER_PASSWORD)
    ("wrong checker password", "phil", ["dispense", "TWH-003", *KET_LOTS, "--checked-by", "pia"]),
    ("no checker password", "phil", ["dispense", "TWH-003", *KET_LOTS, "--checked-by", "pia"]),
    # a day later (LATER): the preparations of TWH-001 and TWH-002 have expired
    ("queue expired", "phil", ["queue"]),
    ("dispense expired", "phil", ["dispense", "TWH-001"]),
    ("infuse expired", "cora", ["infuse", "TWH-002", "--date", "{date}", "--time", "{time}"]),
    ("reprepare without a reason", "phil", ["dispense", "TWH-001", "--reprepare", *KET_LOTS,
                                            "--checked-by", "pia"]),
    ("reprepare without lots", "phil", ["dispense", "TWH-001", "--reprepare", "--reason",
                                        "expired", "--checked-by", "pia"]),
    ("reason without reprepare", "phil", ["dispense", "TWH-003", "--reason", "expired"]),
    ("reprepare", "phil", ["dispense", "TWH-001", "--reprepare", "--reason",
                           "expired before the infusion", *KET_LOTS, "--checked-by", "pia",
                           "--label-out", "FILE/ket-2.pdf"]),
    ("reprepare never dispensed", "phil", ["dispense", "TWH-004", "--reprepare", "--reason",
                                           "expired", *PLA_LOTS, "--checked-by", "pia"]),
    ("queue after reprepare", "phil", ["--json", "queue"]),
    ("infuse prepared again", "cora", ["infuse", "TWH-001", "--date", "{date}", "--time",
                                       "{time}"]),
    ("audit verify later", None, ["audit", "verify"]),
]
# Steps a day and two hours after the others; {date} and {time} are then the site's.
LATER = {"queue expired", "dispense expired", "infuse expired", "reprepare without a reason",
         "reprepare without lots", "reason without reprepare", "reprepare",
         "reprepare never dispensed", "queue after reprepare", "infuse prepared again",
         "audit verify later"}
# TRIALKIT_CHECKER_PASSWORD is PASSWORD (pia's) unless a step says otherwise (None: unset)
CHECKER_PASSWORDS: dict[str, str | None] = {"wrong checker password": "not-pias-password",
                                            "no checker password": None}
MISTAKES = {"label-out not a pdf", "label-out in no folder", "lot of the wrong shape",
            "lot without a preparation", "unknown participant", "no reason", "blank reason",
            "no checker password", "reprepare without a reason", "reprepare without lots",
            "reason without reprepare"}
PERMISSION_REFUSALS = {"coordinator dispenses": "dispense.refused",
                       "coordinator reprints": "label.refused",
                       "monitor unblinds": "unblind.refused",
                       "investigator unblinds": "unblind.refused",
                       "admin dispenses": "dispense.refused",
                       "coordinator reads unblindings": "report.unblinding.refused"}
REFUSALS = set(PERMISSION_REFUSALS) | {"dispensed again", "own check", "not randomized",
                                       "labels before dispensing", "wrong checker password",
                                       "dispense expired", "infuse expired",
                                       "reprepare never dispensed"}


@dataclass(frozen=True)
class Shown:
    exit_code: int
    stdout: str
    stderr: str
    new_events: tuple[str, ...]  # the audit actions this command added


@dataclass
class Flow:
    folder: Path
    url: str
    printed: dict[str, Shown] = field(default_factory=dict)

    def __getitem__(self, step: str) -> Shown:
        return self.printed[step]

    def pdf_text(self, name: str) -> list[str]:
        return [p.extract_text() for p in PdfReader(io.BytesIO((self.folder / name)
                                                               .read_bytes())).pages]


def audit_actions(url: str) -> list[str]:
    path = make_url(url).database
    assert path is not None
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT action FROM audit_event ORDER BY seq")]


def invoke(url: str, who: str | None, args: list[str], clock: str,
           checker_password: str | None = PASSWORD) -> tuple[int, str, str]:
    """``trialkit --db URL [--user WHO] ARGS`` in process, as ``python -m trialkit`` runs
    it: a domain error becomes one line on stderr and its exit status."""
    options = ["--db", url] + (["--user", who] if who else [])
    env = {"TRIALKIT_CLOCK": clock, "TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_DB": None,
           "TRIALKIT_USER": None, "TRIALKIT_CHECKER_PASSWORD": checker_password}
    engines: list[Engine] = []

    def recorded(*a: Any, **k: Any) -> Engine:
        engines.append(make_engine(*a, **k))
        return engines[-1]

    with pytest.MonkeyPatch.context() as mp:  # so each command's engine can be closed
        mp.setattr("trialkit.store.db.make_engine", recorded)
        result = CliRunner().invoke(app, [*options, *args], env=env)
    for engine in engines:
        engine.dispose()
    stderr, code = result.stderr, result.exit_code
    if isinstance(result.exception, TrialkitError):
        err = result.exception
        stderr += error_line(err) + "\n"  # as `python -m trialkit` prints it
        code = err.exit_code
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return code, result.stdout, stderr


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    folder = tmp_path_factory.mktemp("pharmacy-cli")
    with build_world("sqlite", folder, training=True) as world:
        world.engine.dispose()
        clock = (world.at + timedelta(hours=1)).isoformat()
        later = world.at + timedelta(hours=27)
        site = PROTOCOL.site_time("TWH").local(later)
        played = Flow(folder, world.url)
        for name, who, args in FLOW:
            before = len(audit_actions(world.url))
            args = [a.replace("FILE/", f"{folder}/").replace("{date}", f"{site:%Y-%m-%d}")
                    .replace("{time}", f"{site:%H:%M}") for a in args]
            code, out, err = invoke(world.url, who, args,
                                    later.isoformat() if name in LATER else clock,
                                    CHECKER_PASSWORDS.get(name, PASSWORD))
            played.printed[name] = Shown(code, out, err,
                                         tuple(audit_actions(world.url)[before:]))
        yield played


def test_every_step_ended_as_intended(flow: Flow) -> None:
    for name, _who, _args in FLOW:
        expected = 2 if name in MISTAKES else 1 if name in REFUSALS else 0
        assert flow[name].exit_code == expected, (name, flow[name].stderr)


def test_a_mistake_or_a_refusal_is_one_line_and_writes_nothing_but_its_audit(flow: Flow) -> None:
    for name in MISTAKES | REFUSALS:
        shown = flow[name]
        assert shown.stderr.count("\n") == 1 and "Traceback" not in shown.stderr, name
        assert shown.stderr.startswith("Error: " if name in MISTAKES else "Refused: "), name
        refusal = [e for e in shown.new_events if e.endswith(".refused")]  # every refusal
        allowed = {"login", *refusal}
        if name == "wrong checker password":  # pia's failed sign-in, as any other
            allowed.add("login.fail")
        else:
            assert len(refusal) <= (0 if name in MISTAKES else 1), (name, shown.new_events)
        assert set(shown.new_events) <= allowed, (name, shown.new_events)
    for name, action in PERMISSION_REFUSALS.items():
        assert action in flow[name].new_events, name
    for pdf in ("x.txt", "nowhere", "cora.pdf", "early.pdf"):
        assert not (flow.folder / pdf).exists()


def test_refusals_say_what_is_missing(flow: Flow) -> None:
    expected = {
        "coordinator dispenses": "cora (coordinator) lacks the permission to open allocation "
                                 "envelopes",
        "coordinator reprints": "cora (coordinator) lacks the permission to open allocation "
                                "envelopes",
        "monitor unblinds": "mona (monitor) lacks the permission to emergency-unblind",
        "investigator unblinds": "iris (investigator) lacks the permission to emergency-unblind",
        "admin dispenses": "alice (admin) lacks the permission to open allocation envelopes",
        "no reason": "an emergency unblinding needs a reason: give --reason TEXT",
        "label-out not a pdf": "give a file name ending in .pdf",
        "lot of the wrong shape": "lot number 'K' for bolus: use 3-20 capital letters",
        "lot without a preparation": "lot 'K2403-117': write it as KEY=VALUE",
        "own check": "phil prepared it, so cannot also check it",
        "not randomized": "TWH-006 has not been randomized",
        "wrong checker password": "the check by pia is not signed: wrong password",
        "no checker password": "no password given: set TRIALKIT_CHECKER_PASSWORD",
        "dispense expired": "to prepare it again: trialkit dispense TWH-001 --reprepare "
                            "--reason TEXT",
        "infuse expired": "TWH-002's prepared infusion expired at",
        "reprepare without a reason": "say why it is prepared again: --reprepare --reason TEXT",
        "reprepare without lots": "preparing again records the new preparation",
        "reason without reprepare": "--reason goes with --reprepare",
        "reprepare never dispensed": "TWH-004 has not been dispensed yet",
    }
    for name, message in expected.items():
        assert message in flow[name].stderr, name
    assert ("; to print its labels again: trialkit label TWH-001 --out FILE.pdf"
            in flow["dispensed again"].stderr)


def test_the_queue_shows_who_waits_without_an_arm(flow: Flow) -> None:
    text = flow["queue"].stdout
    assert text.startswith("TRAINING")
    rows = [line.split()[1] for line in text.splitlines()[2:]]
    assert rows == ["SHS-001", "TWH-001", "TWH-002", "TWH-003", "TWH-004"]
    assert "70.0 kg" in text and not ARM_WORDS.search(text)
    doc = json.loads(flow["queue json"].stdout)
    assert doc[0]["participant_id"] == "SHS-001" and "arm" not in doc[0]
    assert [line.split()[1] for line in flow["queue after"].stdout.splitlines()[2:]] == [
        "SHS-001", "TWH-003", "TWH-004"]


def test_the_pharmacist_is_shown_the_arm_marked_unblinded(flow: Flow) -> None:
    text = flow["look"].stdout
    assert "UNBLINDED" in text and "Arm: KET - Ketamine" in text
    assert "7.0 mL (0.1 mL/kg)" in text and "210.0 mL at 35.0 mL/h (0.5 mL/kg/h) for 6 h" in text
    assert "Not recorded yet" in text
    recorded = flow["record ketamine"].stdout
    assert "checked by pia" in recorded and "Lots: bolus K2403-117, infusion K2403-118" in recorded
    doc = json.loads(flow["record placebo"].stdout)
    assert (doc["preparation"]["checked_by"], doc["preparation"]["check_signed_at"]) == (
        "pia", doc["preparation"]["prepared_at"])
    assert (doc["training"], doc["unblinded"], doc["arm"]) == (True, True, "PLA")
    assert doc["preparation"]["lots"] == {"bolus": "S2311-042", "infusion": "NS-2311-0043-BAG"}
    assert [p["volume_ml"] for p in doc["preparations"]] == ["7.0", "210.0"]


def test_the_checker_signs_with_their_own_password(flow: Flow) -> None:
    """pia's password verified as her sign-in (an audited login, or a failed one that
    counts towards her lockout); without it nothing is recorded."""
    recorded = flow["record ketamine"]
    # Toronto's time: the trial's clock is in late March, daylight time (EDT) since 8 March
    assert re.search(r"The check signed by pia 2026-03-\d\d \d\d:\d\d EDT", recorded.stdout)
    assert recorded.new_events == ("login", "login", "envelope.open", "preparation.record")
    assert flow["wrong checker password"].new_events == ("login", "login.fail")
    assert flow["no checker password"].new_events == ("login",)  # phil's own sign-in


def test_an_expired_preparation_is_queued_and_prepared_again(flow: Flow) -> None:
    queued = flow["queue expired"].stdout
    rows = {line.split()[1]: line for line in queued.splitlines()[2:]}
    assert "expired" in rows["TWH-001"] and "prepare again" in rows["TWH-001"]
    assert "expired" in rows["TWH-002"] and "expired" not in rows["TWH-003"]
    done = flow["reprepare"]
    assert done.exit_code == 0, done.stderr
    assert "Preparation 2: the earlier ones and their labels are void" in done.stdout
    assert "The check signed by pia" in done.stdout
    assert done.new_events == ("login", "login", "envelope.open", "preparation.void",
                               "preparation.record")
    assert all("PREP 2: EARLIER VOID" in page for page in flow.pdf_text("ket-2.pdf"))
    waiting = [e["participant_id"] for e in json.loads(flow["queue after reprepare"].stdout)]
    assert "TWH-001" not in waiting and "TWH-002" in waiting
    # refused: nothing recorded but the refusal itself (rule 3)
    assert flow["infuse expired"].new_events == ("login", "participant.infuse.refused")
    assert flow["infuse prepared again"].exit_code == 0, flow["infuse prepared again"].stderr
    assert flow["infuse prepared again"].new_events == ("login", "participant.infuse")
    assert flow["audit verify later"].stdout.splitlines()[-1].startswith("OK:")
    assert not ARM_WORDS.search(queued)


def test_the_labels_of_both_arms_differ_only_in_identifiers_and_times(flow: Flow) -> None:
    ket, pla = flow.pdf_text("ket.pdf"), flow.pdf_text("pla.pdf")
    assert len(ket) == len(pla) == 2
    assert all("TRAINING" in page for page in ket + pla)
    # The check character may be a symbol (*~$=), where \b would not match after it.
    codes = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-Z*~$=](?![\w*~$=])")

    def normalised(pages: list[str]) -> list[str]:
        out = []
        for page in pages:
            page = re.sub(r"TWH-00\d", "<pid>", page)
            page = re.sub(r"R000\d", "<rand>", page)
            page = codes.sub("<code>", page)
            out.append(re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<time>", page))
        return out

    assert normalised(ket) == normalised(pla)
    for page in ket + pla:
        assert not ARM_WORDS.search(page.replace("KETAMINE OR PLACEBO", ""))
        assert "K2403" not in page and "S2311" not in page


def test_a_reprint_is_counted_on_the_label(flow: Flow) -> None:
    assert "2 labels written to" in flow["reprint"].stdout
    assert "(reprint 1)" in flow["reprint"].stdout
    assert all("REPRINT 1" in page for page in flow.pdf_text("ket-again.pdf"))
    assert flow["reprint"].new_events == ("login", "label.reprint")


def test_a_custodian_pharmacist_reads_the_sealed_preparation(flow: Flow) -> None:
    text = flow["preparation"].stdout
    assert "UNBLINDED" in text and "Arm: PLA" in text
    assert "Lots: bolus S2311-042, infusion NS-2311-0043-BAG" in text
    assert flow["preparation"].new_events == ("login", "envelope.open")


def test_an_emergency_unblinding_is_shown_to_the_requester_and_flagged_for_all(
    flow: Flow,
) -> None:
    text = flow["unblind"].stdout
    assert "UNBLINDED (emergency) - shown to ivan only" in text
    assert "TWH-003 (R0003): KET - Ketamine" in text
    assert flow["unblind"].new_events == ("login", "envelope.open", "participant.unblind")
    views = {v["id"]: v for v in json.loads(flow["participants"].stdout)}
    assert views["TWH-003"]["unblinded_emergency"] is True
    assert views["TWH-004"]["unblinded_emergency"] is False
    assert (views["TWH-001"]["status"], views["TWH-003"]["status"]) == ("dispensed", "randomized")


def test_the_unblinding_report_says_who_when_why_and_never_the_arm(flow: Flow) -> None:
    doc = json.loads(flow["unblindings json"].stdout)
    assert [(d["participant"], d["site"], d["user"], d["role"], d["outcome"]) for d in doc] == [
        ("TWH-003", "TWH", "ivan", "investigator", "unblinded"),
        ("TWH-004", "TWH", "mona", "monitor", "refused"),
        ("TWH-004", "TWH", "iris", "investigator", "refused"),
    ]
    assert doc[0]["reason"] == "suspected serious adverse reaction"
    text = flow["unblindings"].stdout
    assert "TWH-003" in text and "suspected serious adverse reaction" in text
    assert "Emergency unblindings: 1 (participants: 1); refused attempts: 2." in text
    for step in ("unblindings", "unblindings json"):
        assert not ARM_WORDS.search(flow[step].stdout), step
    assert "lacks the permission to read the audit log" in flow[
        "coordinator reads unblindings"].stderr


def test_blinded_people_see_the_events_but_never_an_arm(flow: Flow) -> None:
    log = flow["audit log"].stdout
    for action in ("envelope.open", "preparation.record", "label.reprint", "participant.unblind",
                   "reason: suspected serious adverse reaction"):
        assert action in log
    for step in ("audit log", "participants", "participants text", "queue", "queue after"):
        shown = flow[step].stdout.replace(PROTOCOL.trial.title, "<title>")
        assert not ARM_WORDS.search(shown), step
    assert flow["audit verify"].stdout.splitlines()[-1].startswith("OK:")


def python_m_trialkit(flow: Flow, who: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_USER": who}
    return subprocess.run([sys.executable, "-m", "trialkit", "--db", flow.url, *args],
                          env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_as_a_real_command_a_refusal_is_one_line_on_stderr(flow: Flow) -> None:
    refused = python_m_trialkit(flow, "cora", ["dispense", "TWH-004"])
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == ("Refused: cora (coordinator) lacks the permission to open "
                              "allocation envelopes\n")
    missing = python_m_trialkit(flow, "ivan", ["unblind", "TWH-004"])
    assert (missing.returncode, missing.stdout) == (2, "")
    assert missing.stderr == "Error: an emergency unblinding needs a reason: give --reason TEXT\n"
