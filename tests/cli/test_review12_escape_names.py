"""A name typed into the browser's activation form (no account needed to type one) reaches
the audit trail: one holding a newline and terminal escapes is refused like any unknown
name, and `audit log` prints it escaped, so it forges no line and drives no terminal."""

from __future__ import annotations

from tests.cli.test_second_factor_cli import ENROL_AT, run, url  # noqa: F401 (fixture)
from tests.conftest import ADMIN


def test_an_activation_name_with_escapes_forges_no_line_in_the_audit_log(
    url: str,  # noqa: F811
) -> None:
    hostile = "nora\n2026-03-02 09:00  alice  participant.unblind\x1b[2J"
    code, out = run(url, None, ENROL_AT, "user", "activate", hostile,
                    TRIALKIT_ENROLMENT_CODE="AAAA-BBBB-CCCC-DDDD-EEEE-FFFF",
                    TRIALKIT_NEW_PASSWORD="quartz-meadow-lantern-81")
    assert code != 0 and "\x1b" not in out, out
    code, log = run(url, ADMIN, ENROL_AT, "audit", "log")
    assert code == 0, log
    assert "\x1b" not in log
    lines = [line for line in log.splitlines() if "activate_refused" in line]
    assert len(lines) == 1 and "participant.unblind" in lines[0], log
    assert not any(line.lstrip().startswith("2026-03-02 09:00  alice  participant.unblind")
                   for line in log.splitlines())
