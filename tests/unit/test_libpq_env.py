"""pg_dump and pg_restore connect where trialkit's own connection does: libpq takes what the
connection string gives and, for what it leaves out, its environment variables
(https://www.postgresql.org/docs/current/libpq-envars.html). A site that sets PGPORT (or
PGPASSFILE, or PGSSLROOTCERT) and a URL without it must not have its backup taken from
another server on the default port."""

from __future__ import annotations

import pytest

from trialkit.store.backup import libpq_env


def test_what_the_url_leaves_out_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPORT", "55432")
    monkeypatch.setenv("PGPASSFILE", "/etc/trialkit/pgpass")
    env = libpq_env("postgresql://trialkit_app@db.example.org/kethead"
                    "?sslmode=verify-full&sslrootcert=/etc/trialkit/db-ca.crt")
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == (
        "db.example.org", "55432", "trialkit_app", "kethead")
    assert (env["PGSSLMODE"], env["PGSSLROOTCERT"], env["PGPASSFILE"]) == (
        "verify-full", "/etc/trialkit/db-ca.crt", "/etc/trialkit/pgpass")


def test_what_the_url_gives_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPORT", "55432")
    monkeypatch.setenv("PGHOST", "elsewhere.example.org")
    monkeypatch.setenv("PGDATABASE", "other")
    monkeypatch.setenv("PGSSLMODE", "disable")
    env = libpq_env("postgresql://trialkit_app@db.example.org:5433/kethead?sslmode=verify-full")
    assert (env["PGHOST"], env["PGPORT"], env["PGDATABASE"], env["PGSSLMODE"]) == (
        "db.example.org", "5433", "kethead", "verify-full")
