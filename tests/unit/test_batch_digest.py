"""A diary batch's digest as ``audit verify`` computes it while the rows stream past: each
row written as the canonical JSON the batch's event recorded (RFC 8259 text, keys sorted,
no spaces, UTF-8 kept), and the recorded digest saying how many rows the batch holds."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialkit.services.diary.audit_snapshots import (
    batch_row_text,
    batch_rows,
    recorded_diary_digest,
)


def _json_text(row: tuple[object, ...]) -> str:
    # the canonical form by the standard library's own options, not by trialkit's encoder
    return json.dumps(list(row), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize("row", [
    ("TWH-001", "2026-03-02", True, "moderate", 4.5, False),
    ("SHS-\u00e9\u4e2d", "2026-03-02", False, "none", 0.0, True),
    ('a"b\\c', "d\ne\u2028", False, "sev\u00a0", 1e-7, False),
    ("x", "y", True, "severe", 24.0, True),
    ("x", "y", True, "severe", float("nan"), True),  # not finite: the generic encoder
    ("x", "y", 1, "severe", 2, 0),  # not the expected types: the generic encoder
])
def test_a_row_is_written_as_its_canonical_json(row: tuple[object, ...]) -> None:
    assert batch_row_text(row) == _json_text(row)  # type: ignore[arg-type]


@given(st.text(), st.text(), st.booleans(), st.text(),
       st.floats(allow_nan=False, allow_infinity=False), st.booleans())
def test_any_row_is_written_as_its_canonical_json(
    pid: str, day: str, headache: bool, severity: str, hours: float, acute: bool,
) -> None:
    row = (pid, day, headache, severity, hours, acute)
    assert batch_row_text(row) == _json_text(row)
    assert json.loads(batch_row_text(row)) == list(row) or math.isnan(hours)


def test_a_recorded_batch_says_how_many_rows_it_holds() -> None:
    after = json.dumps({"recorded_by": ["cora"], "recorded_at": ["2026-03-02T10:00:00+00:00"],
                        "rows": [["P1", "2026-03-01", False, "none", 0.0, False],
                                 ["P1", "2026-03-02", True, "mild", 2.0, True]]})
    assert batch_rows(recorded_diary_digest("batch/0123456789abcdef", after)) == 2
    # a day entered on its own is no batch; nor is a batch whose state is not a document
    assert batch_rows(recorded_diary_digest("P1/2026-03-01", after)) is None
    assert batch_rows(recorded_diary_digest("batch/0123456789abcdef", "[1]")) is None
