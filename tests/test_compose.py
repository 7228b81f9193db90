"""`docker-compose.yml` and the image agree with kehoach: every command it runs is a `kehoach`
command, every KEHOACH_ variable a setting, the web port the one the service listens on; every
service has a health check, the schema is migrated before the roles start, secrets come only
from the environment, and the image is the Prefect image of the tested Prefect version, run
as a user without privileges. Where the `docker compose` plugin is installed, it must accept
the file too (this machine has only the Docker client: that part is then not run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import prefect
import pytest
import yaml

from approvals.config import Settings

ROOT = Path(__file__).resolve().parent.parent
KEHOACH = str(Path(sys.executable).parent / "kehoach")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
OURS = {name: service for name, service in SERVICES.items() if service.get("build") == "."}
ROLES = ("worker", "web", "dispatch", "inbound")


def _words(command) -> list[str]:
    return command if isinstance(command, list) else command.split()


@pytest.mark.processes  # the installed `kehoach` script
def test_every_kehoach_command_exists():
    assert set(OURS) == {"migrate", *ROLES}
    commands = [_words(service["command"]) for service in OURS.values()]
    commands += [
        service["healthcheck"]["test"][1:]
        for service in OURS.values()
        if service["healthcheck"].get("test", ["", ""])[1:2] == ["kehoach"]
    ]
    for words in commands:
        assert words[0] == "kehoach", words
        subcommand = [w for w in words[1:] if not w.startswith("-")][:2]
        shown = subprocess.run([KEHOACH, *subcommand, "--help"], capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, (words, shown.stderr)
        for option in (w for w in words if w.startswith("--")):
            assert option in shown.stdout, (option, words)


def test_every_kehoach_variable_is_a_setting_and_the_port_is_the_web_port():
    fields = {f"KEHOACH_{name.upper()}" for name in Settings.model_fields}
    for name, service in OURS.items():
        for variable in service["environment"]:
            if variable.startswith("KEHOACH_"):
                assert variable in fields, (name, variable)
    port = OURS["web"]["environment"]["KEHOACH_WEB_PORT"]
    assert OURS["web"]["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/healthz" in " ".join(OURS["web"]["healthcheck"]["test"])


def test_health_checks_and_start_order():
    for name, service in SERVICES.items():
        assert "healthcheck" in service, name
    for role in ROLES:
        depends = OURS[role]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, role
        assert depends["postgres"] == {"condition": "service_healthy"}, role
    assert OURS["worker"]["depends_on"]["prefect-server"] == {"condition": "service_healthy"}
    assert OURS["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert OURS["migrate"]["restart"] == "no"


def test_secrets_come_only_from_the_environment():
    for name, service in SERVICES.items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|KEY|PIN", variable):
                assert str(value).startswith("${"), (name, variable)
            assert not re.search(r"://[^:/@]+:(?!\$\{)[^@]+@", str(value)), (name, variable)  # no password in a URL


def test_the_image_is_the_tested_prefect_and_runs_without_privileges():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    tag = f"prefecthq/prefect:{prefect.__version__}-python3.11"
    assert f"FROM {tag}" in dockerfile
    assert SERVICES["prefect-server"]["image"] == tag
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".git", ".venv", ".env", "kehoach-data"} <= set(ignored)
    assert {"*.p12", "*.pfx", "*.key", "*.pem", "test-signing"} <= set(ignored)  # no key is built in


def test_every_role_reads_the_signing_file_from_a_read_only_mount():
    for name in ("migrate", "worker", "web", "dispatch", "inbound"):
        service = OURS[name]
        assert service["environment"]["KEHOACH_SIGNING_FILE"] == "/etc/kehoach/signing/signing.yaml", name
        assert any(
            v.startswith("${KEHOACH_SIGNING_DIR:?") and v.endswith(":/etc/kehoach/signing:ro")
            for v in service["volumes"]
        )


@pytest.mark.processes  # docker compose, where it is installed
def test_docker_compose_accepts_the_file_where_it_is_installed():
    try:
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        plugin = None
    if plugin is None or plugin.returncode != 0:
        return  # no compose plugin on this machine: the checks above are what can be checked here
    env = {**os.environ, "POSTGRES_PASSWORD": "x" * 24, "KEHOACH_LINK_SECRET": "k" * 48, "KEHOACH_SIGNING_DIR": "/srv"}
    checked = subprocess.run(
        ["docker", "compose", "config", "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
