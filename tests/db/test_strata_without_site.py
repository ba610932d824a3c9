"""A protocol with ``stratify_by_site = false``: one list per stratification level, shared
by every site. Sealing, screening, randomizing by coordinators of different sites from the
same trial-wide list, dispensing, verifying and the
status report, on SQLite and PostgreSQL (issue 9, item 4: sealing ended in a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from tests.builders import consented, record_baseline
from tests.conftest import ADMIN, KETHEAD, PASSWORD, SteppingClock, add_user, sign_in
from trialkit.domain.errors import Refused
from trialkit.domain.protocol import protocol_from_text
from trialkit.domain.roles import Role
from trialkit.services.administration.setup import initialize
from trialkit.services.enrolment.allocation import seal_lists, stratum_usage
from trialkit.services.enrolment.participants import randomize
from trialkit.services.exports.status import trial_status
from trialkit.services.integrity import verification
from trialkit.services.integrity.list_verification import verify_lists
from trialkit.services.pharmacy.dispensing import dispense
from trialkit.store.db import make_engine, read_only, transaction
from trialkit.store.models import Envelope, Stratum


@pytest.fixture
def trial(db_url: str, clock: SteppingClock) -> Engine:
    text = Path(KETHEAD).read_text(encoding="utf-8")
    assert "stratify_by_site = true" in text
    loaded = protocol_from_text(text.replace("stratify_by_site = true",
                                             "stratify_by_site = false"), "no-site.toml")
    engine = make_engine(db_url, must_exist=False)
    initialize(engine, loaded, admin=ADMIN, admin_password=PASSWORD, training=False, clock=clock)
    return engine


def test_a_trial_wide_list_serves_coordinators_of_every_site(
    trial: Engine, clock: SteppingClock
) -> None:
    alice = sign_in(trial, ADMIN, clock)
    for name, role, sites in [("phil", Role.PHARMACIST, None), ("tess", Role.COORDINATOR,
                              ["TWH"]), ("sam", Role.COORDINATOR, ["SHS"])]:
        add_user(trial, alice, clock, name, role, sites=sites)
    phil, tess, sam = (sign_in(trial, n, clock) for n in ("phil", "tess", "sam"))

    with transaction(trial) as s:
        sealed = seal_lists(s, alice, per_stratum=3, block_sizes=None, clock=clock)
    # the protocol's levels of headache_type, no site in the codes
    assert [(c.stratum, c.envelopes) for c in sealed.lists] == [("CM", 3), ("CDH", 3)]
    with read_only(trial) as s:
        assert {(st.code, st.site_code) for st in s.exec(select(Stratum))} == {
            ("CM", None), ("CDH", None)}

    at_twh = consented(trial, tess, clock, site="TWH").id
    at_shs = consented(trial, sam, clock, site="SHS").id
    third = consented(trial, tess, clock, site="TWH").id
    fourth = consented(trial, sam, clock, site="SHS").id
    record_baseline(trial, tess, clock, at_twh, third)
    record_baseline(trial, sam, clock, at_shs, fourth)
    for who, pid, number in ((tess, at_twh, "R0001"), (sam, at_shs, "R0002"),
                             (tess, third, "R0003")):
        with transaction(trial) as s:
            assert randomize(s, who, pid, clock=clock).randomization_number == number
    with read_only(trial) as s:
        bound = s.exec(select(Envelope.participant_id, Envelope.stratum_code, Envelope.seq)
                       .where(col(Envelope.participant_id).is_not(None))
                       .order_by(col(Envelope.seq))).all()
        assert list(bound) == [(at_twh, "CM", 1), (at_shs, "CM", 2), (third, "CM", 3)]
        usage = {u.stratum: (u.sealed, u.used, u.left) for u in stratum_usage(s, alice)}
    assert usage == {"CM": (3, 3, 0), "CDH": (3, 0, 3)}
    # three released, the rest of the block held back: the fourth is refused as exhausted
    with pytest.raises(Refused, match="stratum CM has no sealed envelope left"), \
            transaction(trial) as s:
        randomize(s, sam, fourth, clock=clock)

    with transaction(trial) as s:
        opened = dispense(s, phil, at_shs, password=PASSWORD, clock=clock)
    assert opened.envelope == "CM #2" and opened.arm_code in {"KET", "PLA"}
    with read_only(trial) as s:
        assert [c.problem for c in verify_lists(s)] == [None, None]
        report = verification.verify(s)
        assert report.ok, report.problem
        status = trial_status(s, alice, clock=clock)
    assert [(e.code, e.randomized) for e in status.strata] == [("CM", 3), ("CDH", 0)]
    assert [(e.code, e.randomized) for e in status.sites] == [("TWH", 2), ("SHS", 1)]
