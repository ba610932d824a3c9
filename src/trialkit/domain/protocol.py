"""Protocol files: the trial-specific facts (arms, sites, strata, eligibility, dosing, diary
rules, label text) read from TOML, validated, and refused with one line naming file and field.

Every clinical number the rest of trialkit uses comes from here, never from code.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, time
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)
from pydantic_core import ErrorDetails

from trialkit.domain.designs import PERMUTED_BLOCKS, Design
from trialkit.domain.errors import ProtocolFileError
from trialkit.domain.procedures import BLOCK_SIZE_MAX
from trialkit.domain.site_time import LEGACY_ZONE, SiteTime, trial_time, zone
from trialkit.domain.text import is_control

# A field path and what is wrong with it, e.g. ("arms[1].code", "duplicate code 'KET'").
Problems = Iterator[tuple[str, str]]

# Codes end up in stratum names, CLI options and labels; ids are typed on the command line
# (``--answer I2_cdh=yes``). Both must survive that without quoting.
_NAMES = {
    "code": (re.compile(r"[A-Z][A-Z0-9]{0,9}"), "a capital, then up to 9 capitals or digits"),
    "id": (re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}"), "a letter, then letters, digits or _"),
}

# A participant's own fields, as the participants export names its columns: a stratification
# factor (a column beside them) may not take one of these names.
PARTICIPANT_FIELDS: Final = frozenset({
    "participant_id", "site", "stratum", "age", "sex", "weight_kg", "eligible",
    "failed_criteria", "status", "unblinded_emergency", "screened_on", "consented_on",
    "consent_form_version", "randomization_number", "randomized_on", "dispensed_on",
    "planned_infusion_on", "infusion_on", "withdrawn_on", "withdrawal_reason",
})


def _shown_as_is(value: str) -> str:
    # Protocol text reaches screens, labels and the audit trail: no control characters.
    bad = next((c for c in value if is_control(c)), None)
    if bad is not None:
        raise ValueError(f"control character U+{ord(bad):04X} (a line break, tab, ESC...) "
                         "is not allowed")
    return value


# Text a person will read: never empty, never a control character, never a book.
Text = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_shown_as_is)]

# Plausible bounds for a trial's numbers: a value outside them is a typo (1e23 participants,
# a 100,000,000-minute idle lock), refused with the field's name before anything is stored.
Count = Annotated[int, Field(gt=0, le=1_000_000)]
Days = Annotated[int, Field(ge=-3650, le=3650)]
DayCount = Annotated[int, Field(ge=1, le=3650)]
Kilograms = Annotated[float, Field(gt=0, le=500)]
PerKg = Annotated[float, Field(gt=0, le=100)]
Hours = Annotated[float, Field(gt=0, le=24 * 31)]


class _Model(BaseModel):
    # strict: a protocol file must say 28, not "28"; TOML arrays become tuples before validation.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TrialInfo(_Model):
    id: Text
    title: Text
    version: Text
    protocol_number: Text
    registry: str | None = None


class Arm(_Model):
    code: str
    name: Text
    description: Text


class Allocation(_Model):
    ratio: tuple[Annotated[int, Field(le=100)], ...]
    # The randomization procedure and its parameters (``domain.designs``): permuted-blocks
    # (block_sizes, block_weights), big-stick or maximal (mti), block-urn (lambda), efron
    # (p), complete.
    procedure: str = PERMUTED_BLOCKS
    block_sizes: tuple[Annotated[int, Field(le=BLOCK_SIZE_MAX)], ...] = ()
    block_weights: tuple[int | float, ...] = ()
    mti: int | None = None
    urn_lambda: int | None = Field(default=None, alias="lambda")
    p: float | None = None
    stratify_by_site: bool = True

    @property
    def design(self) -> Design:
        """The design the protocol states, as the generators and the figures take it."""
        return Design(
            procedure=self.procedure,
            ratio=self.ratio,
            block_sizes=self.block_sizes,
            block_weights=tuple(Fraction(str(w)) for w in self.block_weights),
            mti=self.mti,
            urn_lambda=self.urn_lambda,
            p=None if self.p is None else Fraction(str(self.p)),
        )


class Site(_Model):
    code: str
    name: Text
    target: Count
    # IANA name, e.g. "America/Toronto": the site's dates and the times its staff read.
    timezone: Text

    @property
    def time(self) -> SiteTime:
        """Local time at this site (validation guarantees the zone exists)."""
        return SiteTime.named(self.timezone)


class Level(_Model):
    code: str
    name: Text


class Factor(_Model):
    id: str
    name: Text
    levels: tuple[Level, ...]


class Criterion(_Model):
    id: str
    kind: Literal["inclusion", "exclusion"]
    text: Text
    # Checked by trialkit from screening data; every other criterion is a yes/no answer.
    automatic: Literal["age"] | None = None


class Eligibility(_Model):
    age_min: int = Field(ge=0, le=130)
    age_max: int = Field(ge=0, le=130)
    weight_min_kg: Kilograms
    weight_max_kg: Kilograms
    criteria: tuple[Criterion, ...] = ()


class Consent(_Model):
    form_versions: tuple[Text, ...]


class Preparation(_Model):
    """One thing the pharmacy prepares (and labels). Volumes are per kg and shared by all arms,
    so the arms cannot differ in what a blinded person sees; only the product differs."""

    id: str
    name: Text
    kind: Literal["bolus", "infusion"]
    volume_ml_per_kg: PerKg | None = None
    rate_ml_per_kg_h: PerKg | None = None
    hours: Hours | None = None
    instructions: str | None = None
    # Arm code -> product text: the one thing that differs by arm (unblinded, pharmacy only).
    products: dict[str, Text]


class Dosing(_Model):
    expiry_hours: Annotated[int, Field(ge=1, le=24 * 31)]
    round_ml: Annotated[float, Field(gt=0, le=10)]
    weight_cap_kg: Kilograms | None = None
    preparations: tuple[Preparation, ...]
    # Given to every arm, not randomized: shown to the pharmacist as plain text.
    concomitant: tuple[Text, ...] = ()


class Window(_Model):
    code: Text
    start: Days
    end: Days
    relative_to: Literal["randomization", "infusion"]
    primary: bool = False


class Diary(_Model):
    severity_levels: tuple[Text, ...]
    moderate_severe_levels: tuple[Text, ...]
    headache_day_min_hours: Annotated[float, Field(gt=0, le=24)]
    headache_day_if_acute_medication: bool
    proration_min_days: DayCount
    proration_decimals: int = Field(default=1, ge=0, le=6)
    window_days: DayCount
    baseline_min_days: DayCount
    baseline_min_headache_days: int = Field(ge=0, le=3650)
    max_day_after_infusion: DayCount
    windows: tuple[Window, ...]

    @property
    def primary_window(self) -> Window:
        """The window of the primary outcome (validation guarantees exactly one)."""
        return next(w for w in self.windows if w.primary)

    @property
    def baseline_window(self) -> Window:
        """The window relative to randomization (validation guarantees exactly one)."""
        return next(w for w in self.windows if w.relative_to == "randomization")


class Labels(_Model):
    product: Text
    route: Text
    storage: Text
    caution: Text
    sponsor: Text
    emergency_contact: Text
    # Where label PDFs are saved when no file is named (TRIALKIT_LABEL_DIR overrides it).
    folder: Text | None = None


class UI(_Model):
    # A locked screen protects what a walk-away leaves open: at most two hours.
    idle_lock_minutes: int = Field(default=5, le=120)


class Security(_Model):
    # A custodian signs in with a code from an authenticator app as well as their password.
    custodian_totp: bool = False


class Protocol(_Model):
    trial: TrialInfo
    arms: tuple[Arm, ...]
    allocation: Allocation
    sites: tuple[Site, ...]
    stratification: tuple[Factor, ...] = ()
    eligibility: Eligibility
    consent: Consent
    dosing: Dosing
    diary: Diary
    labels: Labels
    ui: UI = UI()
    security: Security = Security()

    @property
    def arm_codes(self) -> tuple[str, ...]:
        """Arm codes in file order (the order of ``allocation.ratio``)."""
        return tuple(a.code for a in self.arms)

    @property
    def site_codes(self) -> tuple[str, ...]:
        """Site codes in file order."""
        return tuple(s.code for s in self.sites)

    def site(self, code: str) -> Site | None:
        """The site with this code, or None."""
        return next((s for s in self.sites if s.code == code), None)

    def site_time(self, code: str) -> SiteTime:
        """Local time at the site with this code (trial-wide time for an unknown code)."""
        site = self.site(code)
        return site.time if site is not None else self.trial_time

    @property
    def trial_time(self) -> SiteTime:
        """Local time for what belongs to no one site: the sites' zone if they share one,
        otherwise UTC."""
        return trial_time([s.timezone for s in self.sites])


@dataclass(frozen=True)
class LoadedProtocol:
    """A validated protocol with the exact text it came from and that text's SHA-256."""

    protocol: Protocol
    text: str
    sha256: str
    source: str


def load_protocol(path: str | Path) -> LoadedProtocol:
    """Read, parse and validate a protocol file; any problem raises ``ProtocolFileError``."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ProtocolFileError(f"{path}: cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolFileError(f"{path}: not UTF-8 text (byte {err.start})") from None
    protocol = parse_protocol(text, str(path))
    return LoadedProtocol(protocol, text, hashlib.sha256(data).hexdigest(), str(path))


def protocol_from_text(
    text: str, source: str = "stored protocol", *, stored: bool = False
) -> LoadedProtocol:
    """Validate protocol text kept elsewhere (e.g. in the database); hashes its UTF-8 bytes.

    ``stored``: the text is a trial's own protocol, kept in its database. Those written before
    sites had a ``timezone`` ran on UTC and keep doing so (the text, and its hash, never change);
    a protocol *file* must name every site's zone.
    """
    protocol = parse_protocol(text, source, legacy_timezone=LEGACY_ZONE if stored else None)
    return LoadedProtocol(protocol, text, hashlib.sha256(text.encode("utf-8")).hexdigest(), source)


def parse_protocol(text: str, source: str, *, legacy_timezone: str | None = None) -> Protocol:
    """Parse and validate TOML text; the first problem raises ``ProtocolFileError``.

    ``legacy_timezone``: the zone of a site that names none (stored protocols only)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _error(source, f"not valid TOML: {err}") from None
    if legacy_timezone is not None:
        for site in raw.get("sites", ()):
            if isinstance(site, dict):
                site.setdefault("timezone", legacy_timezone)
    try:
        protocol = Protocol.model_validate(_tuples(raw))
    except ValidationError as err:
        path, problem = _describe(err.errors()[0])
        raise _error(source, f"{path}: {problem}") from None
    for path, problem in _problems(protocol):
        raise _error(source, f"{path}: {problem}")
    return protocol


def _error(source: str, message: str) -> ProtocolFileError:
    # The message is shown as one line on stderr or in a notification, whatever it contains.
    return ProtocolFileError(" ".join(f"{source}: {message}".split()))


def _tuples(value: Any) -> Any:
    """TOML arrays as tuples, so strict validation accepts them for the frozen tuple fields."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def _field_path(loc: tuple[int | str, ...]) -> str:
    """('arms', 1, 'code') -> 'arms[1].code'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "(file)"


def _describe(err: ErrorDetails) -> tuple[str, str]:
    """Turn one pydantic error into (field path, short problem in the file's own terms)."""
    path, kind = _field_path(err["loc"]), err["type"]
    if kind == "missing":
        return path, "missing"
    if kind == "extra_forbidden":
        return path, "unknown field"
    if kind in ("model_type", "dict_type"):
        problem = "should be a table"
    elif kind == "tuple_type":
        problem = "should be an array"
    else:
        problem = err["msg"].replace("Input should", "should")
        problem = problem[:1].lower() + problem[1:]
    shown = _shown(err.get("input"))
    return path, f"{problem} (got {shown})" if shown else problem


def _shown(value: object) -> str | None:
    """A scalar as written in TOML, for the message; None for tables and arrays."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, str) and len(value) > 40:
        value = value[:37] + "..."
    return repr(value) if isinstance(value, str | int | float) else None


def _problems(p: Protocol) -> Problems:
    """Cross-field checks pydantic cannot express, in file order."""
    if len(p.arms) < 2:
        yield "arms", f"a controlled trial needs at least 2 arms (got {len(p.arms)})"
    yield from _named(p.arm_codes, "arms", "code")
    yield from _check_allocation(p)
    if not p.sites:
        yield "sites", "no sites"
    yield from _named(p.site_codes, "sites", "code")
    for i, site in enumerate(p.sites):
        try:
            zone(site.timezone)
        except ValueError as err:
            yield f"sites[{i}].timezone", str(err)
    yield from _named([f.id for f in p.stratification], "stratification", "id")
    for i, factor in enumerate(p.stratification):
        if factor.id in PARTICIPANT_FIELDS:
            yield (f"stratification[{i}].id", f"{factor.id!r} is the name of a participant's "
                   "own field: a factor needs a name of its own (it is a column of the "
                   "participants export beside them)")
        if not factor.levels:
            yield f"stratification[{i}].levels", "no levels"
        yield from _named([lv.code for lv in factor.levels], f"stratification[{i}].levels", "code")
    yield from _check_eligibility(p)
    if not p.consent.form_versions:
        yield "consent.form_versions", "no form versions"
    yield from _check_dosing(p)
    yield from _check_diary(p.diary)
    yield from _check_labels(p)
    if p.ui.idle_lock_minutes < 1:
        yield "ui.idle_lock_minutes", f"must be at least 1 (got {p.ui.idle_lock_minutes})"


_WORD = re.compile(r"[^\W\d_]{4,}")


def _arm_words(p: Protocol) -> dict[str, set[str]]:
    """For each arm, the words (4 letters or more) of its name and products that no other
    arm's name or products use: what would tell a reader which arm a text is about."""
    said: dict[str, set[str]] = {}
    for arm in p.arms:
        texts = [arm.name] + [prep.products.get(arm.code, "") for prep in p.dosing.preparations]
        said[arm.code] = {w.lower() for t in texts for w in _WORD.findall(t)}
    return {code: words - set().union(*(w for c, w in said.items() if c != code))
            for code, words in said.items()}


def _check_labels(p: Protocol) -> Problems:
    """Labels are the same for every arm: a label text may name every arm ("Ketamine or
    placebo") or none, never some of them ("Ketamine 10 mg/mL")."""
    distinctive = _arm_words(p)
    for field in ("product", "route", "storage", "caution", "sponsor", "emergency_contact"):
        words = {w.lower() for w in _WORD.findall(getattr(p.labels, field))}
        named = [a for a in p.arms if words & distinctive[a.code]]
        if named and len(named) < len(p.arms):
            which = ", ".join(f"{a.name} ({', '.join(sorted(words & distinctive[a.code]))})"
                              for a in named)
            yield (f"labels.{field}", f"names {which} but not every arm: a label must read "
                   "the same whichever arm the participant is in")


def _unique(values: Sequence[str], path: str, field: str, what: str) -> Problems:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            yield f"{path}[{i}]" + (f".{field}" if field else ""), f"duplicate {what} {value!r}"
        seen.add(value)


def _named(values: Sequence[str], path: str, field: Literal["code", "id"]) -> Problems:
    """Codes and ids must be well formed and unique among their siblings."""
    pattern, rule = _NAMES[field]
    for i, value in enumerate(values):
        if not pattern.fullmatch(value):
            yield f"{path}[{i}].{field}", f"{value!r} is not a valid {field} ({rule})"
    yield from _unique(values, path, field, field)


def _check_allocation(p: Protocol) -> Problems:
    ratio = p.allocation.ratio
    if len(ratio) != len(p.arms):
        yield "allocation.ratio", f"{len(ratio)} numbers for {len(p.arms)} arms"
    for i, part in enumerate(ratio):
        if part < 1:
            yield f"allocation.ratio[{i}]", f"must be a positive whole number (got {part})"
            return
    # The rest is the design's own rule (domain.designs), e.g. a block must hold every arm
    # in the ratio a whole number of times, or balance is lost.
    for where, what in p.allocation.design.problems():
        yield f"allocation.{where}", what


def _check_eligibility(p: Protocol) -> Problems:
    e = p.eligibility
    if e.age_max < e.age_min:
        yield "eligibility.age_max", f"{e.age_max} is below age_min {e.age_min}"
    if e.weight_max_kg <= e.weight_min_kg:
        yield "eligibility.weight_max_kg", f"{e.weight_max_kg:g} is not above weight_min_kg"
    yield from _named([c.id for c in e.criteria], "eligibility.criteria", "id")
    # An automatic check passes or fails on its own; phrased as an exclusion it would invert.
    for i, c in enumerate(e.criteria):
        if c.automatic is not None and c.kind != "inclusion":
            yield f"eligibility.criteria[{i}].kind", "an automatic check must be an inclusion"
    automatic = [c.automatic for c in e.criteria if c.automatic is not None]
    if len(automatic) != len(set(automatic)):
        yield "eligibility.criteria", "the same automatic check twice"


def _check_dosing(p: Protocol) -> Problems:
    preps = p.dosing.preparations
    if not preps:
        yield "dosing.preparations", "no preparations"
    yield from _named([prep.id for prep in preps], "dosing.preparations", "id")
    for i, prep in enumerate(preps):
        path = f"dosing.preparations[{i}]"
        for code in p.arm_codes:
            if code not in prep.products:
                yield f"{path}.products", f"no product for arm {code!r}"
        for code in prep.products:
            if code not in p.arm_codes:
                yield f"{path}.products.{code}", f"{code!r} is not an arm code"
        # A bolus is a volume per kg; an infusion a rate per kg over some hours. Not both.
        needed = ("volume_ml_per_kg",) if prep.kind == "bolus" else ("rate_ml_per_kg_h", "hours")
        for name in ("volume_ml_per_kg", "rate_ml_per_kg_h", "hours"):
            given = getattr(prep, name) is not None
            if given != (name in needed):
                verb = "missing" if not given else "not used"
                yield f"{path}.{name}", f"{verb} for kind {prep.kind!r}"


def _check_diary(d: Diary) -> Problems:
    if not d.severity_levels:
        yield "diary.severity_levels", "no levels"
    yield from _unique(d.severity_levels, "diary.severity_levels", "", "level")
    for i, level in enumerate(d.moderate_severe_levels):
        if level not in d.severity_levels:
            yield f"diary.moderate_severe_levels[{i}]", f"{level!r} is not one of severity_levels"
    for name in ("baseline_min_days", "proration_min_days"):
        if getattr(d, name) > d.window_days:
            yield f"diary.{name}", f"{getattr(d, name)} is more than window_days {d.window_days}"
    if d.baseline_min_headache_days > d.baseline_min_days:
        yield (
            "diary.baseline_min_headache_days",
            f"{d.baseline_min_headache_days} is more than baseline_min_days {d.baseline_min_days}",
        )
    yield from _check_windows(d)


def _check_windows(d: Diary) -> Problems:
    ws = d.windows
    yield from _unique([w.code for w in ws], "diary.windows", "code", "code")
    for i, w in enumerate(ws):
        path = f"diary.windows[{i}]"
        if w.end < w.start:
            yield f"{path}.end", f"{w.end} is before start {w.start}"
        if w.relative_to == "randomization" and w.end >= 0:
            yield f"{path}.end", f"{w.end} is not before randomization (day 0)"
        if w.relative_to == "infusion" and w.end > d.max_day_after_infusion:
            yield f"{path}.end", f"{w.end} is after max_day_after_infusion"
        if i == 0:
            continue
        prev = ws[i - 1]
        # Randomization comes before the infusion, so its windows come first in the file.
        if prev.relative_to == "infusion" and w.relative_to == "randomization":
            yield f"{path}.relative_to", "windows relative to randomization must come first"
        elif prev.relative_to == w.relative_to and w.start <= prev.end:
            yield f"{path}.start", f"{w.start} is not after the end of windows[{i - 1}]"
    primaries = sum(w.primary for w in ws)
    if primaries != 1:
        yield "diary.windows", f"{primaries} primary windows (need exactly one)"
    baselines = sum(w.relative_to == "randomization" for w in ws)
    if baselines != 1:
        yield "diary.windows", f"{baselines} windows relative to randomization (need one baseline)"
