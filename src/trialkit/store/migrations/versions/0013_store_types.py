"""Store types: a participant's consent, planned and actual infusion dates and a diary
entry's day become ``DATE``; the JSON documents (a stratum's levels, a participant's
factors, answers and failed criteria, a list segment's design) become JSON (``jsonb`` on
PostgreSQL). Timestamps were already timezone-aware (``timestamptz`` on PostgreSQL; UTC,
with the zone given back on read, on SQLite).

The audit trail's ``before_json``/``after_json`` stay text: they are the canonical bytes
its hashes and signatures cover, and the trail is append-only.

Every stored date must be an ISO date (YYYY-MM-DD) and every document valid JSON before
anything changes: PostgreSQL would read "05/12/2026" by its DateStyle, and SQLite would
keep it and fail at the first read. PostgreSQL moves the data with USING casts; SQLite
rebuilds each table (batch mode) and copies the text as it is (SQLite stores a date as ISO
text and JSON as text), which needs its foreign keys off for the transaction
(``store.schema.migrating``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from trialkit.domain.errors import InvalidInput

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

KEYS = {"participant": "id", "diary_entry": "id", "stratum": "code", "allocation_list": "id"}
DATES = {
    "participant": ("consent_date", "infusion_date", "planned_infusion_date"),
    "diary_entry": ("day",),
}
DOCUMENTS = {
    "stratum": ("levels_json",),
    "participant": ("factors_json", "answers_json", "failed_json"),
    "allocation_list": ("design",),
}
NULLABLE = {"consent_date", "infusion_date", "planned_infusion_date", "design"}
SHOWN = 5  # bad values named in the refusal; the rest counted


def _is_date(value: str) -> bool:
    try:
        return date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _refuse_bad_values(conn: sa.Connection) -> None:
    """Name the values that are not what this revision's types hold, before changing any."""
    bad: list[str] = []
    for columns, ok, what in ((DATES, _is_date, "a date as YYYY-MM-DD"),
                              (DOCUMENTS, _is_json, "a JSON document")):
        for table, names in columns.items():
            key = KEYS[table]
            for name in names:
                rows = conn.execute(sa.text(
                    f"SELECT {key}, {name} FROM {table} WHERE {name} IS NOT NULL"))
                bad += [f"{table}.{name} of {k} is {v!r}, not {what}"
                        for k, v in rows if not ok(v)]
    if bad:
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InvalidInput("the upgrade to schema 0013 changed nothing: "
                           + "; ".join(bad[:SHOWN]) + more + ". Correct them and upgrade again")


def _require_sqlite_foreign_keys_off(conn: sa.Connection) -> None:
    if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("schema 0013 rebuilds tables: run it through store.schema.migrating "
                           "(SQLite foreign keys off for the transaction)")


def _alter(date_type: sa.types.TypeEngine[Any], doc_type: sa.types.TypeEngine[Any],
           old_date: sa.types.TypeEngine[Any], old_doc: sa.types.TypeEngine[Any],
           using_date: str, using_doc: str) -> None:
    conn = op.get_bind()
    tables = dict.fromkeys([*DATES, *DOCUMENTS])
    for table in tables:
        changes = [(n, date_type, old_date, using_date) for n in DATES.get(table, ())]
        changes += [(n, doc_type, old_doc, using_doc) for n in DOCUMENTS.get(table, ())]
        if conn.dialect.name == "postgresql":
            for name, new, old, using in changes:
                op.alter_column(table, name, type_=new, existing_type=old,
                                existing_nullable=name in NULLABLE,
                                postgresql_using=using.format(name))
            continue
        # The rebuilt table takes each column's new type from reflect_args, and its rows
        # are copied as they are: batch's alter_column would copy through CAST(x AS DATE),
        # which SQLite reads as a number ('2026-03-05' becomes 2026).
        _require_sqlite_foreign_keys_off(conn)
        with op.batch_alter_table(table, recreate="always", reflect_args=tuple(
                sa.Column(name, new, nullable=name in NULLABLE) for name, new, _, _ in changes)):
            pass


def upgrade() -> None:
    _refuse_bad_values(op.get_bind())
    _alter(sa.Date(), sa.JSON().with_variant(JSONB(), "postgresql"), sa.String(10), sa.Text(),
           "{}::date", "{}::jsonb")


def downgrade() -> None:
    _alter(sa.String(10), sa.Text(), sa.Date(), sa.JSON().with_variant(JSONB(), "postgresql"),
           "to_char({}, 'YYYY-MM-DD')", "{}::text")
