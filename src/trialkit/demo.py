"""``trialkit demo``: a ready KetHead training trial with one user per role, so anyone can
open the TUI and look around. Every demo user's password is DEMO_PASSWORD (see README)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from trialkit.domain.clock import Clock, SystemClock
from trialkit.domain.eligibility import answered_criteria
from trialkit.domain.protocol import LoadedProtocol, load_protocol, protocol_from_text
from trialkit.domain.roles import Role
from trialkit.services.actor import Actor
from trialkit.services.allocation import seal_lists
from trialkit.services.auth import login
from trialkit.services.enrolment import consent, randomize, screen
from trialkit.services.setup import initialize
from trialkit.services.users import create_user
from trialkit.store.db import make_engine, normalize_url, sqlite_path, transaction

DEMO_PASSWORD = "kethead-demo"

# name, role, sites, custodian
DEMO_USERS: tuple[tuple[str, Role, tuple[str, ...], bool], ...] = (
    ("cora", Role.COORDINATOR, ("TWH",), False),
    ("sam", Role.COORDINATOR, ("SHS",), False),
    ("phil", Role.PHARMACIST, (), True),
    ("pia", Role.PHARMACIST, (), True),
    ("ivan", Role.INVESTIGATOR, (), True),
    ("iris", Role.INVESTIGATOR, (), False),
    ("mona", Role.MONITOR, (), False),
)
DEMO_ADMIN = "ada"
DEMO_PER_STRATUM = 20

# site, coordinator, headache type, age, weight, how far they get
DEMO_PARTICIPANTS: tuple[tuple[str, str, str, int, float, str], ...] = (
    ("TWH", "cora", "CM", 44, 68.0, "randomized"),
    ("TWH", "cora", "CDH", 37, 81.5, "randomized"),
    ("TWH", "cora", "CM", 17, 59.0, "ineligible"),
    ("TWH", "cora", "CM", 52, 74.0, "consented"),
    ("SHS", "sam", "CDH", 29, 62.0, "randomized"),
    ("SHS", "sam", "CM", 61, 90.0, "randomized"),
    ("SHS", "sam", "CDH", 45, 70.0, "screened"),
)


@dataclass
class DemoSummary:
    database: str
    created: bool
    users: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "created": self.created,
            "password": DEMO_PASSWORD,
            "users": [{"name": n, "role": r} for n, r in self.users],
        }

    def text(self) -> str:
        head = "Built" if self.created else "Kept the existing"
        users = ", ".join(f"{n} ({r})" for n, r in self.users)
        return (
            f"{head} demo KetHead training trial in {self.database}\n"
            f"Users: {users}\nPassword for every demo user: {DEMO_PASSWORD}"
        )


def kethead_protocol() -> LoadedProtocol:
    """The shipped KetHead protocol: from the source tree, or the copy inside the package."""
    repo_copy = Path(__file__).resolve().parents[2] / "protocols" / "kethead.toml"
    if repo_copy.exists():
        return load_protocol(repo_copy)
    text = resources.files("trialkit").joinpath("kethead.toml").read_text("utf-8")
    return protocol_from_text(text, source="kethead.toml")


def _enrol_participants(engine: Engine, clock: Clock) -> None:
    protocol = kethead_protocol().protocol
    answers = {c.id: "yes" if c.kind == "inclusion" else "no" for c in answered_criteria(protocol)}
    actors: dict[str, Actor] = {}
    for site, who, htype, age, weight, stage in DEMO_PARTICIPANTS:
        if who not in actors:
            with transaction(engine) as s:
                actors[who] = login(s, who, DEMO_PASSWORD, clock=clock)
        actor = actors[who]
        with transaction(engine) as s:
            p = screen(
                s,
                actor,
                site=site,
                age=age,
                sex="F" if age % 2 else "M",
                weight_kg=weight,
                factors={"headache_type": htype},
                answers=answers,
                clock=clock,
            )
        if stage in ("screened", "ineligible"):
            continue
        with transaction(engine) as s:
            consent(
                s,
                actor,
                p.id,
                on=clock.now().date(),
                form_version=protocol.consent.form_versions[-1],
                clock=clock,
            )
        if stage == "randomized":
            with transaction(engine) as s:
                randomize(s, actor, p.id, clock=clock)


def build_demo(db: str, *, fresh: bool = False) -> DemoSummary:
    """Create the demo trial in ``db`` (kept as it is if it already exists, unless ``fresh``)."""
    users = [(DEMO_ADMIN, Role.ADMIN.value)] + [(n, r.value) for n, r, _s, _c in DEMO_USERS]
    path = sqlite_path(normalize_url(db))
    if path is not None and path.exists():
        if not fresh:
            return DemoSummary(database=db, created=False, users=users)
        for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            p.unlink(missing_ok=True)
    clock = SystemClock()
    engine = make_engine(db, must_exist=False)
    try:
        initialize(
            engine,
            kethead_protocol(),
            admin=DEMO_ADMIN,
            admin_password=DEMO_PASSWORD,
            training=True,
            clock=clock,
        )
        with transaction(engine) as s:
            admin: Actor = login(s, DEMO_ADMIN, DEMO_PASSWORD, clock=clock)
        with transaction(engine) as s:
            for name, role, sites, custodian in DEMO_USERS:
                create_user(
                    s,
                    admin,
                    name=name,
                    role=role,
                    password=DEMO_PASSWORD,
                    sites=list(sites),
                    custodian=custodian,
                    clock=clock,
                )
        with transaction(engine) as s:
            seal_lists(s, admin, per_stratum=DEMO_PER_STRATUM, block_sizes=None, clock=clock)
        _enrol_participants(engine, clock)
    finally:
        engine.dispose()
    return DemoSummary(database=db, created=True, users=users)
