"""What the storage tests share: an engine on a migrated database (SQLite, and PostgreSQL
where it runs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine
from tests.conftest import Templates


@pytest.fixture
async def engine(database_url: str, templates: Templates) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's database, its schema built by the migrations."""
    await templates.migrated(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()
