"""Store types, the rest: a user's wrapped keys' KDF parameters (``app_user.key_kdf``,
``signing_kdf``, ``totp_kdf``) become JSON (``jsonb`` on PostgreSQL), as migration 0013 did
for the other JSON documents. The code still reads them as canonical JSON text
(``store.types.JSONText``); the wrapped keys themselves do not change, so every password
unwraps what it did.

Every stored value must be JSON before anything changes (the upgrade names those that are
not). PostgreSQL moves the data with a USING cast; SQLite rebuilds the table (batch mode)
and copies the text as it is, which needs its foreign keys off for the transaction
(``store.schema.migrating``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from trialkit.domain.errors import InvalidInput

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TABLE = "app_user"
COLUMNS = ("key_kdf", "signing_kdf", "totp_kdf")
SHOWN = 5  # bad values named in the refusal; the rest counted


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def _refuse_bad_values(conn: sa.Connection) -> None:
    bad: list[str] = []
    for name in COLUMNS:
        rows = conn.execute(sa.text(
            f"SELECT name, {name} FROM {TABLE} WHERE {name} IS NOT NULL"))
        bad += [f"{TABLE}.{name} of {k} is {v!r}, not a JSON document"
                for k, v in rows if not _is_json(v)]
    if bad:
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InvalidInput("the upgrade to schema 0014 changed nothing: "
                           + "; ".join(bad[:SHOWN]) + more + ". Correct them and upgrade again")


def _alter(new: sa.types.TypeEngine[Any], old: sa.types.TypeEngine[Any], using: str) -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for name in COLUMNS:
            op.alter_column(TABLE, name, type_=new, existing_type=old, existing_nullable=True,
                            postgresql_using=using.format(name))
        return
    # The rebuilt table takes the new types from reflect_args and copies the rows as they
    # are (SQLite keeps JSON as text).
    if conn.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("schema 0014 rebuilds a table: run it through store.schema.migrating "
                           "(SQLite foreign keys off for the transaction)")
    with op.batch_alter_table(TABLE, recreate="always", reflect_args=tuple(
            sa.Column(name, new, nullable=True) for name in COLUMNS)):
        pass


def upgrade() -> None:
    _refuse_bad_values(op.get_bind())
    _alter(sa.JSON().with_variant(JSONB(), "postgresql"), sa.Text(), "{}::jsonb")


def downgrade() -> None:
    # Back to JSON text (on PostgreSQL jsonb's own spacing), which 0013's code parses.
    _alter(sa.Text(), sa.JSON().with_variant(JSONB(), "postgresql"), "{}::text")
