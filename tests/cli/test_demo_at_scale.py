"""`trialkit demo --participants N`: a generated training trial in which every stage a
participant can reach is reached, diaries are mixed (gaps, corrections, complete and
partial follow-up) and the audit trail verifies. Counted here from the stored rows with
plain SQL, independently of the generator and of the status report."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.cli.test_cli import trialkit
from tests.db.tampering import reader
from trialkit.demo_scale import FATES, fate_counts
from trialkit.store.db import make_engine

DEMO_PASSWORD = "orchard-violin-demo"  # README


def _rows(db_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = make_engine(db_url)
    try:
        with reader(engine).connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def test_fate_counts_add_up_and_include_every_stage() -> None:
    for n in (len(FATES), 37, 20_000):
        counts = fate_counts(n)
        assert sum(counts.values()) == n
        assert min(counts.values()) >= 1
    assert fate_counts(20_000)["complete"] == 10_000  # 50 of every 100


def test_demo_at_scale_has_every_stage_and_verifies(db_url: str, tmp_path: Path) -> None:
    built = trialkit("--json", "demo", "--participants", "60", db=db_url, cwd=tmp_path,
                     user=None, password=None)
    assert built.code == 0, built.err
    assert json.loads(built.out)["created"] is True
    people = _rows(db_url, """
        SELECT p.id, p.eligible, p.consent_date, p.randomization_number, p.infusion_date,
               p.withdrawn_at IS NOT NULL, p.site_code, p.stratum_code,
               (SELECT count(*) FROM preparation r WHERE r.participant_id = p.id)
        FROM participant p""")
    assert len(people) == 60
    stages = set()
    for _id, eligible, consented, rand, infused, withdrawn, _s, _st, prepared in people:
        stage = ("ineligible" if not eligible else "eligible" if consented is None
                 else "consented" if rand is None else "randomized" if not prepared
                 else "dispensed" if infused is None else "infused")
        stages.add((stage, bool(withdrawn)))
    for stage in ("ineligible", "eligible", "consented", "randomized", "dispensed", "infused"):
        assert (stage, False) in stages, stage
    for stage in ("consented", "randomized", "infused"):  # withdrawn at several points
        assert (stage, True) in stages, stage
    assert {p[6] for p in people} == {"TWH", "SHS"}
    # The demo's own protocol copy states a target that fits its size: KetHead's 28 per
    # site (56 in all) scaled to 60 participants is 30 per site; KetHead's file is unchanged.
    (stored,) = _rows(db_url, "SELECT protocol_text FROM trial")[0]
    sites = {s["code"]: s["target"] for s in tomllib.loads(str(stored))["sites"]}
    assert sites == {"TWH": 30, "SHS": 30}
    shipped = tomllib.loads((Path(__file__).parents[2] / "protocols" / "kethead.toml").read_text())
    assert {s["code"]: s["target"] for s in shipped["sites"]} == {"TWH": 28, "SHS": 28}
    assert {p[7] for p in people} == {"TWH-CM", "TWH-CDH", "SHS-CM", "SHS-CDH"}
    # Diaries: several severities, corrections kept as versions, and both complete and
    # partial follow-up (days recorded after the infusion, by participant).
    severities = {s for (s,) in _rows(db_url, "SELECT DISTINCT severity FROM diary_entry")}
    assert severities == {"none", "mild", "moderate", "severe"}
    corrected = _rows(db_url, "SELECT count(*) FROM diary_entry WHERE version > 1")[0][0]
    assert corrected > 0
    follow = _rows(db_url, """
        SELECT p.id, p.infusion_date, count(d.id) FROM participant p
        JOIN diary_entry d ON d.participant_id = p.id AND d.current AND d.day > p.infusion_date
        WHERE p.infusion_date IS NOT NULL GROUP BY p.id, p.infusion_date""")
    today = datetime.now(UTC).date()  # the sites are 4-5 h behind: a day either way is fine
    over = [n for _p, inf, n in follow if (today - date.fromisoformat(str(inf))).days > 85]
    assert over and max(over) == 84  # a whole follow-up recorded
    assert any(n < 84 for _p, _inf, n in follow)  # gaps or still under way
    # Nobody randomized has an envelope of another stratum, and each has exactly one.
    bound = _rows(db_url, """
        SELECT p.stratum_code, e.stratum_code FROM participant p
        JOIN envelope e ON e.participant_id = p.id""")
    randomized = [p for p in people if p[3] is not None]
    assert len(bound) == len(randomized) and all(a == b for a, b in bound)
    verify = trialkit("audit", "verify", db=db_url, cwd=tmp_path, user=None, password=None)
    assert verify.code == 0, verify.err
    assert "OK" in verify.out


def test_demo_at_scale_is_the_demo_a_pharmacist_can_open(db_url: str, tmp_path: Path) -> None:
    """The generated preparations are sealed under the real list keys: the pharmacist reads
    one back (arm and lots) as after any dispense."""
    assert trialkit("demo", "--participants", "20", db=db_url, cwd=tmp_path, user=None,
                    password=None).code == 0
    pid = _rows(db_url, "SELECT participant_id FROM preparation ORDER BY participant_id")[0][0]
    shown = trialkit("--json", "preparation", str(pid), db=db_url, cwd=tmp_path,
                     user="phil", password=DEMO_PASSWORD)
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["arm"] in ("KET", "PLA")


@pytest.mark.parametrize("n", ["0", "-3", "x", "200001"])
def test_demo_refuses_a_bad_participant_count(n: str, tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    run = trialkit("demo", "--participants", n, db=db, cwd=tmp_path, user=None, password=None)
    assert run.code == 2
    assert not db.exists()
