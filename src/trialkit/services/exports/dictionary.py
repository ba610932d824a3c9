"""The data dictionary written beside every export: each column's type, unit, derivation
and allowed values, worded from the protocol's own rules."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from trialkit.domain.protocol import Protocol
from trialkit.domain.strata import all_strata

ARM_COLUMN: Final = "arm"
DICTIONARY_COLUMNS: Final = ("column", "type", "unit", "derivation", "allowed_values")
TRAINING_NOTICE: Final = "TRAINING - not for clinical use: every row comes from a training trial"

# What a spreadsheet takes for the start of a formula (OWASP "CSV injection").
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def escape_text(value: str) -> str:
    """A text cell a spreadsheet will show as text, never run as a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value

# The data dictionary -----------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One column as the data dictionary describes it. Only ``text`` cells are escaped."""

    name: str
    type: str  # text, integer, decimal, date, datetime
    unit: str
    derivation: str
    allowed: str = ""


def _windows_text(protocol: Protocol) -> str:
    parts = []
    for w in protocol.diary.windows:
        anchor = "randomization" if w.relative_to == "randomization" else "the infusion (day 0)"
        primary = " (primary outcome)" if w.primary else ""
        parts.append(f"{w.code} = days {w.start} to {w.end} from {anchor}{primary}")
    return "; ".join(parts)


def _headache_day_text(protocol: Protocol) -> str:
    rules = protocol.diary
    text = f"a headache lasting at least {rules.headache_day_min_hours:g} h"
    if rules.headache_day_if_acute_medication:
        text += ", or any headache treated with acute medication"
    return text


def _missing_note() -> str:
    return "empty (missing, never zero) when no day of the window is recorded"


def outcome_columns(protocol: Protocol, *, unblinded: bool) -> list[ColumnSpec]:
    """The columns of outcomes.csv, described from the protocol's own rules."""
    rules = protocol.diary
    per = f"days per {rules.window_days} days"
    decimals = f"{rules.proration_decimals} decimal{'s' if rules.proration_decimals != 1 else ''}"
    specs = [
        ColumnSpec("participant_id", "text", "", "Participant id: site code and screening number"),
        ColumnSpec("site", "text", "", "Site code", ", ".join(protocol.site_codes)),
        ColumnSpec(
            "stratum",
            "text",
            "",
            "Stratum (site and stratification levels)",
            ", ".join(s.code for s in all_strata(protocol)),
        ),
        ColumnSpec(
            "randomization_number", "text", "", "Trial-wide number given in order of randomization"
        ),
        ColumnSpec("randomized_on", "date", "",
                   "Date of randomization at the participant's site (its time zone in the "
                   "protocol), ISO 8601; day 0 of the baseline window"),
        ColumnSpec(
            "infusion_on",
            "date",
            "",
            "Date of the infusion (day 0), ISO 8601; empty before it is recorded",
        ),
        ColumnSpec(
            "status",
            "text",
            "",
            "Where the participant is at export",
            "randomized, dispensed, infused, withdrawn",
        ),
        ColumnSpec(
            "unblinded_emergency",
            "text",
            "",
            "yes if the participant's allocation was revealed by an emergency "
            "unblinding (which arm is never shown here)",
            "yes, no",
        ),
        ColumnSpec(
            "window",
            "text",
            "",
            f"Diary window: {_windows_text(protocol)}",
            ", ".join(w.code for w in rules.windows),
        ),
        ColumnSpec(
            "window_start",
            "date",
            "",
            "First calendar date of the window; empty while its anchor is not recorded",
        ),
        ColumnSpec(
            "window_end",
            "date",
            "",
            "Last calendar date of the window; empty while its anchor is not recorded",
        ),
        ColumnSpec(
            "days_expected",
            "integer",
            "days",
            "Dates of the window from consent on (the diary starts at consent) that are "
            "over at export (up to the day before the export's date at the participant's "
            "site; for a withdrawn participant up to the withdrawal date there)",
        ),
        ColumnSpec(
            "days_recorded",
            "integer",
            "days",
            "Diary days recorded in the window (current versions); one more than "
            "days_expected when the export day's diary is already recorded",
        ),
        ColumnSpec(
            "headache_days",
            "integer",
            "days",
            f"Days with {_headache_day_text(protocol)}; {_missing_note()}",
        ),
        ColumnSpec(
            "moderate_severe_days",
            "integer",
            "days",
            f"Days with a headache of peak severity "
            f"{' or '.join(rules.moderate_severe_levels)}; {_missing_note()}",
        ),
        ColumnSpec(
            "acute_medication_days",
            "integer",
            "days",
            f"Days with acute medication taken (with or without headache); {_missing_note()}",
        ),
        ColumnSpec(
            "headache_days_28",
            "decimal",
            per,
            f"headache_days x {rules.window_days} / days_recorded, rounded half up to "
            f"{decimals}, when at least {rules.proration_min_days} days of the window "
            "are recorded; empty otherwise",
        ),
        ColumnSpec(
            "baseline_headache_days_28",
            "decimal",
            per,
            f"headache_days_28 of the participant's {rules.baseline_window.code} "
            f"window: its headache days ({_headache_day_text(protocol)}, whatever the "
            f"severity) x {rules.window_days} / its days_recorded, rounded half up to "
            f"{decimals}, when at least {rules.proration_min_days} of its days are "
            "recorded; empty otherwise; repeated on each of their rows",
        ),
        ColumnSpec(
            "change_from_baseline",
            "decimal",
            per,
            "headache_days_28 - baseline_headache_days_28 (headache days in both, never "
            "moderate_severe_days); empty on the "
            f"{rules.baseline_window.code} row and when either is empty",
        ),
    ]
    return specs + ([_arm_spec(protocol)] if unblinded else [])


def diary_columns(protocol: Protocol, *, unblinded: bool) -> list[ColumnSpec]:
    """The columns of diary.csv, described from the protocol's own rules."""
    rules = protocol.diary
    none = rules.severity_levels[0]
    specs = [
        ColumnSpec("participant_id", "text", "", "Participant id: site code and screening number"),
        ColumnSpec("date", "date", "",
                   "Calendar date of the diary day, ISO 8601; never before consent (the "
                   "diary starts at consent)"),
        ColumnSpec(
            "study_day",
            "integer",
            "days",
            "Days since the infusion (day 0; negative before it); empty before the "
            "infusion is recorded",
        ),
        ColumnSpec(
            "window",
            "text",
            "",
            f"Window the date falls in ({_windows_text(protocol)}); empty if none",
            ", ".join(w.code for w in rules.windows),
        ),
        ColumnSpec("headache", "text", "", "Headache on this day", "yes, no"),
        ColumnSpec(
            "severity",
            "text",
            "",
            f"Peak severity; {none} on a day without headache",
            ", ".join(rules.severity_levels),
        ),
        ColumnSpec(
            "duration_hours",
            "decimal",
            "hours",
            "Headache duration; 0 on a day without headache",
            "0 to 24",
        ),
        ColumnSpec("acute_medication", "text", "", "Acute medication taken on this day", "yes, no"),
        ColumnSpec(
            "headache_day",
            "text",
            "",
            f"yes if the day counts as a headache day: {_headache_day_text(protocol)}",
            "yes, no",
        ),
        ColumnSpec("recorded_by", "text", "", "User who entered the current version of the day"),
        ColumnSpec(
            "recorded_at",
            "datetime",
            "UTC",
            "When the current version was entered, ISO 8601 with its UTC offset; "
            "earlier versions (corrections) are in the audit trail",
        ),
    ]
    return specs + ([_arm_spec(protocol)] if unblinded else [])


def participant_columns(protocol: Protocol) -> list[ColumnSpec]:
    """The columns of participants.csv (one row per screened participant: baseline
    covariates and the date of each stage), described from the protocol. Always blinded."""
    site_date = ("at the participant's site (its time zone in the protocol), ISO 8601")
    factors = [ColumnSpec(f.id, "text", "", f"Stratification factor: {f.name}, as recorded "
                          "at screening (its level code)",
                          ", ".join(f"{lv.code} ({lv.name})" for lv in f.levels))
               for f in protocol.stratification]
    e = protocol.eligibility
    criteria = ", ".join(c.id for c in e.criteria)
    return [
        ColumnSpec("participant_id", "text", "", "Participant id: site code and screening number"),
        ColumnSpec("site", "text", "", "Site code", ", ".join(protocol.site_codes)),
        ColumnSpec("stratum", "text", "", "Stratum (site and stratification levels)",
                   ", ".join(s.code for s in all_strata(protocol))),
        *factors,
        ColumnSpec("age", "integer", "years", "Age at screening"),
        ColumnSpec("sex", "text", "", "Sex as recorded at screening", "F, M"),
        ColumnSpec("weight_kg", "decimal", "kg", "Body weight at screening (the dose is "
                   "weight based)"),
        ColumnSpec("eligible", "text", "", "yes if every eligibility criterion was met at "
                   "screening", "yes, no"),
        ColumnSpec("failed_criteria", "text", "", "Eligibility criteria not met, by id, "
                   "separated by ';' (empty when eligible)", criteria),
        ColumnSpec("status", "text", "", "Where the participant is at export",
                   "ineligible, eligible, consented, randomized, dispensed, infused, withdrawn"),
        ColumnSpec("unblinded_emergency", "text", "",
                   "yes if the participant's allocation was revealed by an emergency "
                   "unblinding (which arm is never shown here)", "yes, no"),
        ColumnSpec("screened_on", "date", "", f"Date of screening {site_date}"),
        ColumnSpec("consented_on", "date", "", "Date of consent, ISO 8601 (the diary starts "
                   "here); empty without consent"),
        ColumnSpec("consent_form_version", "text", "", "Version of the consent form signed; "
                   "empty without consent", ", ".join(protocol.consent.form_versions)),
        ColumnSpec("randomization_number", "text", "",
                   "Trial-wide number given in order of randomization; empty if not randomized"),
        ColumnSpec("randomized_on", "date", "", f"Date of randomization {site_date}; empty if "
                   "not randomized"),
        ColumnSpec("dispensed_on", "date", "", f"Date the pharmacy first recorded the "
                   f"preparation of the infusion {site_date} (every arm is prepared alike); "
                   "empty before"),
        ColumnSpec("planned_infusion_on", "date", "", "Date the infusion is scheduled for, "
                   "ISO 8601; empty when none is scheduled"),
        ColumnSpec("infusion_on", "date", "", "Date of the infusion (day 0), ISO 8601; empty "
                   "before it is recorded"),
        ColumnSpec("withdrawn_on", "date", "", f"Date of withdrawal {site_date}; empty while "
                   "in the trial"),
        ColumnSpec("withdrawal_reason", "text", "", "Reason for withdrawal as the coordinator "
                   "recorded it; empty while in the trial"),
    ]


def _arm_spec(protocol: Protocol) -> ColumnSpec:
    return ColumnSpec(
        ARM_COLUMN,
        "text",
        "",
        "Allocated arm, from the participant's sealed envelope (unblinded export "
        "only, after database lock); empty for a participant not randomized",
        ", ".join(f"{a.code} ({a.name})" for a in protocol.arms),
    )


def dictionary_rows(specs: Sequence[ColumnSpec], training: bool) -> list[list[str]]:
    rows = [list(DICTIONARY_COLUMNS)]
    if training:
        rows.append(["TRAINING", "", "", TRAINING_NOTICE, ""])
    rows += [
        [escape_text(v) for v in (s.name, s.type, s.unit, s.derivation, s.allowed)] for s in specs
    ]
    return rows
