"""Protocol files: the shipped KetHead file loads with its facts, and every bad file is refused
with one line that names the file, the field and what is wrong."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from trialkit.domain.errors import ProtocolFileError
from trialkit.domain.protocol import (
    LoadedProtocol,
    load_protocol,
    parse_protocol,
    protocol_from_text,
)

KETHEAD = Path(__file__).resolve().parents[2] / "protocols" / "kethead.toml"
TEXT = KETHEAD.read_text(encoding="utf-8")


def variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """The real KetHead file with each (old, new) edit applied once, written to tmp_path."""
    text = TEXT
    for old, new in edits:
        assert old in text, f"test edit does not apply: {old!r}"
        text = text.replace(old, new, 1)
    path = tmp_path / "variant.toml"
    path.write_text(text, encoding="utf-8")
    return path


def cut(start: str, end: str, insert: str = "") -> tuple[str, str]:
    """An edit that replaces everything from ``start`` up to (not including) ``end``."""
    match = re.search(re.escape(start) + r".*?(?=" + re.escape(end) + ")", TEXT, re.DOTALL)
    assert match, f"test cut does not apply: {start!r}"
    return match.group(0), insert


def refusal(path: Path) -> str:
    """The message of loading ``path``, checked to be one clean line."""
    with pytest.raises(ProtocolFileError) as caught:
        load_protocol(path)
    message = str(caught.value)
    assert caught.value.exit_code == 2
    assert "\n" not in message
    assert "pydantic" not in message.lower()
    assert "http" not in message and "For further information" not in message
    return message


@pytest.fixture(scope="module")
def kethead() -> LoadedProtocol:
    return load_protocol(KETHEAD)


# --- the shipped file -------------------------------------------------------------------------


def test_kethead_is_two_sites_by_two_headache_types_at_one_to_one(kethead: LoadedProtocol) -> None:
    p = kethead.protocol
    assert p.trial.id == "KETHEAD"
    assert p.trial.registry == "NCT05306899"
    assert p.arm_codes == ("KET", "PLA")
    assert p.allocation.ratio == (1, 1)
    assert p.allocation.block_sizes == (4, 6)
    assert p.allocation.stratify_by_site
    assert p.site_codes == ("TWH", "SHS")
    assert [s.target for s in p.sites] == [28, 28]
    assert [f.id for f in p.stratification] == ["headache_type"]
    assert [lv.code for lv in p.stratification[0].levels] == ["CM", "CDH"]


def test_kethead_windows_run_in_order_with_d1_28_primary(kethead: LoadedProtocol) -> None:
    d = kethead.protocol.diary
    assert [(w.code, w.start, w.end) for w in d.windows] == [
        ("BASELINE", -28, -1),
        ("D1-28", 1, 28),
        ("D29-56", 29, 56),
        ("D57-84", 57, 84),
    ]
    assert d.primary_window.code == "D1-28"
    assert d.baseline_window.relative_to == "randomization"
    assert (d.proration_min_days, d.window_days) == (21, 28)
    assert (d.baseline_min_days, d.baseline_min_headache_days) == (24, 15)
    assert d.headache_day_min_hours == 4 and d.headache_day_if_acute_medication


def test_kethead_eligibility_has_one_automatic_age_check_and_yes_no_questions(
    kethead: LoadedProtocol,
) -> None:
    e = kethead.protocol.eligibility
    assert (e.age_min, e.age_max, e.weight_min_kg, e.weight_max_kg) == (18, 75, 30, 250)
    automatic = [c for c in e.criteria if c.automatic]
    assert [(c.id, c.kind, c.automatic) for c in automatic] == [("I1_age", "inclusion", "age")]
    kinds = [c.kind for c in e.criteria]
    assert kinds.count("inclusion") == 3 and kinds.count("exclusion") == 16


def test_kethead_dosing_volumes_belong_to_preparations_not_arms(kethead: LoadedProtocol) -> None:
    dosing = kethead.protocol.dosing
    bolus, infusion = dosing.preparations
    assert (bolus.kind, bolus.volume_ml_per_kg) == ("bolus", 0.1)
    assert (infusion.kind, infusion.rate_ml_per_kg_h, infusion.hours) == ("infusion", 0.5, 6)
    for prep in dosing.preparations:
        assert set(prep.products) == {"KET", "PLA"}
    assert "10 mg/mL" in bolus.products["KET"] and "2 mg/mL" in infusion.products["KET"]
    assert dosing.expiry_hours == 24 and dosing.round_ml == 0.1
    assert len(dosing.concomitant) == 4


def test_kethead_labels_and_screen_lock(kethead: LoadedProtocol) -> None:
    p = kethead.protocol
    assert p.labels.product == "Ketamine or placebo"
    assert p.labels.caution == "For clinical trial use only"
    assert p.consent.form_versions == ("2.0",)
    assert p.ui.idle_lock_minutes == 5


def test_site_lookup_by_code(kethead: LoadedProtocol) -> None:
    site = kethead.protocol.site("TWH")
    assert site is not None and site.name == "Toronto Western Hospital"
    assert kethead.protocol.site("XYZ") is None


def test_loaded_protocol_keeps_exact_text_and_its_sha256(kethead: LoadedProtocol) -> None:
    assert kethead.text == TEXT
    assert kethead.sha256 == hashlib.sha256(KETHEAD.read_bytes()).hexdigest()
    assert kethead.source == str(KETHEAD)


def test_stored_text_reloads_with_the_same_hash(kethead: LoadedProtocol) -> None:
    again = protocol_from_text(kethead.text)
    assert again.sha256 == kethead.sha256
    assert again.protocol == kethead.protocol
    assert again.source == "stored protocol"


def test_a_loaded_protocol_cannot_be_changed(kethead: LoadedProtocol) -> None:
    with pytest.raises(ValidationError):
        kethead.protocol.ui.idle_lock_minutes = 1  # type: ignore[misc]


def test_two_to_one_ratio_with_blocks_of_three_and_six_loads(tmp_path: Path) -> None:
    path = variant(tmp_path, ("ratio = [1, 1]", "ratio = [2, 1]"), ("[4, 6]", "[3, 6]"))
    allocation = load_protocol(path).protocol.allocation
    assert (allocation.ratio, allocation.block_sizes) == ((2, 1), (3, 6))


@given(
    ratio=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    times=st.integers(1, 4),
    off=st.integers(1, 2),
)
def test_block_sizes_must_be_whole_multiples_of_the_ratio(
    ratio: tuple[int, int], times: int, off: int
) -> None:
    total = sum(ratio)
    good = TEXT.replace("ratio = [1, 1]", f"ratio = [{ratio[0]}, {ratio[1]}]").replace(
        "block_sizes = [4, 6]", f"block_sizes = [{total * times}]"
    )
    assert parse_protocol(good, "p.toml").allocation.block_sizes == (total * times,)
    size = total * times + off
    if size % total:
        with pytest.raises(ProtocolFileError, match=r"block_sizes\[0\]: .* is not a multiple"):
            parse_protocol(good.replace(f"[{total * times}]", f"[{size}]"), "p.toml")


# --- bad files: one line naming file and field ------------------------------------------------

SITE_TARGET = "target = 28  # ours: 56 participants in all, split evenly"

BAD_FILES = [
    # pydantic-level: missing, unknown, wrong type
    ("missing_title", [cut("title = ", "version =")], "trial.title: missing"),
    ("missing_section", [cut("[consent]", "# Volumes")], "consent: missing"),
    (
        "unknown_site_field",
        [(SITE_TARGET, 'target = 28\ncolour = "red"')],
        "sites[0].colour: unknown field",
    ),
    (
        "target_as_text",
        [(SITE_TARGET, 'target = "28"')],
        "sites[0].target: should be a valid integer (got '28')",
    ),
    (
        "target_zero",
        [(SITE_TARGET, "target = 0")],
        "sites[0].target: should be greater than 0 (got 0)",
    ),
    (
        "bool_as_text",
        [("stratify_by_site = true", 'stratify_by_site = "yes"')],
        "allocation.stratify_by_site: should be a valid boolean (got 'yes')",
    ),
    (
        "blocks_not_array",
        [("block_sizes = [4, 6]", "block_sizes = 4")],
        "allocation.block_sizes: should be an array (got 4)",
    ),
    (
        "unknown_kind",
        [('kind = "bolus"', 'kind = "push"')],
        "dosing.preparations[0].kind: should be 'bolus' or 'infusion' (got 'push')",
    ),
    (
        "empty_name",
        [('name = "Sinai Health System"', 'name = ""')],
        "sites[1].name: string should have at least 1 character (got '')",
    ),
    # arms and allocation
    (
        "one_arm",
        [cut('[[arms]]\ncode = "PLA"', "[allocation]")],
        "arms: a controlled trial needs at least 2 arms (got 1)",
    ),
    ("duplicate_arm", [('code = "PLA"', 'code = "KET"')], "arms[1].code: duplicate code 'KET'"),
    (
        "ratio_length",
        [("ratio = [1, 1]", "ratio = [1, 1, 1]")],
        "allocation.ratio: 3 numbers for 2 arms",
    ),
    (
        "ratio_zero",
        [("ratio = [1, 1]", "ratio = [1, 0]")],
        "allocation.ratio[1]: must be a positive whole number (got 0)",
    ),
    (
        "block_not_multiple",
        [("block_sizes = [4, 6]", "block_sizes = [4, 5]")],
        "allocation.block_sizes[1]: 5 is not a multiple of 2 (the ratio 1:1)",
    ),
    (
        "no_blocks",
        [("block_sizes = [4, 6]", "block_sizes = []")],
        "allocation.block_sizes: no block sizes",
    ),
    # sites and strata
    ("duplicate_site", [('code = "SHS"', 'code = "TWH"')], "sites[1].code: duplicate code 'TWH'"),
    (
        "site_without_time_zone",
        [('timezone = "America/Toronto"\n', "")],
        "sites[0].timezone: missing",
    ),
    (
        "unknown_time_zone",
        [('timezone = "America/Toronto"', 'timezone = "America/Toronot"')],
        "sites[0].timezone: 'America/Toronot' is not a known time zone "
        "(an IANA name such as 'America/Toronto')",
    ),
    (
        "time_zone_as_a_path",
        [('timezone = "America/Toronto"', 'timezone = "../../etc/passwd"')],
        "sites[0].timezone: '../../etc/passwd' is not an IANA time zone name "
        "(e.g. 'America/Toronto')",
    ),
    (
        "time_zone_as_an_offset",
        [('name = "Sinai Health System"\ntarget = 28  # ours\ntimezone = "America/Toronto"',
          'name = "Sinai Health System"\ntarget = 28  # ours\ntimezone = "-05:00"')],
        "sites[1].timezone: '-05:00' is not a known time zone "
        "(an IANA name such as 'America/Toronto')",
    ),
    (
        "lowercase_site",
        [('code = "TWH"', 'code = "twh"')],
        "sites[0].code: 'twh' is not a valid code (a capital, then up to 9 capitals or digits)",
    ),
    (
        "duplicate_level",
        [('code = "CDH"', 'code = "CM"')],
        "stratification[0].levels[1].code: duplicate code 'CM'",
    ),
    (
        "no_levels",
        [cut("[[stratification.levels]]", "[eligibility]", "levels = []\n\n")],
        "stratification[0].levels: no levels",
    ),
    (
        "factor_named_like_a_participant_field",
        [('id = "headache_type"', 'id = "weight_kg"')],
        "stratification[0].id: 'weight_kg' is the name of a participant's own field: a "
        "factor needs a name of its own (it is a column of the participants export beside "
        "them)",
    ),
    # eligibility
    (
        "ages_reversed",
        [("age_max = 75", "age_max = 17")],
        "eligibility.age_max: 17 is below age_min 18",
    ),
    (
        "weights_equal",
        [("weight_max_kg = 250", "weight_max_kg = 30")],
        "eligibility.weight_max_kg: 30 is not above weight_min_kg",
    ),
    (
        "duplicate_criterion",
        [('id = "E09_glaucoma"', 'id = "E01_pregnancy"')],
        "eligibility.criteria[11].id: duplicate id 'E01_pregnancy'",
    ),
    (
        "automatic_exclusion",
        [('kind = "inclusion"\ntext = "Age', 'kind = "exclusion"\ntext = "Age')],
        "eligibility.criteria[0].kind: an automatic check must be an inclusion",
    ),
    # consent
    (
        "no_consent_form",
        [('form_versions = ["2.0"]', "form_versions = []")],
        "consent.form_versions: no form versions",
    ),
    # dosing
    (
        "product_missing_for_arm",
        [('PLA = "Sodium chloride 0.9 %"', "")],
        "dosing.preparations[0].products: no product for arm 'PLA'",
    ),
    (
        "product_for_unknown_arm",
        [('KET = "Ketamine 10 mg/mL (1 mg/kg)"', 'KET = "Ketamine 10 mg/mL"\nXYZ = "Water"')],
        "dosing.preparations[0].products.XYZ: 'XYZ' is not an arm code",
    ),
    (
        "infusion_without_hours",
        [("hours = 6\n", "")],
        "dosing.preparations[1].hours: missing for kind 'infusion'",
    ),
    (
        "bolus_with_rate",
        [("volume_ml_per_kg = 0.1", "volume_ml_per_kg = 0.1\nrate_ml_per_kg_h = 0.5")],
        "dosing.preparations[0].rate_ml_per_kg_h: not used for kind 'bolus'",
    ),
    # diary
    (
        "moderate_not_a_level",
        [('["moderate", "severe"]', '["moderate", "extreme"]')],
        "diary.moderate_severe_levels[1]: 'extreme' is not one of severity_levels",
    ),
    (
        "proration_beyond_window",
        [("proration_min_days = 21", "proration_min_days = 29")],
        "diary.proration_min_days: 29 is more than window_days 28",
    ),
    (
        "baseline_gate_beyond_window",
        [("baseline_min_days = 24", "baseline_min_days = 29")],
        "diary.baseline_min_days: 29 is more than window_days 28",
    ),
    (
        "windows_overlap",
        [("start = 29", "start = 28")],
        "diary.windows[2].start: 28 is not after the end of windows[1]",
    ),
    (
        "window_reversed",
        [("start = 57", "start = 85")],
        "diary.windows[3].end: 84 is before start 85",
    ),
    (
        "window_past_follow_up",
        [("max_day_after_infusion = 84", "max_day_after_infusion = 80")],
        "diary.windows[3].end: 84 is after max_day_after_infusion",
    ),
    (
        "duplicate_window",
        [('code = "D57-84"', 'code = "D29-56"')],
        "diary.windows[3].code: duplicate code 'D29-56'",
    ),
    (
        "no_primary",
        [("primary = true\n", "")],
        "diary.windows: 0 primary windows (need exactly one)",
    ),
    (
        "two_primaries",
        [("end = 56\n", "end = 56\nprimary = true\n")],
        "diary.windows: 2 primary windows (need exactly one)",
    ),
    (
        "baseline_after_infusion",
        [
            cut('[[diary.windows]]\ncode = "BASELINE"', '[[diary.windows]]\ncode = "D1-28"'),
            (
                "# Identical",
                '[[diary.windows]]\ncode = "BASELINE"\nstart = -28\nend = -1\n'
                'relative_to = "randomization"\n\n# Identical',
            ),
        ],
        "diary.windows[3].relative_to: windows relative to randomization must come first",
    ),
    # ui
    (
        "idle_lock_zero",
        [("idle_lock_minutes = 5", "idle_lock_minutes = 0")],
        "ui.idle_lock_minutes: must be at least 1 (got 0)",
    ),
]


@pytest.mark.parametrize(
    ("edits", "expected"), [(e, m) for _, e, m in BAD_FILES], ids=[n for n, _, _ in BAD_FILES]
)
def test_bad_file_is_refused_naming_file_and_field(
    tmp_path: Path, edits: list[tuple[str, str]], expected: str
) -> None:
    path = variant(tmp_path, *edits)
    assert refusal(path) == f"{path}: {expected}"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = variant(tmp_path, ("ratio = [1, 1]", "ratio = [1, 1"))
    message = refusal(path)
    assert message.startswith(f"{path}: not valid TOML: ")
    assert "line" in message


def test_missing_file_cannot_be_read(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert refusal(path) == f"{path}: cannot read: No such file or directory"


def test_directory_cannot_be_read(tmp_path: Path) -> None:
    assert refusal(tmp_path).startswith(f"{tmp_path}: cannot read: ")


def test_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(TEXT.encode("utf-8").replace("°".encode(), b"\xb0"))
    assert re.fullmatch(re.escape(f"{path}: not UTF-8 text (byte ") + r"\d+\)", refusal(path))


def test_stored_text_problems_name_their_source() -> None:
    with pytest.raises(ProtocolFileError) as caught:
        protocol_from_text(TEXT.replace("idle_lock_minutes = 5", "idle_lock_minutes = 0"))
    assert str(caught.value) == "stored protocol: ui.idle_lock_minutes: must be at least 1 (got 0)"


def test_kethead_sites_are_both_in_toronto(kethead: LoadedProtocol) -> None:
    # Both KetHead hospitals are in Toronto (kethead.md); the zone names the law, not an offset.
    assert [s.timezone for s in kethead.protocol.sites] == ["America/Toronto"] * 2
    assert kethead.protocol.trial_time.name == "America/Toronto"


def test_a_stored_protocol_from_before_time_zones_still_loads_on_utc() -> None:
    # Databases created before sites had a zone hold protocol text without one: that text is
    # hashed and never rewritten, so it loads as it ran, on UTC. A protocol *file* must say.
    old = TEXT.replace('timezone = "America/Toronto"\n', "")
    assert "timezone" not in old
    stored = protocol_from_text(old, stored=True)
    assert [s.timezone for s in stored.protocol.sites] == ["UTC", "UTC"]
    assert stored.sha256 == hashlib.sha256(old.encode("utf-8")).hexdigest()
    missing = r"^stored protocol: sites\[0\]\.timezone: missing$"
    with pytest.raises(ProtocolFileError, match=missing):
        protocol_from_text(old)


def test_a_stored_protocol_keeps_the_zones_it_names() -> None:
    text = TEXT.replace('timezone = "America/Toronto"', 'timezone = "Europe/Paris"', 1)
    sites = protocol_from_text(text, stored=True).protocol.sites
    assert [s.timezone for s in sites] == ["Europe/Paris", "America/Toronto"]


def test_sites_in_different_zones_have_no_one_local_time() -> None:
    text = TEXT.replace('timezone = "America/Toronto"', 'timezone = "America/Vancouver"', 1)
    protocol = parse_protocol(text, "p.toml")
    assert protocol.site_time("TWH").name == "America/Vancouver"
    assert protocol.site_time("SHS").name == "America/Toronto"
    assert protocol.trial_time.name == "UTC"
