"""The container files beyond compose.yaml: .dockerignore, compose.demo.yaml, and simarr listening
beyond loopback (SIMARR_HOST), which the demo in containers needs.

No Docker engine runs where these tests run (see tests/test_deployment.py): the files are read
with the same loaders, and what can run here runs for real.
"""
from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

import pytest
import requests
from dotenv import dotenv_values

from common.settings import SettingsError, load_settings
from services.cli import main
from tests.conftest import ROOT, free_port, wait_until
from tests.test_deployment import Unsupported, dockerfile_instructions, environment_of, known_settings, load_compose

ENDPOINTS = ("TRACKER_INGEST_ENDPOINT", "TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT")
DATA_PATHS = ("TRACKER_STATE_FILE", "AUDIT_LOG", "BOT_STATE_FILE", "STATS_DB")
URLS = ("SONARR_URL", "RADARR_URL")
# What compose.demo.yaml may set differently from .env.demo: what differs between containers and one machine.
CONTAINER_SETTINGS = {"SIMARR_HOST", *URLS, *ENDPOINTS, *DATA_PATHS}


# -- housekeeping ------------------------------------------------------------------------


def test_no_patch_leftovers_in_the_tree():
    skipped = {".git", ".venv", "data", ".hypothesis", ".pytest_cache", "__pycache__"}
    leftovers = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in skipped]
        leftovers += [str(Path(directory, f).relative_to(ROOT)) for f in files if f.endswith((".orig", ".rej"))]
    assert not leftovers


def test_dockerfile_compose_and_readme_name_the_same_service_for_doctor():
    """The poller's container is the one that maps host.docker.internal, so it reaches an *arr on the host."""
    named = {}
    for name in ("Dockerfile", "compose.yaml", "README.md"):
        text = re.sub(r"\s*\n\s*#?\s*", " ", (ROOT / name).read_text())  # a command may wrap in a comment
        named[name] = set(re.findall(r"docker compose run --rm (\S+) doctor", text))
    assert named == {name: {"poller"} for name in named}
    assert "host.docker.internal:host-gateway" in load_compose("compose.yaml")["services"]["poller"]["extra_hosts"]


# -- .dockerignore -----------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: * and ? within one path element, ** across any number of them."""
    regex, position = "", 0
    while position < len(pattern):
        if pattern.startswith("**/", position):
            regex, position = regex + "(.*/)?", position + 3
        elif pattern.startswith("**", position):
            regex, position = regex + ".*", position + 2
        elif pattern[position] in "[\\":
            raise Unsupported(pattern)  # character classes and escapes: not used, so not read
        else:
            regex += {"*": "[^/]*", "?": "[^/]"}.get(pattern[position], re.escape(pattern[position]))
            position += 1
    return re.compile(regex)


def dockerignore(text: str | None = None) -> list[tuple[bool, re.Pattern[str]]]:
    """(re-included, pattern) per line of .dockerignore, in order."""
    rules = []
    for line in (text if text is not None else (ROOT / ".dockerignore").read_text()).splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(posixpath.normpath(line.lstrip("!").strip()).lstrip("/"))))
    return rules


def excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """As Docker decides: the last rule matching the path or one of its parent directories wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:length]) for length in range(1, len(parts) + 1)]
    result = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negated
    return result


def test_the_dockerignore_reader_follows_dockers_rules():
    rules = dockerignore("# comment\n.env\ndata/\n**/__pycache__\n*.log\n!keep.log\n/build\n")
    assert excluded(".env", rules) and not excluded(".env.example", rules) and not excluded("sub/.env", rules)
    assert excluded("data/x/y.json", rules) and not excluded("database.py", rules)
    assert excluded("__pycache__/a.pyc", rules) and excluded("a/b/__pycache__/c.pyc", rules)
    assert excluded("x.log", rules) and not excluded("keep.log", rules) and not excluded("sub/x.log", rules)
    assert excluded("build/lib/a.py", rules)


CACHES = (".pytest_cache", ".hypothesis", "__pycache__", "common/__pycache__/settings.cpython-311.pyc",
          "services/bot/__pycache__/app.cpython-312.pyc", "services/cli.pyc")


@pytest.mark.parametrize("path", [".env", ".env.local", ".venv", ".venv/bin/python", "data", "data/removals.jsonl",
                                  ".git", ".git/HEAD", *CACHES])
def test_dockerignore_keeps_secrets_local_state_and_caches_out_of_the_build(path):
    assert excluded(path, dockerignore())


def test_dockerignore_excludes_nothing_the_dockerfile_copies():
    rules = dockerignore()
    sources = [source for word, rest in dockerfile_instructions() if word == "COPY" for source in rest.split()[:-1]]
    assert sources
    for source in sources:
        assert not source.startswith("--"), "a COPY option this test does not read"
        assert not excluded(source, rules), source
        for directory, subdirectories, files in os.walk(ROOT / source):
            subdirectories[:] = [d for d in subdirectories if d != "__pycache__"]
            for file in files:
                relative = Path(directory, file).relative_to(ROOT).as_posix()
                assert file.endswith(".pyc") or not excluded(relative, rules), relative


# -- compose.demo.yaml -------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return load_compose("compose.demo.yaml")


def demo_settings() -> dict[str, str]:
    return {key: value for key, value in dotenv_values(ROOT / ".env.demo").items() if value is not None}


def procfile_demo() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile.demo").read_text().splitlines()
    return {name.strip(): command.split() for name, _, command in (line.partition(":") for line in lines if line)}


def effective_environment(service: dict[str, Any]) -> dict[str, str]:
    """What the container gets: its env_file (relative to the compose file), `environment` winning."""
    env_files = service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
    values: dict[str, str] = {}
    for env_file in env_files:
        values.update({k: v for k, v in dotenv_values(ROOT / env_file).items() if v is not None})
    values.update(environment_of(service))
    return values


def test_the_demo_runs_what_procfile_demo_runs_one_service_each_from_the_one_image(demo):
    services = demo["services"]
    procfile = procfile_demo()
    assert set(services) == set(procfile) == {"simarr", "poller", "tracker", "bot"}
    image = load_compose("compose.yaml")["services"]["tracker"]["image"]
    for name, service in services.items():
        assert ["discarr", *service["command"]] == procfile[name], name
        main.make_context("discarr", list(service["command"]), resilient_parsing=True)
        assert service["build"] == "." and service["image"] == image, name
        assert "ports" not in service, f"{name} publishes a port"
    # Its own project, so `up` and `down` never touch the containers and volumes of compose.yaml.
    assert demo["name"] and demo["name"] != load_compose("compose.yaml").get("name")


def test_the_demo_has_the_settings_of_env_demo_and_never_reads_env(demo):
    expected = demo_settings()
    assert {"STUCK_THRESHOLD_MINUTES", "POLL_INTERVAL_SECONDS", "CHECK_INTERVAL", "SIMARR_PORT"} <= set(expected)
    known = known_settings()
    for name, service in demo["services"].items():
        env_files = service["env_file"] if isinstance(service["env_file"], list) else [service["env_file"]]
        assert env_files == [".env.demo"], name
        assert set(environment_of(service)) <= CONTAINER_SETTINGS, name
        assert set(environment_of(service)) <= known, name
        environment = effective_environment(service)
        for key, value in expected.items():
            if key not in CONTAINER_SETTINGS:
                assert environment[key] == value, (name, key)
        # The instances are where the demo's simarr serves them, seen from the other containers.
        for key in URLS:
            url, demo_url = re.match(r"http://([^/:]+):(\d+)(/.*)", environment[key]), expected[key]
            assert url.group(1) == "simarr" and url.group(2) == expected["SIMARR_PORT"], (name, key)
            assert demo_url.endswith(f":{expected['SIMARR_PORT']}{url.group(3)}"), (name, key)
        settings = load_settings(environ=environment, dotenv_path=None)
        assert settings.curve is None and len(settings.instances) == 2


def test_simarr_listens_beyond_loopback_and_discarr_talks_over_shared_ipc_sockets(demo):
    services = demo["services"]
    assert effective_environment(services["simarr"])["SIMARR_HOST"] == "0.0.0.0"
    expected = demo_settings()
    environments = {name: effective_environment(services[name]) for name in ("poller", "tracker", "bot")}
    assert len({json.dumps(environment, sort_keys=True) for environment in environments.values()}) == 1
    environment = environments["tracker"]
    for key in ENDPOINTS:
        assert environment[key].startswith("ipc:///run/discarr/"), key
    for key in DATA_PATHS:
        assert environment[key] == "/data/" + posixpath.basename(expected[key]), key
    for name in environments:
        mounts = dict(mount.split(":", 1) for mount in services[name]["volumes"])
        assert mounts == {"data": "/data", "sockets": "/run/discarr"}, name
    assert set(demo["volumes"]) == {"data", "sockets"}


def test_the_demo_layout_runs_here_simarr_poller_tracker_over_ipc(demo, deployment, tmp_path):
    """Each service's environment, with the volumes moved to temporary directories and simarr's port
    to a free one; the others reach `simarr` at 127.0.0.1 (no compose network here), simarr itself
    keeps the name and listens on 0.0.0.0."""
    sockets = Path(tempfile.mkdtemp(prefix="discarr-", dir="/tmp"))  # a Unix socket path must stay short
    data = tmp_path / "volume-data"
    port = str(deployment.simarr_port)

    def moved(name: str) -> dict[str, str]:
        environment = effective_environment(demo["services"][name])
        host = "simarr" if name == "simarr" else "127.0.0.1"
        for key in ENDPOINTS:
            environment[key] = environment[key].replace("ipc:///run/discarr/", f"ipc://{sockets}/")
        for key in DATA_PATHS:
            environment[key] = environment[key].replace("/data/", f"{data}/", 1)
        for key in URLS:
            environment[key] = re.sub(r"//simarr:\d+/", f"//{host}:{port}/", environment[key])
        return {**environment, "SIMARR_PORT": port}
    try:
        deployment.start("simarr", "--scenario", "demo", env=moved("simarr"))
        deployment.start("tracker", env=moved("tracker"))
        deployment.start("poller", env=moved("poller"))
        deployment.env.update(moved("bot"))

        def tracking():
            done = deployment.cli("progress", "--json")
            if done.returncode != 0:
                return None
            report = json.loads(done.stdout)
            healthy = {i["name"] for i in report["instances"] if i["healthy"]}
            return report if healthy == {"sonarr", "radarr"} and report["tracked"] else None
        report = wait_until(tracking, 30, "the demo's instances to reach the tracker", interval=0.5)
        assert report["config"]["stuck_threshold_minutes"] == float(demo_settings()["STUCK_THRESHOLD_MINUTES"])
        assert report["config"]["poll_interval_seconds"] == float(demo_settings()["POLL_INTERVAL_SECONDS"])
    finally:
        deployment.stop_all()
        shutil.rmtree(sockets, ignore_errors=True)


# -- SIMARR_HOST -------------------------------------------------------------------------


def queue(port: int, base: str, key: str) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/{base}/api/v3/queue", headers={"X-Api-Key": key}, timeout=10)


def test_simarr_beyond_loopback_serves_every_instance_at_its_port_whatever_the_host_name(deployment):
    port = deployment.simarr_port
    deployment.env.update({"SONARR_URL": f"http://simarr:{port}/sonarr", "SONARR_API_KEY": "key-sonarr",
                           "RADARR_URL": f"http://simarr:{free_port()}/radarr", "RADARR_API_KEY": "key-radarr"})
    deployment.start("simarr", "--scenario", "demo", env={"SIMARR_HOST": "0.0.0.0"})
    response = queue(port, "sonarr", "key-sonarr")
    assert response.status_code == 200 and response.json()["totalRecords"] > 0
    assert queue(port, "radarr", "key-radarr").status_code == 404  # another port: not simarr's
    wait_until(lambda: "simarr serving" in deployment.log_path("simarr").read_text(), 10, "simarr's first line")
    assert f"simarr serving sonarr on 0.0.0.0:{port}" in deployment.log_path("simarr").read_text()


@pytest.mark.parametrize("host", [None, "localhost", "127.0.0.2"])
def test_simarr_on_loopback_refuses_a_url_at_another_host_name_in_one_line(deployment, host):
    deployment.env.update({"SONARR_URL": f"http://simarr:{deployment.simarr_port}/sonarr", "SONARR_API_KEY": "k"})
    if host:
        deployment.env["SIMARR_HOST"] = host
    done = deployment.cli("simarr")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("discarr simarr: no configured instance has a URL at "), lines
    assert "sonarr at another host name" in lines[0] and "SIMARR_HOST=0.0.0.0" in lines[0]


def test_simarr_on_loopback_never_takes_an_instance_at_another_host_for_its_own(deployment):
    port = deployment.simarr_port
    deployment.simulate("sonarr")
    deployment.env.update({"RADARR_URL": f"http://nas:{port}/radarr", "RADARR_API_KEY": "key-radarr"})
    deployment.start("simarr", "--scenario", "demo")
    assert queue(port, "sonarr", "key-sonarr").status_code == 200
    assert queue(port, "radarr", "key-radarr").status_code == 404


@pytest.mark.parametrize("value", ["0.0.0.0:8989", "http://0.0.0.0", "::", "999.1.1.1", "bad host", "-simarr",
                                   "simarr.", "127.0.0.1/8"])
def test_a_bad_simarr_host_is_one_line_naming_it(value):
    with pytest.raises(SettingsError) as raised:
        load_settings(environ={"SIMARR_HOST": value}, dotenv_path=None)
    assert f"SIMARR_HOST={value!r}" in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "10.0.0.5", "localhost", "simarr", "demo-simarr.lan"])
def test_a_simarr_host_is_an_ipv4_address_or_a_host_name(value):
    assert load_settings(environ={"SIMARR_HOST": value}, dotenv_path=None).simarr_host == value


def test_simarr_stops_at_start_on_a_bad_simarr_host_with_the_settings_line(deployment):
    deployment.simulate("sonarr")
    deployment.env["SIMARR_HOST"] = "0.0.0.0:8989"
    done = deployment.cli("simarr")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "discarr: setting SIMARR_HOST='0.0.0.0:8989' is invalid: "
        "expected an IPv4 address or a host name to listen on, such as 127.0.0.1 or 0.0.0.0"]


def test_simarr_that_cannot_listen_says_where_in_one_line(deployment):
    deployment.simulate("sonarr")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", deployment.simarr_port))
        taken.listen()
        done = deployment.cli("simarr")
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"discarr simarr: cannot listen on 127.0.0.1:{deployment.simarr_port}: "), lines
