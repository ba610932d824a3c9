"""Custody from the command line, as scripts and people run it: `init` writes the recovery
sheet once (owner-only, no word printed), `custodian approve` needs the fingerprint the
custodian read out, `custodian list`, and `custodian recover` from a text sheet. Bad input
is one line and exit 2 with nothing written; refusals exit 1 and are audited."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pypdf import PdfReader
from sqlmodel import select

from tests.cli.test_cli import assert_done, assert_refused, state_of, trialkit
from tests.conftest import ADMIN, KETHEAD, PASSWORD
from trialkit.domain.recovery import recovery_private_key, words_on_sheet
from trialkit.store.db import make_engine, read_only
from trialkit.store.models import Trial

NUMBERED = re.compile(r"\b(\d{1,2})\. ([a-z]+)\b")


def stored_recovery_key(db: Path) -> bytes | None:
    engine = make_engine(str(db))
    try:
        with read_only(engine) as s:
            trial = s.exec(select(Trial)).one()
            return trial.recovery_public_key
    finally:
        engine.dispose()


def init(folder: Path, *options: str) -> tuple[Path, str]:
    db = folder / "trial.db"
    run = trialkit("init", str(KETHEAD), "--admin", ADMIN, "--training", *options, db=db,
                   cwd=folder, user=None, password=None, new_password=PASSWORD)
    assert_done(run)
    return db, run.out


def enrol(db: Path, name: str, *options: str) -> str:
    """Add (admin) and activate (the person): what the activation printed."""
    added = trialkit("--json", "user", "add", name, *options, db=db, cwd=db.parent)
    assert_done(added)
    code = json.loads(added.out)["enrolment_code"]
    done = trialkit("user", "activate", name, db=db, cwd=db.parent, user=None, password=None,
                    new_password=PASSWORD, code=code)
    assert_done(done)
    return done.out


def read_out(activation: str) -> str:
    found = re.search(r"Your custodian key: ([0-9a-f]{4}(?: [0-9a-f]{4}){3})", activation)
    assert found is not None, activation
    return found[1]


def test_init_writes_the_recovery_sheet_once_as_a_pdf_for_its_owner_only(
    tmp_path: Path
) -> None:
    db, out = init(tmp_path)
    [sheet] = list(tmp_path.glob("KETHEAD-recovery-sheet-*.pdf"))
    assert sheet.stat().st_mode & 0o077 == 0
    assert f"Recovery sheet written to {sheet.name}" in out
    text = "\n".join(page.extract_text() for page in PdfReader(sheet).pages)
    numbered = dict(NUMBERED.findall(text))
    assert sorted(int(n) for n in numbered) == list(range(1, 25))
    words = " ".join(numbered[str(i)] for i in range(1, 25))
    key = recovery_private_key(words)
    assert key.public_key().public_bytes_raw() == stored_recovery_key(db)
    listed = words.split()
    for i in range(0, 24, 3):  # not the words, nor any three of them in a row
        assert " ".join(listed[i:i + 3]) not in out
    # A sheet that would overwrite a file is bad input, before anything is made.
    again = trialkit("init", str(KETHEAD), "--admin", ADMIN, "--recovery-sheet", str(sheet),
                     db=tmp_path / "other.db", cwd=tmp_path, user=None, password=None,
                     new_password=PASSWORD)
    assert_refused(again, 2, "the file exists")
    assert not (tmp_path / "other.db").exists()


def test_approve_list_and_recover_from_the_command_line(tmp_path: Path) -> None:
    db, _out = init(tmp_path, "--recovery-sheet", "sheet.txt")
    enrol(db, "iris", "--role", "investigator")
    phil = read_out(enrol(db, "phil", "--role", "pharmacist"))
    engine = make_engine(str(db))
    try:
        before = state_of(engine)
        for options, why in (([], "give --fingerprint"),
                             (["--fingerprint", "12 34"], "16 hex digits")):
            run = trialkit("custodian", "approve", "phil", *options, db=db, cwd=tmp_path,
                           user="iris")
            assert_refused(run, 2, why)
        assert state_of(engine) == before  # bad input: nothing written, not even a sign-in
        assert_refused(trialkit("custodian", "approve", "phil", "--fingerprint", phil,
                                db=db, cwd=tmp_path, user="phil"), 1, "nobody approves")
        done = trialkit("custodian", "approve", "phil", "--fingerprint", phil.upper(),
                        db=db, cwd=tmp_path, user="iris")
        assert_done(done)
        assert f"Approved phil as an unblinding custodian (key {phil})" in done.out
        assert_done(trialkit("seal", "--per-stratum", "2", db=db, cwd=tmp_path))
        listed = trialkit("--json", "custodian", "list", db=db, cwd=tmp_path, user="iris")
        assert_done(listed)
        assert [(c["name"], c["state"], c["lists_held"]) for c in json.loads(listed.out)] == [
            ("phil", "approved by iris", 4)]
        # phil leaves; newt is restored to custody from the text sheet
        assert_done(trialkit("user", "disable", "phil", "--reason", "left", db=db,
                             cwd=tmp_path))
        newt = read_out(enrol(db, "newt", "--role", "pharmacist"))
        assert_refused(trialkit("custodian", "approve", "newt", "--fingerprint", newt, db=db,
                                cwd=tmp_path, user="iris"), 1, "only the first custodian")
        words = words_on_sheet((tmp_path / "sheet.txt").read_text(encoding="utf-8"))
        recovered = trialkit("custodian", "recover", "newt", "--fingerprint", newt,
                             "--sheet", "sheet.txt", db=db, cwd=tmp_path, user="iris")
        assert_done(recovered)
        assert "Custody restored: 4 list keys wrapped to newt" in recovered.out
        assert words not in recovered.out
        assert_done(trialkit("list", "verify", db=db, cwd=tmp_path, user=None))
        assert_done(trialkit("audit", "verify", db=db, cwd=tmp_path, user=None))
        actions = state_of(engine).actions
        assert actions.count("custodian.approve") == 2  # iris for phil, the sheet for newt
        assert actions.count("custody.recover") == 1
    finally:
        engine.dispose()
