"""The enrolment commands as people type them: ``python -m trialkit`` in a subprocess, on a
SQLite file. One flow is played once per module (every command costs a Python start-up
and a password check); each test reads what the flow printed.

The flow: the admin creates a training trial (so that ``TRIALKIT_CLOCK`` can say what day
it is), adds a pharmacist and a coordinator and seals one envelope per stratum; the
coordinator screens and records consent, four weeks of baseline diary are imported, and
she randomizes. Mistakes and refusals along the way must give exit status 2 (bad input)
or 1 (refused), one line on stderr and never a traceback, and no output may name an arm."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.builders import PROTOCOL, baseline_days, eligible_answers
from tests.conftest import ADMIN, KETHEAD, PASSWORD
from tests.enrolment import added, approve, enrolment_code, read_out, remember_key
from trialkit.domain.codes import label_code

ARM_WORDS = re.compile(r"\b(?:ket|pla|ketamine|placebo|saline)\b", re.IGNORECASE)
TRAINING = "TRAINING — not for clinical use"
TIMEOUT_S = 120
SCREENED_ON = date(2026, 3, 2)
# Randomization needs the baseline window (the days before it) in the diary, and diary days
# cannot come before screening: four weeks pass between screening and randomization.
RANDOMIZED_ON = SCREENED_ON + timedelta(days=-PROTOCOL.diary.baseline_window.start)
DIARY = "diary.csv"


def answers() -> list[str]:
    return [a for k, v in eligible_answers().items() for a in ("--answer", f"{k}={v}")]


def screening(site: str = "TWH", age: str = "40") -> list[str]:
    return ["screen", "--site", site, "--age", age, "--sex", "F", "--weight-kg", "70",
            "--stratum-factor", "headache_type=CM", *answers()]


def write_diary(path: Path, pid: str) -> None:
    """The participant's baseline diary as the site would export it from their forms."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["participant_id", "date", "headache", "severity", "duration_hours",
                      "acute_medication"])
        for d in baseline_days(SCREENED_ON):
            out.writerow([pid, d.day.isoformat(), "yes" if d.headache else "no", d.severity,
                          d.duration_hours, "yes" if d.acute_medication else "no"])


# (name of the step, who acts, on which day, the command line after `trialkit --db FILE`)
FLOW: list[tuple[str, str | None, date, list[str]]] = [
    ("init", None, SCREENED_ON, ["init", str(KETHEAD), "--admin", ADMIN, "--training"]),
    ("add investigator", ADMIN, SCREENED_ON, ["user", "add", "iris", "--role", "investigator"]),
    ("add pharmacist", ADMIN, SCREENED_ON, ["user", "add", "phil", "--role", "pharmacist"]),
    ("approve pharmacist", "iris", SCREENED_ON, approve("phil")),
    ("add coordinator", ADMIN, SCREENED_ON,
     ["user", "add", "cora", "--role", "coordinator", "--site", "TWH"]),
    ("seal", ADMIN, SCREENED_ON, ["seal", "--per-stratum", "1"]),
    ("screen", "cora", SCREENED_ON, ["--json", *screening()]),
    ("consent", "cora", SCREENED_ON,
     ["consent", "TWH-001", "--date", SCREENED_ON.isoformat(), "--form-version", "2.0"]),
    ("import diary", "cora", RANDOMIZED_ON, ["diary", "import", DIARY]),
    ("randomize", "cora", RANDOMIZED_ON, ["randomize", "TWH-001"]),
    ("randomize again", "cora", RANDOMIZED_ON, ["randomize", "TWH-001", "--json"]),
    ("list status", ADMIN, RANDOMIZED_ON, ["list", "status"]),
    # mistakes: exit status 2
    ("screen aged 200", "cora", RANDOMIZED_ON, screening(age="200")),
    ("screen with a bad option", "cora", RANDOMIZED_ON, screening(age="forty")),
    ("randomize without an id", "cora", RANDOMIZED_ON, ["randomize"]),
    ("extend with other block sizes", ADMIN, RANDOMIZED_ON,
     ["seal", "--extend", "TWH-CM", "--count", "2", "--block-sizes", "8,10"]),
    # refusals: exit status 1
    ("screen at another site", "cora", RANDOMIZED_ON, screening(site="SHS")),
    ("seal again", ADMIN, RANDOMIZED_ON, ["seal", "--per-stratum", "1"]),
]


@dataclass
class Flow:
    db: Path
    printed: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def __getitem__(self, step: str) -> subprocess.CompletedProcess[str]:
        return self.printed[step]

    def shown(self, step: str) -> str:
        """What a step printed on stdout, after the training banner. (Sealing's progress
        display leaves a blank line first.)"""
        out = self.printed[step].stdout.lstrip("\n")
        assert out.startswith(f"{TRAINING}\n"), out
        return out.removeprefix(f"{TRAINING}\n")


def trialkit(db: Path, who: str | None, on: date, args: list[str],
             code: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m trialkit`` as a user runs it, with no TRIALKIT_* leaking in from here."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_NEW_PASSWORD": PASSWORD,
            "TRIALKIT_CLOCK": f"{on.isoformat()}T09:00:00Z"}
    if who:
        env["TRIALKIT_USER"] = who
    if code:
        env["TRIALKIT_ENROLMENT_CODE"] = code
    done = subprocess.run([sys.executable, "-m", "trialkit", "--db", str(db),
                           *read_out(db, args)],
                          cwd=db.parent, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    if added(args) and done.returncode == 0:  # the new user activates their account
        name, code = enrolment_code(done.stdout)
        activated = trialkit(db, None, on, ["user", "activate", name], code)
        assert activated.returncode == 0, activated.stderr
        remember_key(db, name, activated.stdout)
    return done


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    played = Flow(tmp_path_factory.mktemp("cli") / "trial.db")
    write_diary(played.db.parent / DIARY, "TWH-001")
    for step, who, on, args in FLOW:
        played.printed[step] = trialkit(played.db, who, on, args)
    yield played


def test_the_admin_sets_up_and_seals_the_trial(flow: Flow) -> None:
    for step in ("init", "add investigator", "add pharmacist", "approve pharmacist",
                 "add coordinator", "seal"):
        assert flow[step].returncode == 0, (step, flow[step].stderr)
    sealed = flow.shown("seal")
    assert "Sealed 4 envelopes in 4 strata:" in sealed
    for stratum in ("TWH-CM", "TWH-CDH", "SHS-CM", "SHS-CDH"):
        assert re.search(rf"^\s+{stratum}\s+1$", sealed, re.MULTILINE), sealed


def test_screening_prints_the_participant_id_and_eligibility_as_json(flow: Flow) -> None:
    assert flow["screen"].returncode == 0, flow["screen"].stderr
    assert json.loads(flow["screen"].stdout) == {
        "training": True, "participant_id": "TWH-001", "site": "TWH", "stratum": "TWH-CM",
        "eligible": True, "failed_criteria": []}


def test_consent_is_recorded_and_the_baseline_diary_imported(flow: Flow) -> None:
    assert flow["consent"].returncode == 0, flow["consent"].stderr
    assert flow.shown("consent") == "TWH-001: consent of 2026-03-02 recorded (form 2.0)\n"
    assert flow["import diary"].returncode == 0, flow["import diary"].stderr
    assert flow.shown("import diary").startswith(
        f"Imported 28 diary days of 1 participants from {DIARY}")


def test_randomizing_prints_the_number_and_label_code_but_no_arm(flow: Flow) -> None:
    done = flow["randomize"]
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(r"TWH-001: randomization number (R\d{4}), label code (\S+)\n",
                         flow.shown("randomize"))
    assert found, done.stdout
    assert "randomization number" in done.stdout and "label code" in done.stdout
    # letters and digits only, read aloud and typed: 8 random characters and a check one
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]",
                        found[2]), found[2]
    assert label_code(found[2].replace("-", "")[:8]) == found[2]
    again = json.loads(flow["randomize again"].stdout)
    assert again == {"training": True, "participant_id": "TWH-001",
                     "randomization_number": found[1], "label_code": found[2],
                     "already_randomized": True}


def test_no_command_names_an_arm(flow: Flow) -> None:
    for step, result in flow.printed.items():
        assert not ARM_WORDS.search(result.stdout), (step, result.stdout)
        assert not ARM_WORDS.search(result.stderr), (step, result.stderr)


def test_the_admin_sees_the_exhausted_stratum(flow: Flow) -> None:
    status = flow["list status"]
    assert status.returncode == 0, status.stderr
    lines = flow.shown("list status").splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows == {"TWH-CM": ["1", "1", "0", "EXHAUSTED"], "TWH-CDH": ["1", "0", "1"],
                    "SHS-CM": ["1", "0", "1"], "SHS-CDH": ["1", "0", "1"]}


@pytest.mark.parametrize(("step", "message"), [
    ("screen aged 200", "Error: age 200 is not plausible (0-120)\n"),
    ("screen with a bad option", "Invalid value for '--age'"),
    ("randomize without an id", "Missing argument 'pid'"),
    # the protocol says blocks of 4 and 6: the design is binding
    ("extend with other block sizes",
     "Error: block sizes 8, 10 differ from the protocol's (4, 6)"),
])
def test_bad_input_exits_with_status_2(flow: Flow, step: str, message: str) -> None:
    result = flow[step]
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(("step", "message"), [
    ("screen at another site", "Refused: cora works at TWH, not at SHS\n"),
    ("seal again", "Refused: the lists are already sealed: extend a stratum instead; to extend "
                   "it: trialkit seal --extend STRATUM\n"),
])
def test_a_refusal_exits_with_status_1_in_one_line(flow: Flow, step: str, message: str) -> None:
    result = flow[step]
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr == message
    assert result.stdout.strip() == ""  # (sealing's progress display leaves a blank line)


def test_no_command_ever_shows_a_traceback(flow: Flow) -> None:
    assert set(flow.printed) == {step for step, _, _, _ in FLOW}
    for step, result in flow.printed.items():
        assert "Traceback" not in result.stderr + result.stdout, step
