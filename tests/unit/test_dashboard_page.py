"""The dashboard page's files: every one is installed with the package, and the page names each
of its assets by a URL that changes with the file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bot.dashboard_page import ASSETS, HERE, DashboardPage

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_of_the_page_is_in_the_package_data() -> None:
    """An installed desk (`pip install .`, the Docker image) serves the page: pyproject.toml's
    package data names every file in bot/dashboard_page/."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["bot.dashboard_page"]
    installed = {path for pattern in patterns for path in HERE.glob(pattern) if path.is_file()}
    files = {
        path for path in HERE.rglob("*") if path.is_file() and path.suffix not in (".py", ".pyc")
    }
    assert files - installed == set()
    assert {HERE / name for name in ASSETS} <= installed
    assert (HERE / "vendor/uplot/LICENSE").is_file()


def test_the_page_names_each_asset_by_its_content(tmp_path: Path) -> None:
    """Each asset's URL in the page carries a hash of the file: a changed file gets a new URL,
    so a browser never keeps an old script under a long cache."""
    for name in [*ASSETS, "index.html"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((HERE / name).read_bytes())
    before = DashboardPage(tmp_path)
    html = before.index.body.decode()
    for name in ASSETS:
        assert f'"{before.url(name)}"' in html
    (tmp_path / "dashboard.js").write_bytes(b"// a new version\n")
    after = DashboardPage(tmp_path)
    assert after.url("dashboard.js") != before.url("dashboard.js")
    assert after.url("dashboard.css") == before.url("dashboard.css")
    assert f'"{after.url("dashboard.js")}"' in after.index.body.decode()
