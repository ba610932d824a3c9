"""Proof that blinded roles cannot learn an arm from trialkit.

The same enrolment is played twice through the real command line (in process, so the
list generator can be forced): once with every stratum's list reading KET, PLA and once
reading PLA, KET, so the same participants get opposite arms. Then:

- the envelopes of both arms have ciphertexts of the same length (the arms are read with
  the pharmacist's key, here in the test only);
- nothing in either database names an arm in clear, outside the protocol text itself: not
  a table, not a column, not a dump;
- everything a blinded person is shown (command output, audit log, participant lists,
  envelope counts) is identical in both runs once the random codes (label codes, list
  ids, hashes, key fingerprints) are replaced by placeholders, and it is exactly that
  replacement that makes them equal."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import re
import secrets
import sqlite3
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from sqlalchemy import Engine, func, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import col, select
from typer.testing import CliRunner

from tests.builders import PROTOCOL, SeededRandom, baseline_days, eligible_answers
from tests.conftest import (
    ADMIN,
    BACKENDS,
    KETHEAD,
    PASSWORD,
    SteppingClock,
    add_user,
    empty_database,
)
from tests.enrolment import added, approve, enrolment_code, read_out, remember_key
from trialkit.cli.app import app
from trialkit.cli.wording import error_line
from trialkit.domain.errors import TrialkitError
from trialkit.domain.procedures import Block
from trialkit.domain.roles import Role
from trialkit.domain.sealing import (
    ENVELOPE_CIPHERTEXT_LEN,
    CustodianKeys,
    key_info,
    open_envelope,
    parse_envelope_plaintext,
    unwrap_data_key,
    unwrap_private_key,
)
from trialkit.services.actor import Actor
from trialkit.services.administration.sign_in import login
from trialkit.services.enrolment.allocation import seal_lists, stratum_usage
from trialkit.services.enrolment.participants import list_participants
from trialkit.services.integrity import audit
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import AllocationList, Envelope, ListKeyGrant, Trial, User

ARMS = tuple(PROTOCOL.arm_codes)  # ("KET", "PLA")
TITLE = PROTOCOL.trial.title
# The arms as the protocol names them; codes as whole words (the trial itself is KETHEAD).
ARM_WORDS = re.compile(r"\b(?:KET|PLA)\b|Ketamine|Placebo|saline")
# The same, whatever the case (after the public trial title is set aside: it names the drug)
ARM_WORDS_ANY_CASE = re.compile(r"\b(?:ket|pla|ketamine|placebo|saline|chloride)\b", re.I)
LONG_ARM_BYTES = (b"Ketamine", b"Placebo", b"saline")
SHORT_ARM_BYTES = (b"KET", b"PLA")


# --- playing the enrolment through the command line ----------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One command as its user saw it."""

    who: str
    command: str
    exit_code: int
    stdout: str
    stderr: str


def invoke(url: str, who: str | None, on: date, *args: str, enrolment: str | None = None) -> Shown:
    """Run ``trialkit --db URL [--user WHO] ARGS`` in process on the day ``on``, as
    ``python -m trialkit`` would: a refusal becomes one line on stderr and its exit status.
    A user who is added activates their account at once."""
    options = ["--db", url] + (["--user", who] if who else [])
    env = {"TRIALKIT_CLOCK": f"{on.isoformat()}T09:00:00Z", "TRIALKIT_PASSWORD": PASSWORD,
           "TRIALKIT_NEW_PASSWORD": PASSWORD, "TRIALKIT_DB": None, "TRIALKIT_USER": None,
           "TRIALKIT_ENROLMENT_CODE": enrolment}
    engines: list[Engine] = []

    def recorded(*a: Any, **k: Any) -> Engine:
        engines.append(make_engine(*a, **k))
        return engines[-1]

    with pytest.MonkeyPatch.context() as mp:  # so each command's engine can be closed
        mp.setattr("trialkit.store.db.make_engine", recorded)
        result = CliRunner().invoke(app, [*options, *read_out(url, args)], env=env)
    for engine in engines:
        engine.dispose()
    stderr, code = result.stderr, result.exit_code
    if isinstance(result.exception, TrialkitError):
        err = result.exception
        stderr += error_line(err) + "\n"  # as `python -m trialkit` prints it
        code = err.exit_code
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    if added(args) and code == 0:
        name, handed_over = enrolment_code(result.stdout)
        activated = invoke(url, None, on, "user", "activate", name, enrolment=handed_over)
        assert activated.exit_code == 0, activated.stderr
        remember_key(url, name, activated.stdout)
    return Shown(who or "-", " ".join(args), code, result.stdout, stderr)


def screening(site: str, level: str, age: int = 40) -> list[str]:
    answers = [a for k, v in eligible_answers().items() for a in ("--answer", f"{k}={v}")]
    return ["screen", "--site", site, "--age", str(age), "--sex", "F", "--weight-kg", "70",
            "--stratum-factor", f"headache_type={level}", *answers]


def write_diary(path: Path, pids: Sequence[str]) -> None:
    """Every baseline day of each participant, as a diary file to import."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["participant_id", "date", "headache", "severity", "duration_hours",
                      "acute_medication"])
        for pid in pids:
            for d in baseline_days(SCREENED_ON):
                out.writerow([pid, d.day.isoformat(), "yes" if d.headache else "no",
                              d.severity, d.duration_hours,
                              "yes" if d.acute_medication else "no"])


SCREENED_ON = date(2026, 3, 2)
# Four weeks of baseline diary come between screening and randomization.
RANDOMIZED_ON = SCREENED_ON + timedelta(days=-PROTOCOL.diary.baseline_window.start)
AFTERWARDS = datetime.combine(RANDOMIZED_ON, time(17), UTC)  # when the test looks
DIARY = "<diary file>"
SHEET = "<recovery sheet>"
KEPT_A_DIARY = ("TWH-001", "TWH-002", "TWH-003", "SHS-001")

# Who does what, on which day, in order. Two envelopes per stratum: TWH-CM runs out on its
# third participant.
SCENARIO: list[tuple[str | None, date, list[str]]] = [
    (None, SCREENED_ON, ["init", str(KETHEAD), "--admin", ADMIN, "--training",
                         "--recovery-sheet", SHEET]),
    (ADMIN, SCREENED_ON, ["user", "add", "iris", "--role", "investigator"]),
    (ADMIN, SCREENED_ON, ["user", "add", "phil", "--role", "pharmacist"]),
    ("iris", SCREENED_ON, approve("phil")),
    (ADMIN, SCREENED_ON,
     ["user", "add", "cora", "--role", "coordinator", "--site", "TWH", "--site", "SHS"]),
    (ADMIN, SCREENED_ON, ["seal", "--per-stratum", "2"]),
    (ADMIN, SCREENED_ON, ["list", "status"]),
    ("cora", SCREENED_ON, screening("TWH", "CM")),
    ("cora", SCREENED_ON, ["--json", *screening("TWH", "CM")]),
    ("cora", SCREENED_ON, screening("TWH", "CM")),
    ("cora", SCREENED_ON, screening("SHS", "CDH")),
    ("cora", SCREENED_ON, screening("TWH", "CM", age=16)),
    *[("cora", SCREENED_ON,
       ["consent", pid, "--date", SCREENED_ON.isoformat(), "--form-version", "2.0"])
      for pid in KEPT_A_DIARY],
    ("cora", RANDOMIZED_ON, ["diary", "import", DIARY]),
    ("cora", RANDOMIZED_ON, ["randomize", "TWH-001"]),
    ("cora", RANDOMIZED_ON, ["--json", "randomize", "TWH-002"]),
    ("cora", RANDOMIZED_ON, ["randomize", "TWH-001"]),
    ("cora", RANDOMIZED_ON, ["randomize", "TWH-003"]),
    ("cora", RANDOMIZED_ON, ["randomize", "TWH-004"]),
    ("cora", RANDOMIZED_ON, ["randomize", "SHS-001"]),
    ("cora", RANDOMIZED_ON, ["withdraw", "SHS-001", "--reason", "moved away"]),
    ("cora", RANDOMIZED_ON, ["participants"]),
    ("cora", RANDOMIZED_ON, ["--json", "participants"]),
    ("cora", RANDOMIZED_ON, ["list", "status"]),
    (ADMIN, RANDOMIZED_ON, ["--json", "list", "status"]),
    (None, RANDOMIZED_ON, ["list", "verify"]),
    (None, RANDOMIZED_ON, ["audit", "verify"]),
    (ADMIN, RANDOMIZED_ON, ["audit", "log", "--participant", "TWH-001"]),
    (ADMIN, RANDOMIZED_ON, ["--json", "audit", "log", "--entity", "participant"]),
    (ADMIN, RANDOMIZED_ON, ["--json", "audit", "log", "--site", "TWH", "--sign-ins"]),
]


def forced(first: str, second: str) -> Callable[..., list[Block]]:
    """A stand-in for ``generate_blocks`` whose every block reads ``first, second``."""

    def generate(arm_codes: Sequence[str], ratio: Sequence[int], block_sizes: Sequence[int],
                 n_slots: int, rng: Any, *weights: Any) -> list[Block]:
        # The design draws arm indices in the protocol's arm order.
        index = dict(zip(ARMS, arm_codes, strict=True))
        assert set(index) == {first, second}
        return [Block(2, (index[first], index[second])) for _ in range((n_slots + 1) // 2)]

    return generate


@dataclass
class Run:
    """One play of the scenario: its database and what everyone was shown."""

    url: str
    engine: Engine
    shown: list[Shown]

    def step(self, command: str, nth: int = 0) -> Shown:
        return [s for s in self.shown if s.command == command][nth]

    def sign_in(self, name: str) -> Actor:
        with transaction(self.engine) as s:
            return login(s, name, PASSWORD, clock=SteppingClock(AFTERWARDS))


def play(url: str, diary: Path, first: str, second: str,
         monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setattr("trialkit.domain.designs.generate_blocks", forced(first, second))
    # a random id of 16 hex digits, which the comparison of the two runs sets aside
    sheet = str(diary.parent / f"recovery-sheet-{secrets.token_hex(8)}.pdf")
    shown = [invoke(url, who, on, *[str(diary) if a == DIARY else sheet if a == SHEET else a
                                     for a in args])
             for who, on, args in SCENARIO]
    monkeypatch.undo()
    return Run(url, make_engine(url), shown)


@pytest.fixture(scope="module", params=BACKENDS)
def runs(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Run, Run]]:
    """The scenario played with the arms one way round, then the other."""
    diary = tmp_path_factory.mktemp("site") / "baseline.csv"  # the same file for both
    write_diary(diary, KEPT_A_DIARY)
    with ExitStack() as stack:
        urls = [stack.enter_context(empty_database(request.param, tmp_path_factory.mktemp(n)))
                for n in ("ket-first", "pla-first")]
        with pytest.MonkeyPatch.context() as mp:
            ket, pla = ARMS
            pair = (play(urls[0], diary, ket, pla, mp), play(urls[1], diary, pla, ket, mp))
        yield pair
        for run in pair:
            run.engine.dispose()


REFUSED = {"randomize TWH-003": "stratum TWH-CM has no sealed envelope left",
           "randomize TWH-004": "TWH-004 is not eligible (failed I1_age)"}


def test_the_scenario_ran_as_intended(runs: tuple[Run, Run]) -> None:
    """Guard for the comparisons below: they would prove nothing about a failed scenario."""
    for run in runs:
        assert [(s.command, s.exit_code) for s in run.shown] == [
            (s.command, 1 if s.command in REFUSED else 0) for s in run.shown]
        for command, message in REFUSED.items():
            assert run.step(command).stderr.startswith(f"Refused: {message}")
        assert "already randomized" in run.step("randomize TWH-001", 1).stdout


def test_the_two_runs_gave_the_same_participants_opposite_arms(runs: tuple[Run, Run]) -> None:
    allocated = [allocations(run) for run in runs]
    assert allocated[0] == {"TWH-001": "KET", "TWH-002": "PLA", "SHS-001": "KET"}
    assert allocated[1] == {"TWH-001": "PLA", "TWH-002": "KET", "SHS-001": "PLA"}


# --- what the pharmacist can read (the test uses it only to know the arms) ------------------------


def pharmacist_reads(run: Run) -> list[tuple[Envelope, str]]:
    """Every envelope with the arm it holds, opened with phil's key and password."""
    with read_only(run.engine) as s:
        phil = s.exec(select(User).where(User.name == "phil")).one()
        grants = {g.list_id: g.wrapped_key for g in
                  s.exec(select(ListKeyGrant).where(ListKeyGrant.user_id == phil.id))}
        envelopes = list(s.exec(select(Envelope)
                                .order_by(col(Envelope.stratum_code), col(Envelope.seq))))
        assert phil.public_key and phil.wrapped_private_key and phil.key_kdf
        keys = CustodianKeys(phil.public_key, phil.wrapped_private_key, phil.key_kdf)
        private = unwrap_private_key(keys, PASSWORD)
        data_keys = {lid: unwrap_data_key(w, private, key_info(lid)) for lid, w in grants.items()}
        read = []
        for e in envelopes:
            plaintext = open_envelope(data_keys[e.list_id], e.ciphertext, e.list_id,
                                      e.stratum_code, e.seq)
            read.append((e, parse_envelope_plaintext(plaintext).arm_code))
        s.expunge_all()  # keep the rows readable after the session ends
    return read


def allocations(run: Run) -> dict[str, str]:
    return {e.participant_id: arm for e, arm in pharmacist_reads(run) if e.participant_id}


def test_envelopes_of_both_arms_have_ciphertexts_of_the_same_length(
    runs: tuple[Run, Run],
) -> None:
    for run in runs:
        lengths: dict[str, set[int]] = {}
        for envelope, arm in pharmacist_reads(run):
            lengths.setdefault(arm, set()).add(len(envelope.ciphertext))
        assert lengths == {arm: {ENVELOPE_CIPHERTEXT_LEN} for arm in ARMS}


# --- nothing in the database names an arm ------------------------------------------------------


def words_in(value: Any) -> set[str]:
    """Arm words in a value shown as text (the public trial title set aside)."""
    found = str(value).replace(TITLE, "<title>")
    return {m.group(0) for m in itertools.chain(ARM_WORDS.finditer(found),
                                                ARM_WORDS_ANY_CASE.finditer(found))}


def rows_by_column(run: Run) -> Iterator[tuple[str, str, Any]]:
    """Every value of every column of every table: (table, column, value)."""
    if run.engine.dialect.name == "sqlite":
        path = make_url(run.url).database
        assert path is not None
        with sqlite3.connect(path) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables + ["sqlite_master"]:
                cursor = conn.execute(f'SELECT * FROM "{table}"')
                names = [d[0] for d in cursor.description]
                for row in cursor:
                    yield from ((table, n, v) for n, v in zip(names, row, strict=True))
        return
    with run.engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        assert "envelope" in tables
        for table in tables:
            result = conn.execute(text(f'SELECT * FROM "{table}"'))
            for row in result:
                yield from ((table, n, v) for n, v in row._mapping.items())


def text_dump(run: Run) -> str:
    """The whole database as text, the way someone would copy it off a server."""
    if run.engine.dialect.name == "sqlite":
        path = make_url(run.url).database
        assert path is not None
        with sqlite3.connect(path) as conn:
            return "\n".join(conn.iterdump())
    url = make_url(run.url)
    schema = unquote(str(url.query["options"])).removeprefix("-csearch_path=")
    dumped = subprocess.run(
        ["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432),
         "-U", url.username or "postgres", "-d", url.database or "test", "-n", schema],
        capture_output=True, text=True, check=True, timeout=60)
    return dumped.stdout


def protocol_literal(run: Run, protocol: str) -> str:
    """The stored protocol text as the dump writes it."""
    if run.engine.dialect.name == "sqlite":
        return "'" + protocol.replace("'", "''") + "'"
    escaped = protocol.replace("\\", "\\\\")
    for char, code in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        escaped = escaped.replace(char, code)
    return escaped


def test_no_table_or_column_names_an_arm_except_the_protocol_text(
    runs: tuple[Run, Run],
) -> None:
    short_hits: list[set[tuple[str, str, bytes]]] = []
    for run in runs:
        words: dict[tuple[str, str], set[str]] = {}
        short: set[tuple[str, str, bytes]] = set()
        values = 0
        for table, column, value in rows_by_column(run):
            values += 1
            if isinstance(value, bytes | memoryview):
                raw = bytes(value)
                assert not [p for p in LONG_ARM_BYTES if p in raw], (table, column)
                short |= {(table, column, p) for p in SHORT_ARM_BYTES if p in raw}
            elif value is not None and (found := words_in(value)):
                words.setdefault((table, column), set()).update(found)
        assert values > 500  # the scan saw the data
        assert words == {("trial", "protocol_text"): {
            "KET", "PLA", "Ketamine", "Placebo", "saline", "ketamine", "placebo", "chloride"}}
        short_hits.append(short)
    # Three random bytes spell KET or PLA somewhere in a few kilobytes of ciphertext about
    # once in a thousand plays. An arm stored in clear would be there in both plays, in the
    # same column; chance almost never repeats itself there.
    assert short_hits[0] & short_hits[1] == set()


def test_a_text_dump_names_no_arm_outside_the_protocol_text(runs: tuple[Run, Run]) -> None:
    for run in runs:
        with read_only(run.engine) as s:
            protocol = s.exec(select(Trial.protocol_text)).one()
        dump = text_dump(run)
        literal = protocol_literal(run, protocol)
        assert dump.count(literal) == 1, "the dump should hold the protocol text once"
        assert ARM_WORDS.search(literal) and "CREATE TABLE" in dump and "envelope" in dump
        rest = dump.replace(literal, "<protocol>").replace(TITLE, "<title>")
        assert ARM_WORDS.findall(rest) == []
        assert ARM_WORDS_ANY_CASE.findall(rest) == []


# --- what blinded people are shown is the same whatever the arms ----------------------------------

RANDOM_CODES = {
    "enrolment": re.compile(r"\b[A-Z2-7]{4}(?:-[A-Z2-7]{4}){5}\b"),
    "label": re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z*~$=U]"),
    "hash": re.compile(r"\b[0-9a-f]{64}\b"),
    "id": re.compile(r"\b[0-9a-f]{16}\b"),
    "fingerprint": re.compile(r"\b[0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4} [0-9a-f]{4}\b"),
}


@dataclass
class Normaliser:
    """Replaces each random code by a placeholder numbered by kind in order of first
    appearance, so which codes repeat where is still compared."""

    db_url: str
    seen: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)

    def __call__(self, shown: str) -> str:
        shown = shown.replace(self.db_url, "<db>")
        for kind, pattern in RANDOM_CODES.items():
            shown = pattern.sub(self._replacer(kind), shown)
        return shown

    def _replacer(self, kind: str) -> Callable[[re.Match[str]], str]:
        return lambda found: self._placeholder(kind, found.group(0))

    def _placeholder(self, kind: str, code: str) -> str:
        if code not in self.seen:
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.seen[code] = f"<{kind}-{self.kinds[kind]}>"
        return self.seen[code]


def blinded_views(run: Run) -> list[str]:
    """What blinded roles see through the services: the audit log (admin), participant
    lists (coordinator, admin) and envelope counts (everyone)."""
    views: list[str] = []
    actors = {name: run.sign_in(name) for name in (ADMIN, "cora")}
    with read_only(run.engine) as s:
        views += [repr(e) for e in audit.log(s, actors[ADMIN])]
        for actor in actors.values():
            views += [repr(v) for v in list_participants(s, actor)]
            views += [repr(u) for u in stratum_usage(s, actor)]
    return views


def test_blinded_people_see_the_same_whatever_the_arms(runs: tuple[Run, Run]) -> None:
    shown = [[dataclasses.astuple(s) for s in run.shown] for run in runs]
    views = [blinded_views(run) for run in runs]
    normalise = [Normaliser(run.url) for run in runs]

    same_shown = [[tuple(normalise[i](str(x)) for x in step) for step in shown[i]]
                  for i in range(2)]  # (who, command, exit status, stdout, stderr)
    same_views = [[normalise[i](v) for v in views[i]] for i in range(2)]

    for step_a, step_b in zip(same_shown[0], same_shown[1], strict=True):
        assert step_a == step_b
    for view_a, view_b in zip(same_views[0], same_views[1], strict=True):
        assert view_a == view_b
    # ... and it is the placeholders that make them so: the runs differ before, in the
    # steps that show random codes, and the same kinds of code were replaced as often.
    differ = [i for i, (a, b) in enumerate(zip(shown[0], shown[1], strict=True)) if a != b]
    assert "randomize TWH-001" in {runs[0].shown[i].command for i in differ}
    assert views[0] != views[1]
    assert normalise[0].kinds == normalise[1].kinds
    assert set(normalise[0].kinds) == set(RANDOM_CODES)
    # ... and what was left is what the people were shown, not an empty shell
    first = runs[0].shown.index(runs[0].step("randomize TWH-001"))
    assert "TWH-001: randomization number R0001, label code <label-1>" in same_shown[0][first][3]


# --- the sealed procedure ------------------------------------------------------------------------


def test_the_sealed_procedure_does_not_show_how_many_blocks_a_list_has(
    engine: Engine, admin: Actor, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten envelopes are two blocks (4+6) or three (4+4+4, cut to 10): the sealed block
    sizes must not give that away through the length of what is stored."""
    add_user(engine, admin, clock, "phil", Role.PHARMACIST)
    compositions = itertools.cycle([(4, 6), (4, 4, 4), (6, 6), (6, 4)])

    def blocks(arm_codes: Sequence[str], ratio: Sequence[int], block_sizes: Sequence[int],
               n_slots: int, rng: Any, *weights: Any) -> list[Block]:
        return [Block(n, tuple(arm_codes) * (n // 2)) for n in next(compositions)]

    monkeypatch.setattr("trialkit.domain.designs.generate_blocks", blocks)
    with transaction(engine) as s:
        seal_lists(s, admin, per_stratum=10, block_sizes=None, clock=clock,
                   rng=SeededRandom(3))
    with read_only(engine) as s:
        stored = dict(s.exec(select(AllocationList.stratum_code,
                                    func.length(AllocationList.sealed_policy))).all())
    assert len(stored) == 4
    assert len(set(stored.values())) == 1, f"sealed procedure lengths differ: {stored}"
