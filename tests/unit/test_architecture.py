"""The domain stays plain Python: import-linter's contract from pyproject.toml holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_domain_imports_no_framework_or_storage() -> None:
    """bot.domain imports neither aiogram, SQLAlchemy, jinja2, channels, handlers nor storage."""
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the domain is pure KEPT" in result.stdout
