"""Alembic environment: runs on the engine the caller hands over (models.db.upgrade)."""

from alembic import context
from sqlmodel import SQLModel

import models  # noqa: F401  - registers the tables on SQLModel.metadata
from models.search_index import include_object

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=SQLModel.metadata,
                      render_as_batch=connection.dialect.name == "sqlite", include_object=include_object)
    with context.begin_transaction():
        context.run_migrations()
