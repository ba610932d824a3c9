"""``status``, ``lock`` and ``export`` as people type them, on a SQLite training trial carried
to five weeks after four infusions (``tests.db.test_export.build_export_world``).

One flow is played once per module, in process (as ``test_pharmacy_cli`` does); each test
reads what it printed and wrote. Two commands also run as ``python -m trialkit`` to prove a
refusal is one line on stderr and ``--json`` keeps stdout one JSON document."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from tests.cli.test_pharmacy_cli import audit_actions, invoke
from tests.conftest import ADMIN, PASSWORD
from tests.db.test_export import RANDOMIZED, build_export_world
from tests.db.test_pharmacy import ARMS, arm_words
from trialkit.services.exports.datasets import DIARY_COLUMNS, OUTCOME_COLUMNS

TRAINING = "TRAINING — not for clinical use\n"


def flow_steps(today: str) -> list[tuple[str, str | None, list[str]]]:
    """(name of the step, who acts, the command line after `trialkit --db URL`); FILE/ is
    the flow's folder."""
    return [
        ("status", "ivan", ["status"]),
        ("status json", "ivan", ["--json", "status"]),
        ("status figure", "ivan", ["status", "--figure", "FILE/status.svg"]),
        ("status admin", ADMIN, ["status"]),
        ("export outcomes", "ivan", ["export", "outcomes", "--out", "FILE/outcomes.csv"]),
        ("export diary json", "ivan", ["--json", "export", "diary", "--out", "FILE/diary.csv"]),
        ("export participants", "ivan",
         ["export", "participants", "--out", "FILE/participants.csv"]),
        # mistakes: exit status 2
        ("figure not svg", "ivan", ["status", "--figure", "FILE/status.png"]),
        ("export unknown", "ivan", ["export", "arms", "--out", "FILE/arms.csv"]),
        ("export to txt", "ivan", ["export", "outcomes", "--out", "FILE/o.txt"]),
        ("export to nowhere", "ivan", ["export", "outcomes", "--out", "FILE/no/o.csv"]),
        ("participants unblinded", "ivan",
         ["export", "participants", "--out", "FILE/pu.csv", "--unblinded"]),
        # refusals: exit status 1
        ("coordinator exports", "cora", ["export", "outcomes", "--out", "FILE/cora.csv"]),
        ("unblinded before lock", "ivan",
         ["export", "outcomes", "--out", "FILE/early.csv", "--unblinded"]),
        ("coordinator locks", "cora", ["lock", "--yes"]),
        # the lock
        ("lock", "iris", ["lock", "--yes", "--checkpoint", "FILE/lock.checkpoint.json"]),
        ("lock again", "ivan", ["lock", "--yes"]),
        ("consent after lock", "cora",
         ["consent", "TWH-006", "--date", today, "--form-version", "2.0"]),
        ("diary after lock", "cora",
         ["diary", "record", "TWH-001", "--date", today, "--headache", "no"]),
        ("unblinded by a non-custodian", "iris",
         ["export", "outcomes", "--out", "FILE/iris.csv", "--unblinded"]),
        ("unblinded", "ivan", ["export", "outcomes", "--out", "FILE/unblinded.csv",
                               "--unblinded"]),
        ("status after lock", "mona", ["status"]),
        ("audit verify", None, ["audit", "verify"]),
    ]


MISTAKES = {"figure not svg", "export unknown", "export to txt", "export to nowhere",
            "participants unblinded"}
REFUSALS = {"coordinator exports", "unblinded before lock", "coordinator locks", "lock again",
            "consent after lock", "diary after lock", "unblinded by a non-custodian"}
AUDITED_REFUSALS = {"unblinded before lock": "export.refused",
                    "unblinded by a non-custodian": "export.refused"}


@dataclass(frozen=True)
class Shown:
    exit_code: int
    stdout: str
    stderr: str
    new_events: tuple[str, ...]


@dataclass
class Flow:
    folder: Path
    url: str
    printed: dict[str, Shown] = field(default_factory=dict)

    def __getitem__(self, step: str) -> Shown:
        return self.printed[step]

    def out(self, step: str) -> str:
        shown = self.printed[step]
        assert shown.exit_code == 0, (step, shown.stderr)
        assert shown.stdout.startswith(TRAINING), shown.stdout
        return shown.stdout[len(TRAINING):]

    def csv(self, name: str) -> list[dict[str, str]]:
        with (self.folder / name).open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    folder = tmp_path_factory.mktemp("export-cli")
    with build_export_world("sqlite", folder, training=True) as world:
        world.engine.dispose()
        at = world.at + timedelta(hours=1)
        played = Flow(folder, world.url)
        for name, who, args in flow_steps(at.date().isoformat()):
            before = len(audit_actions(world.url))
            args = [a.replace("FILE/", f"{folder}/") for a in args]
            code, out, err = invoke(world.url, who, args, at.isoformat())
            played.printed[name] = Shown(code, out, err,
                                         tuple(audit_actions(world.url)[before:]))
        yield played


def test_every_step_ended_as_intended(flow: Flow) -> None:
    for name, _who, _args in flow_steps("-"):
        expected = 2 if name in MISTAKES else 1 if name in REFUSALS else 0
        assert flow[name].exit_code == expected, (name, flow[name].stderr)


def test_a_mistake_or_a_refusal_is_one_line_and_writes_nothing(flow: Flow) -> None:
    for name in MISTAKES | REFUSALS:
        shown = flow[name]
        assert shown.stderr.count("\n") == 1 and "Traceback" not in shown.stderr, name
        assert shown.stderr.startswith("Error: " if name in MISTAKES else "Refused: "), name
        refusal = [e for e in shown.new_events if e.endswith(".refused")]  # every refusal
        assert refusal == ([] if name in MISTAKES else [refusal[0]]), (name, shown.new_events)
        assert set(shown.new_events) <= {"login", *refusal}, name
    for name, action in AUDITED_REFUSALS.items():
        assert action in flow[name].new_events, name
    for never in ("status.png", "arms.csv", "o.txt", "no", "cora.csv", "early.csv", "iris.csv",
                  "early.manifest.json", "iris.dictionary.csv"):
        assert not (flow.folder / never).exists(), never
    assert not [p for p in flow.folder.iterdir() if p.name.endswith(".partial")]


def test_refusals_say_why(flow: Flow) -> None:
    expected = {
        "figure not svg": "give a file name ending in .svg",
        "export unknown": "unknown export 'arms': choose outcomes, diary or participants",
        "export to txt": "give a file name ending in .csv",
        "coordinator exports": "cora (coordinator) lacks the permission to export data",
        "unblinded before lock": "the unblinded export is refused: the database is not "
                                 "locked yet",
        "coordinator locks": "cora (coordinator) lacks the permission to lock the database",
        "lock again": "KETHEAD is already locked: since ",
        "consent after lock": "clinical data can no longer change",
        "diary after lock": "by iris: clinical data can no longer change",
        "unblinded by a non-custodian": "iris is not an unblinding custodian",
    }
    for name, message in expected.items():
        assert message in flow[name].stderr, name


def test_status_shows_enrolment_completeness_overdue_and_the_consort_flow(flow: Flow) -> None:
    text = flow.out("status")
    assert text.startswith("KETHEAD status on ")
    for words in ("Enrolment per site (randomized against target)",
                  "  TWH           7        6         6          5         1     28   18%",
                  "Diary completeness per window", "Overdue diary (3)",
                  "AT RISK: the window can no longer be prorated",
                  "(not eligible by criterion: I1_age 1, E01_pregnancy 1)",
                  "  Analysed (ITT)                 6",
                  "    primary outcome missing      4",
                  "  Not infused                    2"):
        assert words in text, words
    assert "sealed" not in text and "sealed" in flow.out("status admin")
    assert "database LOCKED on " in flow.out("status after lock")
    for step in ("status", "status admin", "status after lock"):
        assert not arm_words(flow[step].stdout), step


def test_status_as_json_is_one_document(flow: Flow) -> None:
    doc = json.loads(flow["status json"].stdout)
    assert doc["training"] is True and doc["envelopes"] is None
    assert doc["consort"]["ineligible_by_criterion"] == {"I1_age": 1, "E01_pregnancy": 1}
    assert [s["code"] for s in doc["sites"]] == ["TWH", "SHS"]
    assert doc["enrolment_curve"][0]["total"] == 6
    assert [o["participant_id"] for o in doc["overdue"]] == ["SHS-001", "TWH-002", "TWH-003"]


def test_status_draws_its_figure(flow: Flow) -> None:
    assert flow.out("status figure").rstrip().endswith(f"Figure: {flow.folder}/status.svg")
    root = ET.parse(flow.folder / "status.svg").getroot()
    shown = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert shown[0] == "TRAINING - not for clinical use"
    assert "Randomized (n=6)" in shown
    assert oct((flow.folder / "status.svg").stat().st_mode & 0o777) != oct(0o600)


def test_the_blinded_exports_have_their_columns_dictionary_and_manifest(flow: Flow) -> None:
    text = flow.out("export outcomes")
    assert text.startswith("BLINDED outcomes export: 24 rows, 6 participants")
    outcomes = flow.csv("outcomes.csv")
    assert tuple(outcomes[0]) == OUTCOME_COLUMNS
    assert {r["participant_id"] for r in outcomes} == set(RANDOMIZED)
    manifest = json.loads((flow.folder / "outcomes.manifest.json").read_text())
    assert manifest["training"] is True and manifest["TRAINING"].startswith("TRAINING")
    assert f"outcomes.csv  sha256 {manifest['files'][0]['sha256']}" in text
    doc = json.loads(flow["export diary json"].stdout)
    assert (doc["training"], doc["export"], doc["blinded"]) == (True, "diary", True)
    assert [Path(f["path"]).name for f in doc["files"]] == [
        "diary.csv", "diary.dictionary.csv", "diary.manifest.json"]
    assert tuple(flow.csv("diary.csv")[0]) == DIARY_COLUMNS
    assert flow["export outcomes"].new_events == ("login", "export.outcomes",
                                                  "audit.checkpoint")
    for name in ("outcomes.csv", "diary.csv"):
        assert not arm_words((flow.folder / name).read_text()), name


def test_the_participants_export_has_each_screened_person_blinded(flow: Flow) -> None:
    text = flow.out("export participants")
    assert text.startswith("BLINDED participants export: 8 rows, 8 participants")
    rows = flow.csv("participants.csv")
    assert len(rows) == 8 and {"age", "sex", "weight_kg", "headache_type", "site",
                               "screened_on", "randomized_on", "infusion_on"} <= set(rows[0])
    assert (flow.folder / "participants.dictionary.csv").is_file()
    assert (flow.folder / "participants.manifest.json").is_file()
    assert not arm_words((flow.folder / "participants.csv").read_text())
    assert flow["export participants"].new_events == ("login", "export.participants",
                                                      "audit.checkpoint")
    assert flow["participants unblinded"].stderr.startswith(
        "Error: the participants export is always blinded")
    assert not (flow.folder / "pu.csv").exists()


def test_the_lock_is_audited_and_the_custodian_then_exports_the_arm(flow: Flow) -> None:
    assert flow.out("lock").startswith("Locked KETHEAD on ")
    assert flow["lock"].new_events == ("login", "trial.lock", "audit.checkpoint")
    assert "UNBLINDED (with arm) outcomes export" in flow.out("unblinded")
    rows = flow.csv("unblinded.csv")
    assert list(rows[0])[-1] == "arm"
    assert {(r["participant_id"], r["arm"]) for r in rows} == {
        (pid, ARMS[pid]) for pid in RANDOMIZED}
    events = flow["unblinded"].new_events
    assert events[0] == "login" and events[-2:] == ("export.outcomes", "audit.checkpoint")
    assert events[1:-2] == ("envelope.open",) * len(RANDOMIZED)
    assert flow.out("audit verify").splitlines()[-1].startswith("OK:")


def test_every_export_and_the_lock_leave_a_signed_checkpoint_beside_them(flow: Flow) -> None:
    """Each export names its checkpoint (NAME.checkpoint.json) and so does the lock; each
    holds against the trail, signed by whoever exported or locked, and says no arm."""
    assert flow.out("export outcomes").rstrip().endswith(
        f"Signed checkpoint of the audit trail: {flow.folder}/outcomes.checkpoint.json "
        "(keep it outside the database)")
    assert json.loads(flow["export diary json"].stdout)["checkpoint"] == str(
        flow.folder / "diary.checkpoint.json")
    assert f"{flow.folder}/lock.checkpoint.json" in flow.out("lock")
    files = {"outcomes": "ivan", "diary": "ivan", "participants": "ivan", "lock": "iris",
             "unblinded": "ivan"}
    args = ["audit", "verify"]
    for name, signer in files.items():
        doc = json.loads((flow.folder / f"{name}.checkpoint.json").read_text())
        assert (doc["signer"], doc["trial"]) == (signer, "KETHEAD")
        assert not arm_words(json.dumps(doc)), name
        args += ["--checkpoint", str(flow.folder / f"{name}.checkpoint.json")]
    for name in ("cora", "early", "iris"):  # refused exports leave none
        assert not (flow.folder / f"{name}.checkpoint.json").exists()
    code, out, err = invoke(flow.url, None, args, "2030-01-01T00:00:00Z")
    assert code == 0, err
    assert out.count(": holds (") == len(files)


def python_m_trialkit(flow: Flow, who: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_USER": who}
    return subprocess.run([sys.executable, "-m", "trialkit", "--db", flow.url, *args],
                          env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_as_real_commands_a_refusal_is_one_line_and_json_stays_json(flow: Flow) -> None:
    refused = python_m_trialkit(flow, "iris", ["export", "diary", "--out",
                                               str(flow.folder / "x.csv"), "--unblinded"])
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == ("Refused: the unblinded export is refused: iris is not an "
                              "unblinding custodian\n")
    done = python_m_trialkit(flow, "ivan", ["--json", "export", "diary", "--out",
                                            str(flow.folder / "again.csv")])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] > 0 and done.stderr == ""
