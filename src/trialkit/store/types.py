"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp. SQLite has no zone: we store UTC and give the
    zone back on read, so an audit time never silently becomes naive local time."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: trialkit stores UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_document() -> TypeEngine[Any]:
    """A JSON document: ``jsonb`` on PostgreSQL (compared and grouped by value), JSON text
    on SQLite. A Python ``None`` is SQL NULL, never the JSON ``null``. What is hashed or
    signed is never read back from here as bytes: the audit trail keeps its canonical text
    (``audit_event.before_json``/``after_json`` stay ``Text``)."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


class JSONText(TypeDecorator[str]):
    """A JSON document stored as JSON (``jsonb`` on PostgreSQL) that the code reads and writes
    as its canonical text (keys sorted, no spaces): a wrapped key's KDF parameters, which
    ``domain.key_wrap`` writes and parses as that text. Writing text that is not JSON fails
    before it reaches the database."""

    impl = JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(json_document())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
