"""The diary, infusion and outcome commands as people type them: ``python -m trialkit`` in
a subprocess, on a SQLite training trial whose clock each step sets (TRIALKIT_CLOCK), so
four weeks of baseline diary can pass between screening and randomization. One flow is
played once per module; each test reads what it printed.

Mistakes give exit status 2 and refusals 1, with the message on stderr, never a traceback,
and nothing a coordinator is shown names an arm."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest

from tests.builders import baseline_days, eligible_answers
from tests.conftest import ADMIN, KETHEAD, PASSWORD
from tests.enrolment import added, approve, enrolment_code, read_out, remember_key

ARM_WORDS = re.compile(r"\b(?:ket|pla|ketamine|placebo|saline)\b", re.IGNORECASE)
TRAINING = "TRAINING — not for clinical use\n"
TIMEOUT_S = 120
SCREENED = date(2026, 3, 2)  # the baseline diary runs 2 to 29 March; randomized 30 March
HEADER = "participant_id,date,headache,severity,duration_hours,acute_medication\n"
BAD_FILE = HEADER + "".join([
    "TWH-001,2026-03-29,yes,moderate,6,no\n",  # line 2: fine
    "TWH-009,2026-03-29,no,,,no\n",  # line 3: nobody
    "TWH-001,2026-03-28,yes,moderate,25,no\n",  # line 4: 25 hours
    "TWH-001,2026-03-27,no,severe,,no\n",  # line 5: no headache but severe
    "TWH-001,2026-03-29,no,,,no\n",  # line 6: the date of line 2 again
    "TWH-001,2026-04-30,no,,,no\n",  # line 7: in the future
])


def answers() -> list[str]:
    return [a for k, v in eligible_answers().items() for a in ("--answer", f"{k}={v}")]


def day(text: str) -> str:
    return f"{text}T09:00:00Z"


# (name of the step, when, who acts, the command line after `trialkit --db FILE`)
FLOW: list[tuple[str, str, str | None, list[str]]] = [
    ("init", "2026-03-02", None, ["init", str(KETHEAD), "--admin", ADMIN, "--training"]),
    ("add iris", "2026-03-02", ADMIN, ["user", "add", "iris", "--role", "investigator"]),
    ("add phil", "2026-03-02", ADMIN, ["user", "add", "phil", "--role", "pharmacist"]),
    ("add pia", "2026-03-02", ADMIN, ["user", "add", "pia", "--role", "pharmacist"]),
    ("approve phil", "2026-03-02", "iris", approve("phil")),
    ("approve pia", "2026-03-02", "phil", approve("pia")),
    ("add cora", "2026-03-02", ADMIN,
     ["user", "add", "cora", "--role", "coordinator", "--site", "TWH"]),
    ("seal", "2026-03-02", ADMIN, ["seal", "--per-stratum", "1"]),
    ("screen", "2026-03-02", "cora",
     ["screen", "--site", "TWH", "--age", "40", "--sex", "F", "--weight-kg", "70",
      "--stratum-factor", "headache_type=CM", *answers()]),
    ("record before consent", "2026-03-02", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-03-02", "--headache", "no"]),
    ("consent", "2026-03-02", "cora",
     ["consent", "TWH-001", "--date", "2026-03-02", "--form-version", "2.0"]),
    ("randomize too early", "2026-03-20", "cora", ["randomize", "TWH-001"]),
    ("import a bad file", "2026-03-30", "cora", ["diary", "import", "{bad}"]),
    ("import the baseline", "2026-03-30", "cora", ["diary", "import", "{baseline}"]),
    ("import it again", "2026-03-30", "cora", ["diary", "import", "{baseline}"]),
    ("re-enter a day", "2026-03-30", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-03-29", "--headache", "yes",
      "--severity", "severe", "--hours", "9"]),
    ("correct a day", "2026-03-30", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-03-29", "--headache", "yes",
      "--severity", "severe", "--hours", "9", "--acute-medication", "yes",
      "--reason", "paper diary re-read"]),
    ("correct it the same way", "2026-03-30", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-03-29", "--headache", "yes",
      "--severity", "severe", "--hours", "9", "--acute-medication", "yes",
      "--reason", "again"]),
    ("history", "2026-03-30", "cora", ["diary", "history", "TWH-001", "--date", "2026-03-29"]),
    ("history as json", "2026-03-30", "cora", ["--json", "diary", "history", "TWH-001"]),
    ("randomize", "2026-03-30", "cora", ["randomize", "TWH-001"]),
    ("infuse before dispensing", "2026-03-31", "cora",
     ["infuse", "TWH-001", "--date", "2026-03-31"]),
    ("dispense", "2026-03-31", "phil",
     ["dispense", "TWH-001", "--lot", "bolus=KT2403-17", "--lot", "infusion=NS2401-02",
      "--checked-by", "pia"]),
    ("infuse tomorrow", "2026-03-31", "cora", ["infuse", "TWH-001", "--date", "2026-04-01"]),
    # dispensed at 09:00 UTC, 05:00 in Toronto (EDT, UTC-4); the infusion time is the site's
    ("infuse at a bad time", "2026-03-31", "cora",
     ["infuse", "TWH-001", "--date", "2026-03-31", "--time", "5am"]),
    ("infuse before the preparation", "2026-03-31", "cora",
     ["infuse", "TWH-001", "--date", "2026-03-31", "--time", "04:59"]),
    ("infuse later today", "2026-03-31", "cora",
     ["infuse", "TWH-001", "--date", "2026-03-31", "--time", "05:01"]),
    ("infuse", "2026-03-31", "cora", ["infuse", "TWH-001", "--date", "2026-03-31"]),
    ("record day 1", "2026-04-02", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-04-01", "--headache", "yes",
      "--severity", "mild", "--hours", "2.5", "--acute-medication", "yes"]),
    ("record 30 hours", "2026-04-02", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-04-02", "--headache", "yes",
      "--severity", "mild", "--hours", "30"]),
    ("record an unknown severity", "2026-04-02", "cora",
     ["diary", "record", "TWH-001", "--date", "2026-04-02", "--headache", "yes",
      "--severity", "terrible", "--hours", "3"]),
    ("record a bad date", "2026-04-02", "cora",
     ["diary", "record", "TWH-001", "--date", "2 April", "--headache", "no"]),
    ("record for nobody", "2026-04-02", "cora",
     ["diary", "record", "TWH-404", "--date", "2026-04-01", "--headache", "no"]),
    ("import a missing file", "2026-04-02", "cora", ["diary", "import", "nowhere.csv"]),
    ("outcomes", "2026-04-02", "cora", ["outcomes", "TWH-001"]),
    ("outcomes as json", "2026-04-02", "cora", ["--json", "outcomes", "TWH-001"]),
    ("verify", "2026-04-02", None, ["audit", "verify"]),
]


# Steps that change nothing another step reads (refusals, reads). Neighbours in this set
# run at the same time, which saves a good part of the flow's time. "randomize too early"
# runs alone: it is on an earlier training day, and a refusal is audited, so a later day's
# refusal recorded first would move the training clock past it.
AT_ONCE = {
    "import a bad file", "import it again", "re-enter a day",
    "correct it the same way", "history", "history as json",
    "infuse at a bad time", "infuse before the preparation", "infuse later today",
    "record 30 hours", "record an unknown severity", "record a bad date", "record for nobody",
    "import a missing file", "outcomes", "outcomes as json", "verify",
}


@dataclass
class Flow:
    db: Path
    printed: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def __getitem__(self, step: str) -> subprocess.CompletedProcess[str]:
        return self.printed[step]

    def out(self, step: str) -> str:
        """What the step printed on stdout, without the training banner."""
        result = self.printed[step]
        assert result.returncode == 0, (step, result.stderr)
        assert result.stdout.startswith(TRAINING), result.stdout
        return result.stdout[len(TRAINING):]

    def json(self, step: str) -> object:
        result = self.printed[step]
        assert result.returncode == 0, (step, result.stderr)
        return json.loads(result.stdout)


def trialkit(db: Path, at: str, who: str | None, args: list[str],
             code: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIALKIT_")}
    env |= {"TRIALKIT_PASSWORD": PASSWORD, "TRIALKIT_NEW_PASSWORD": PASSWORD,
            "TRIALKIT_CHECKER_PASSWORD": PASSWORD,
            "TRIALKIT_CLOCK": day(at)}
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
        activated = trialkit(db, at, None, ["user", "activate", name], code)
        assert activated.returncode == 0, activated.stderr
        remember_key(db, name, activated.stdout)
    return done


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    folder = tmp_path_factory.mktemp("diary-cli")
    files = {"baseline": folder / "baseline.csv", "bad": folder / "bad.csv"}
    files["baseline"].write_text(HEADER + "".join(
        f"TWH-001,{d.day},{'yes' if d.headache else 'no'},{d.severity},{d.duration_hours:g},"
        f"{'yes' if d.acute_medication else 'no'}\n" for d in baseline_days(SCREENED)),
        encoding="utf-8")
    files["bad"].write_text(BAD_FILE, encoding="utf-8")
    played = Flow(folder / "trial.db")
    together: dict[str, Future[subprocess.CompletedProcess[str]]] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for step, at, who, args in FLOW:
            args = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
            if step not in AT_ONCE:
                played.printed |= {name: f.result() for name, f in together.items()}
                together = {}
                played.printed[step] = trialkit(played.db, at, who, args)
            else:
                together[step] = pool.submit(trialkit, played.db, at, who, args)
        played.printed |= {name: f.result() for name, f in together.items()}
    yield played


def test_the_trial_is_set_up_and_the_participant_consented(flow: Flow) -> None:
    for step in ("init", "add iris", "add phil", "add pia", "approve phil", "approve pia",
                 "add cora", "seal", "screen", "consent"):
        assert flow[step].returncode == 0, (step, flow[step].stderr)


def test_no_diary_day_is_taken_before_consent(flow: Flow) -> None:
    result = flow["record before consent"]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "Refused: TWH-001 has not consented: the diary starts at consent\n"


def test_randomizing_before_the_baseline_diary_is_refused_saying_what_is_short(
    flow: Flow
) -> None:
    result = flow["randomize too early"]
    assert result.returncode == 1
    assert result.stderr == (
        "Refused: TWH-001 cannot be randomized yet: the baseline diary (2026-02-20 to "
        "2026-03-19) has 0 of 28 days recorded (at least 24 needed; the diary starts at "
        "consent (2026-03-02), so 2026-03-26 is the earliest day to randomize) and 0 headache "
        "days (at least 15 needed)\n")


def test_a_bad_file_is_refused_whole_with_every_problem_and_its_line(flow: Flow) -> None:
    result = flow["import a bad file"]
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {flow.db.parent / 'bad.csv'}: 5 problems, nothing was imported:\n"
        "  line 3: unknown participant 'TWH-009'\n"
        "  line 4: duration 25 h is outside 0-24 h\n"
        "  line 5: headache=no with severity 'severe': a day without headache has severity "
        "none\n"
        "  line 6: TWH-001 2026-03-29 is also on line 2 (a date appears once)\n"
        "  line 7: date 2026-04-30 is in the future (today is 2026-03-30)\n")


def test_the_baseline_file_is_imported_once(flow: Flow) -> None:
    assert flow.out("import the baseline").startswith(
        "Imported 28 diary days of 1 participants from ")
    again = flow["import it again"]
    assert again.returncode == 2
    assert again.stderr.count("already has a diary day") == 28


def test_a_recorded_day_is_corrected_only_with_a_reason_and_keeps_its_history(
    flow: Flow
) -> None:
    re_entered = flow["re-enter a day"]
    assert re_entered.returncode == 2
    assert re_entered.stderr == (
        "Error: TWH-001 already has a diary day for 2026-03-29 (version 1): a correction "
        "needs a reason: give --reason TEXT\n")
    assert flow.out("correct a day") == (
        "TWH-001 2026-03-29: corrected (version 2; a headache day; in no outcome window)\n")
    same = flow["correct it the same way"]
    assert same.returncode == 1 and "no change" in same.stderr
    lines = flow.out("history").splitlines()
    # The builder's last baseline day: a 2-hour moderate headache, untreated (no headache day)
    assert lines[1].split()[:8] == ["2026-03-29", "1", "yes", "moderate", "2", "no", "no",
                                    "-"]
    assert lines[2].split()[:9] == ["2026-03-29", "2", "*", "yes", "severe", "9", "yes",
                                    "yes", "-"]
    assert lines[2].endswith("paper diary re-read")
    history = flow.json("history as json")
    assert isinstance(history, list) and len(history) == 29
    corrected = [v for v in history if v["date"] == "2026-03-29"]
    assert [(v["version"], v["current"]) for v in corrected] == [(1, False), (2, True)]
    assert corrected[0]["reason"].startswith("baseline.csv [batch ")  # where it came from
    assert corrected[1]["reason"] == "paper diary re-read"


def test_the_infusion_waits_for_the_pharmacy_and_refuses_a_future_date(flow: Flow) -> None:
    assert flow["randomize"].returncode == 0, flow["randomize"].stderr
    before = flow["infuse before dispensing"]
    assert (before.returncode, before.stderr) == (
        1, "Refused: TWH-001 has no dispensed infusion yet: the pharmacy records it first\n")
    assert flow["dispense"].returncode == 0, flow["dispense"].stderr
    future = flow["infuse tomorrow"]
    assert (future.returncode, future.stderr) == (
        2, "Error: infusion date 2026-04-01 is in the future (today is 2026-03-31)\n")
    bad = flow["infuse at a bad time"]
    assert (bad.returncode, bad.stderr) == (
        2, "Error: infusion time '5am': use HH:MM on a 24-hour clock, e.g. 14:30\n")
    early = flow["infuse before the preparation"]
    assert (early.returncode, early.stderr) == (
        2, "Error: TWH-001: the infusion (2026-03-31 04:59 EDT) is before the pharmacy prepared "
        "it (2026-03-31 05:00 EDT)\n")
    later = flow["infuse later today"]  # 05:01 EDT is 09:01 UTC: after the clock's 09:00
    assert later.returncode == 2 and "is in the future" in later.stderr
    assert flow.out("infuse") == "TWH-001: infused on 2026-03-31 (study day 0)\n"
    assert flow.out("record day 1") == (
        "TWH-001 2026-04-01: recorded (version 1; a headache day; window D1-28)\n")


@pytest.mark.parametrize(("step", "message"), [
    ("record 30 hours", "Error: TWH-001 2026-04-02: duration 30 h is outside 0-24 h\n"),
    ("record an unknown severity", "Error: TWH-001 2026-04-02: severity 'terrible' is not one "
                                   "of none, mild, moderate, severe\n"),
    ("record a bad date", "Error: diary date '2 April' is not a date like 2026-03-01\n"),
    ("record for nobody", "Error: no participant 'TWH-404'\n"),
    ("import a missing file", "Error: cannot read nowhere.csv: No such file or directory\n"),
])
def test_bad_input_exits_with_status_2_in_one_line(flow: Flow, step: str, message: str) -> None:
    result = flow[step]
    assert (result.returncode, result.stderr, result.stdout) == (2, message, "")


def test_outcomes_show_each_window_as_the_protocol_derives_it(flow: Flow) -> None:
    doc = flow.json("outcomes as json")
    assert isinstance(doc, dict)
    assert (doc["status"], doc["randomized_on"], doc["infusion_on"]) == (
        "infused", "2026-03-30", "2026-03-31")
    base, primary, *later = doc["windows"]
    # baseline: 28 days, 20 headache days from the builder + the corrected 29 March
    assert (base["window"], base["days_recorded"], base["headache_days"],
            base["headache_days_28"]) == ("BASELINE", 28, 21, 21.0)
    assert (primary["window"], primary["primary"], primary["days_expected"],
            primary["days_recorded"], primary["headache_days"]) == ("D1-28", True, 1, 1, 1)
    assert primary["headache_days_28"] is None  # 1 day: too few to prorate
    assert [w["days_expected"] for w in later] == [0, 0]
    text = flow.out("outcomes")
    assert text.splitlines()[0] == "TWH-001 (infused): randomized 2026-03-30, infused 2026-03-31"
    assert "BASELINE  2026-03-02 2026-03-29       28       28       21" in text


def test_the_audit_trail_still_verifies(flow: Flow) -> None:
    assert "OK:" in flow.out("verify")


def test_no_coordinator_output_names_an_arm_nor_shows_a_traceback(flow: Flow) -> None:
    for step, at, who, _args in FLOW:
        result = flow[step]
        assert "Traceback" not in result.stdout + result.stderr, step
        if who == "cora":
            assert not ARM_WORDS.search(result.stdout + result.stderr), (step, at)
