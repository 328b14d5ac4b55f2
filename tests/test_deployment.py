"""The deployment files: Dockerfile, compose.yaml, and the systemd units honcho exports.

No Docker engine runs where these tests run, so the image is never built here. Instead:
compose.yaml is parsed (PyYAML when installed, else a tiny loader for the subset it uses)
and every service is checked against discarr itself (its commands, its settings), and the
tracker, a poller and `discarr doctor` are run here with exactly each service's
environment, the socket and data directories moved to temporary ones.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from common.settings import ARR_KINDS, CLIENT_KINDS, CURVE_SETTINGS, _SCALARS, load_settings
from services.cli import main
from tests.conftest import ROOT, wait_until

PROCESSES = ("poller", "tracker", "bot")


# -- reading compose.yaml ----------------------------------------------------------------


class Unsupported(ValueError):
    """YAML beyond the tiny loader's subset."""


def _scalar(text: str) -> Any:
    if text.startswith('"') or text.startswith("["):
        try:
            return json.loads(text)  # double-quoted scalars and flow lists of them, as JSON writes them
        except ValueError:
            raise Unsupported(text) from None
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise Unsupported(text)
        return text[1:-1].replace("''", "'")
    if text[0] in "&*!{|>%@`":
        raise Unsupported(text)
    return text.split(" #", 1)[0].rstrip()


def tiny_yaml(text: str) -> Any:
    """Block mappings, block lists of scalars, quoted and plain scalars (kept as strings), comments."""
    lines = []
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped in ("---", "...") or "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise Unsupported(raw)
        lines.append((len(raw) - len(raw.lstrip(" ")), stripped))
    value, position = _block(lines, 0, lines[0][0])
    if position != len(lines):
        raise Unsupported(lines[position][1])
    return value


def _block(lines: list[tuple[int, str]], position: int, indent: int) -> tuple[Any, int]:
    if lines[position][1].startswith("- "):
        items = []
        while position < len(lines) and lines[position][0] == indent and lines[position][1].startswith("- "):
            item = lines[position][1][2:].strip()
            if re.match(r"[^\"'\[]*?: ", item + " ") and not item.startswith(('"', "'", "[")):
                raise Unsupported(item)  # a mapping inside a list
            items.append(_scalar(item))
            position += 1
        return items, position
    mapping: dict[str, Any] = {}
    while position < len(lines) and lines[position][0] == indent:
        key, colon, rest = lines[position][1].partition(":")
        if not colon or (rest and not rest.startswith(" ")) or key.startswith(("-", '"', "'", "?")):
            raise Unsupported(lines[position][1])
        if key in mapping:
            raise Unsupported(f"duplicate key {key}")
        position += 1
        rest = rest.strip()
        if rest and not rest.startswith("#"):
            mapping[key] = _scalar(rest)
        elif position < len(lines) and lines[position][0] > indent:
            mapping[key], position = _block(lines, position, lines[position][0])
        else:
            mapping[key] = None
    if position < len(lines) and lines[position][0] > indent:
        raise Unsupported(lines[position][1])
    return mapping, position


def load_compose(name: str) -> dict[str, Any]:
    """A compose file, read by the tiny loader and, when installed, by PyYAML (which must agree)."""
    text = (ROOT / name).read_text()
    try:
        import yaml
    except ImportError:
        yaml = None
    try:
        tiny = tiny_yaml(text)
    except Unsupported as exc:
        if yaml is None:
            pytest.skip(f"{name} uses YAML beyond the tiny loader ({exc}); install PyYAML to check it")
        tiny = None
    if yaml is None:
        return tiny
    loaded = yaml.safe_load(text)
    assert tiny is None or tiny == loaded, f"the tiny loader reads {name} differently from PyYAML"
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose("compose.yaml")


def test_the_tiny_loader_reads_what_compose_yaml_uses():
    text = ('# comment\nservices:\n  a:\n    command: ["poller", "--x"]\n    env_file: .env  # trailing\n'
            '    environment:\n      X: "ipc:///run/x.sock"\n      Y: \'it\'\'s\'\n    volumes:\n'
            '      - "data:/data"\n      - plain\nvolumes:\n  data:\n')
    assert tiny_yaml(text) == {"services": {"a": {"command": ["poller", "--x"], "env_file": ".env",
                                                  "environment": {"X": "ipc:///run/x.sock", "Y": "it's"},
                                                  "volumes": ["data:/data", "plain"]}},
                               "volumes": {"data": None}}
    for unsupported in ("a: &anchor 1\n", "a:\n  - b: c\n", "a: {b: c}\n", "a: |\n  text\n"):
        with pytest.raises(Unsupported):
            tiny_yaml(unsupported)


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):  # the KEY=VALUE list form
        environment = dict(item.split("=", 1) for item in environment)
    return {key: str(value) for key, value in environment.items()}


def known_settings() -> set[str]:
    """Every variable discarr reads: the scalar settings, instances, clients, CURVE keys, .env.example."""
    known = set(_SCALARS) | set(CURVE_SETTINGS) | {"DISCORD_TOKEN", "EXTRA_INSTANCES", "EXTRA_DOWNLOAD_CLIENTS"}
    for kind in ARR_KINDS:
        known |= {f"{kind.upper()}_URL", f"{kind.upper()}_API_KEY"}
    for kind in CLIENT_KINDS:
        known |= {f"{kind.upper()}_URL", f"{kind.upper()}_USERNAME", f"{kind.upper()}_PASSWORD"}
    example = (ROOT / ".env.example").read_text()
    known |= set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", example, re.M))
    return known


# -- compose.yaml ------------------------------------------------------------------------


def test_compose_has_one_service_per_process_each_running_a_real_discarr_subcommand(compose):
    services = compose["services"]
    assert set(services) == set(PROCESSES)
    for name, service in services.items():
        command = service["command"]
        words = command.split() if isinstance(command, str) else list(command)
        assert words[0] in main.commands, f"{name}: {words[0]!r} is not a discarr subcommand"
        assert words[0] == name
        # The whole command line parses as discarr's own (options included).
        main.make_context("discarr", list(words), resilient_parsing=True)


def test_compose_services_restart_alone_read_env_share_data_and_publish_no_port(compose):
    volumes = compose.get("volumes") or {}
    for name, service in compose["services"].items():
        assert service["restart"] == "unless-stopped", name
        env_files = service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
        assert ".env" in env_files, name
        assert "ports" not in service, f"{name} publishes a port"
        assert "depends_on" not in service, f"{name}: start order never matters, each restarts alone"
        mounts = dict(mount.split(":", 1) for mount in service["volumes"])
        assert mounts["data"] == "/data" and "data" in volumes, name
        assert service.get("build") == "." and service["image"] == compose["services"]["tracker"]["image"]
    # Every service sees the same sockets and the same data.
    assert len({json.dumps(service["volumes"]) for service in compose["services"].values()}) == 1


def test_every_variable_compose_sets_is_a_discarr_setting(compose):
    known = known_settings()
    for name, service in compose["services"].items():
        unknown = set(environment_of(service)) - known
        assert not unknown, f"{name} sets variables discarr does not read: {sorted(unknown)}"


def test_each_compose_environment_passes_discarr_settings_checks_without_curve_keys(compose):
    """discarr refuses endpoints that leave the machine without CURVE keys: ipc:// sockets never do."""
    for name, service in compose["services"].items():
        environment = environment_of(service)
        settings = load_settings(environ=environment, dotenv_path=None)
        assert settings.curve is None
        for setting in ("TRACKER_INGEST_ENDPOINT", "TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT"):
            assert environment[setting].startswith("ipc:///run/discarr/"), (name, setting)
        for setting in ("TRACKER_STATE_FILE", "AUDIT_LOG", "BOT_STATE_FILE", "STATS_DB"):
            assert environment[setting].startswith("/data/"), (name, setting)
        assert "/run/discarr" in {mount.split(":", 1)[1] for mount in service["volumes"]}


def test_the_compose_layout_runs_here_tracker_poller_and_doctor_over_ipc(compose, deployment, tmp_path):
    """The compose environment of each service, with /run/discarr and /data moved to temporary directories."""
    sockets = Path(tempfile.mkdtemp(prefix="discarr-", dir="/tmp"))  # a Unix socket path must stay short
    data = tmp_path / "volume-data"

    def moved(service: str) -> dict[str, str]:
        environment = environment_of(compose["services"][service])
        return {key: value.replace("/run/discarr", str(sockets)).replace("/data/", f"{data}/", 1)
                if value.startswith(("ipc:///run/discarr/", "/data/")) else value
                for key, value in environment.items()}
    try:
        deployment.simulate("sonarr")
        deployment.start("simarr", "--scenario", "demo")
        deployment.start("tracker", env=moved("tracker"))
        deployment.start("poller", env=moved("poller"))
        deployment.env.update(moved("bot"))

        def tracking():
            done = deployment.cli("progress", "--json")
            if done.returncode != 0:
                return None
            return [i for i in json.loads(done.stdout)["instances"] if i["name"] == "sonarr" and i["healthy"]]
        wait_until(tracking, 30, "the poller's snapshots to reach the tracker over ipc", interval=0.5)
        done = deployment.cli("doctor", "--json")
        report = json.loads(done.stdout)
        assert done.returncode == 0 and report["ok"], json.dumps(report, indent=2)
        checks = {check["name"]: check for check in report["checks"]}
        assert checks["tracker"]["detail"].startswith(f"answers at ipc://{sockets}/tracker-query.sock")
        assert checks["poller"]["detail"].startswith(f"answers at ipc://{sockets}/poller-command.sock")
        assert checks[f"data {data}"]["ok"] and data.is_dir()
    finally:
        deployment.stop_all()
        shutil.rmtree(sockets, ignore_errors=True)


# -- Dockerfile --------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    environment = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            environment.update(dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', rest)))
    return {key: value.strip('"') for key, value in environment.items()}


def test_dockerfile_base_image_is_a_build_argument_defaulting_to_python_slim():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert ("FROM", "${BASE_IMAGE}") in instructions


def test_dockerfile_runs_discarr_as_a_non_root_user_with_its_data_in_a_volume():
    instructions = dockerfile_instructions()
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert users[-1] == "discarr"
    # The user is made in the image, and owns the data directory.
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    assert "useradd" in runs and "chown discarr:discarr /data" in runs
    entrypoints = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["discarr"]
    volumes = [rest for word, rest in instructions if word == "VOLUME"]
    assert any("/data" in (json.loads(v) if v.startswith("[") else v.split()) for v in volumes)
    environment = dockerfile_env()
    for setting in ("TRACKER_STATE_FILE", "AUDIT_LOG", "BOT_STATE_FILE", "STATS_DB"):
        assert environment[setting].startswith("/data/"), setting
    known = known_settings()
    assert all(key in known or key.startswith(("PYTHON", "PIP_")) for key in environment), environment


def test_dockerfile_installs_discarr_with_pip_from_everything_the_package_needs():
    instructions = dockerfile_instructions()
    copied = set()
    for word, rest in instructions:
        if word == "COPY":
            copied |= set(rest.split()[:-1])
    assert {"pyproject.toml", "common", "services"} <= copied
    pyproject = (ROOT / "pyproject.toml").read_text()
    readme = re.search(r'^readme\s*=\s*"([^"]+)"', pyproject, re.M)
    if readme:
        assert readme.group(1) in copied, "pyproject.toml names a readme the build needs"
    include = re.search(r"include\s*=\s*\[([^\]]*)\]", pyproject).group(1)
    for pattern in re.findall(r'"([^"*]+)\*?"', include):
        assert pattern in copied, f"the package {pattern} is not copied into the image"
    for path in copied:
        assert (ROOT / path).exists(), path
    assert any(word == "RUN" and re.search(r"\bpip install /src\b", rest) for word, rest in instructions)


# -- systemd units from honcho -----------------------------------------------------------


def honcho_export(target: Path, *extra: str) -> subprocess.CompletedProcess:
    pytest.importorskip("jinja2", reason="`honcho export` needs honcho's export extra: pip install 'honcho[export]'")
    honcho = Path(sys.executable).parent / "honcho"
    command = [str(honcho)] if honcho.exists() else [sys.executable, "-m", "honcho"]
    done = subprocess.run([*command, "export", "systemd", str(target), "-a", "discarr", "-u", "discarr", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


def unit(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith(("#", "[")):
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_honcho_exports_one_systemd_unit_per_process_running_discarr_with_a_restart_policy(tmp_path):
    honcho_export(tmp_path)
    services = sorted(path.name for path in tmp_path.glob("*.service"))
    assert services == sorted(f"discarr-{name}-1.service" for name in PROCESSES)
    for name in PROCESSES:
        service = unit(tmp_path / f"discarr-{name}-1.service")
        assert len(service["ExecStart"]) == 1
        assert re.fullmatch(rf"\S*sh -lc 'discarr {name}'", service["ExecStart"][0]), service["ExecStart"]
        assert service["Restart"] == ["always"]
        assert service["User"] == ["discarr"]
        assert service["WorkingDirectory"] == [str(ROOT)]  # where discarr finds .env
        assert service["PartOf"] == [f"discarr-{name}.target"]
    assert unit(tmp_path / "discarr.target")["Wants"] == [" ".join(f"discarr-{p}.target" for p in PROCESSES)]


def test_what_honcho_gets_wrong_is_fixed_by_what_the_readme_says(tmp_path):
    """honcho's units have KillMode=process (the shell is signalled, not discarr), and copy the
    env file into Environment= lines; the README overrides the first and exports with -e /dev/null."""
    running = (ROOT / "README.md").read_text().split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    fake_env = tmp_path / "fake.env"
    fake_env.write_text("SONARR_API_KEY=secret-key-in-env-file\n")
    honcho_export(tmp_path / "with-env", "-e", str(fake_env))
    assert "Environment=SONARR_API_KEY=secret-key-in-env-file" in (
        tmp_path / "with-env" / "discarr-poller-1.service").read_text()
    honcho_export(tmp_path / "without", "-e", "/dev/null")
    for path in (tmp_path / "without").glob("*.service"):
        assert not [v for v in unit(path).get("Environment", []) if not v.startswith(("HONCHO_", "PORT="))]
        if "process" in unit(path).get("KillMode", []):
            assert "KillMode=control-group" in running
    assert ("honcho export systemd /etc/systemd/system -a discarr -u discarr -e /dev/null" in running)
    assert "Restart=always" in running


def test_the_readme_section_covers_docker_systemd_several_hosts_clocks_and_discord():
    readme = (ROOT / "README.md").read_text()
    assert "## Running for real" not in readme
    running = readme.split("## Running it for real", 1)[1].split("\n## ", 1)[0]
    for words in ("docker compose up", "--build-arg BASE_IMAGE", "discarr keys generate", "NTP",
                  "Developer Mode", "Copy Channel ID", "applications.commands", "discarr doctor",
                  "not been run", "permissions=117760"):
        assert words in running, words
