"""Applying the Alembic migrations: `python -m storage.migrate` (DATABASE_URL from the
settings), or `migrate_apart(url)`, which the bot calls on start."""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the schema to the newest migration (blocking; call before the event loop or in a
    thread)."""
    from alembic import command

    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")


def migrate_apart(url: str) -> str | None:
    """Migrate in a child process (forked, so nothing is imported twice): Alembic's ~10 MB
    never stay in the running bot. Returns the error, if any, as one line."""
    return begin_migration(url)()


def head_revision() -> str | None:
    """The newest migration's revision, read from the files (no Alembic import)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        revision = re.search(r'^revision: str = "([^"]+)"', text, re.M)
        down = re.search(r'^down_revision: str \| None = (?:"([^"]+)"|None)', text, re.M)
        if revision:
            revisions[revision.group(1)] = down.group(1) if down else None
    heads = set(revisions) - {d for d in revisions.values() if d}
    return heads.pop() if len(heads) == 1 else None


def sqlite_is_current(url: str) -> bool:
    """Whether a SQLite database is at the newest migration already (a restart): then no
    child is needed. Read with the standard library, in a moment."""
    if not url.startswith("sqlite"):
        return False
    path = url.split("///", 1)[-1]
    if not path or path == ":memory:" or not Path(path).expanduser().exists():
        return False
    try:
        with closing(sqlite3.connect(f"file:{Path(path).expanduser()}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == head_revision()


def begin_migration(url: str) -> Callable[[], str | None]:
    """Start migrating in a forked child; the parent goes on (importing the desk, say) and
    calls the returned function to wait for the child and learn its error, if any."""
    if sqlite_is_current(url):
        return lambda: None
    if not hasattr(os, "fork"):  # not POSIX: in this process
        try:
            migrate(url)
        except Exception as exc:  # noqa: BLE001
            problem = str(exc)
            return lambda: problem
        return lambda: None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_end)
        error = b""
        try:
            migrate(url)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, one line
            error = str(exc).encode(errors="replace") or type(exc).__name__.encode()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.write(write_end, error)
            os.close(write_end)
            os._exit(1 if error else 0)
    os.close(write_end)

    def wait() -> str | None:
        with os.fdopen(read_end, "rb") as pipe:
            error_text = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            return error_text or f"the migration process ended with status {status}"
        return None

    return wait


if __name__ == "__main__":
    from bot.config import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    problem = migrate_apart(settings.database_url)
    if problem:
        print(f"DATABASE_URL: cannot prepare the database: {problem}", file=sys.stderr)
        sys.exit(2)
