"""The search index's database objects that the models do not declare (migration 0013): on SQLite the FTS5
table inbound_search with its shadow tables, on PostgreSQL the generated column search_vector and its GIN
index. Their names, for the search query and for comparing the migrated schema with the models."""

from __future__ import annotations

FTS_TABLE = "inbound_search"
VECTOR_COLUMN = "search_vector"
VECTOR_INDEX = "ix_inbound_message_search"


def include_object(obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    """Alembic's include_object: False for the search index's objects, which the database keeps itself."""
    if type_ == "table":
        return not (name == FTS_TABLE or (name or "").startswith(FTS_TABLE + "_"))
    if type_ == "column":
        return not (name == VECTOR_COLUMN and getattr(getattr(obj, "table", None), "name", None) == "inbound_message")
    if type_ == "index":
        return name != VECTOR_INDEX
    return True
