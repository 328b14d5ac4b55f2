"""`discarr doctor` and `discarr --version`, run as processes against simarr, the tracker and a poller."""
from __future__ import annotations

import base64
import json
import re
from importlib import metadata
from pathlib import Path

import discord
import pytest
import requests
import zmq

from common import version as version_module
from common.sockets import RequestClient
from services import doctor
from tests.conftest import wait_until
from tests.torrent_clients import deluge, qbittorrent, transmission  # noqa: F401
from tests.usenet import news_server, nzbget  # noqa: F401

APP_ID = "123456789012345678"
FAKE_TOKEN = (base64.urlsafe_b64encode(APP_ID.encode()).decode().rstrip("=")
              + ".GxYz12.abcdefghijklmnopqrstuvwxyz0123456789_-AB")
PERMISSIONS = 117760  # View Channel 1024 + Send Messages 2048 + Embed Links 16384 + Attach Files 32768
#                       + Read Message History 65536


def run_doctor(deployment, *args: str):
    done = deployment.cli("doctor", *args)
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def doctor_json(deployment) -> tuple[int, dict]:
    done = run_doctor(deployment, "--json")
    return done.returncode, json.loads(done.stdout)


def by_name(report: dict) -> dict[str, dict]:
    return {check["name"]: check for check in report["checks"]}


def secrets_in(deployment) -> list[str]:
    return [value for key, value in deployment.env.items()
            if key.endswith(("_API_KEY", "_PASSWORD", "_SECRET_KEY")) or key == "DISCORD_TOKEN"]


def assert_no_secret(deployment, output: str) -> None:
    for secret in secrets_in(deployment):
        assert secret not in output


def wait_for_ping(deployment, service: str, env_name: str) -> dict:
    def answer():
        with RequestClient(service, deployment.env[env_name], 1, retries=0) as client:
            try:
                return client.request("ping")
            except Exception:  # noqa: BLE001 - not up yet
                return None
    return wait_until(answer, 20, f"the {service} to answer a ping")


@pytest.fixture
def running(deployment):
    """simarr playing a Sonarr and a Radarr, the tracker and a poller."""
    deployment.simulate("sonarr", "radarr")
    deployment.start("simarr", "--scenario", "demo")
    deployment.start("tracker")
    deployment.start("poller")
    wait_for_ping(deployment, "tracker", "TRACKER_QUERY_ENDPOINT")
    wait_for_ping(deployment, "poller", "POLLER_COMMAND_ENDPOINT")
    return deployment


# -- --version and the ping answers -----------------------------------------------------


def test_version_option_prints_the_installed_package_version(deployment):
    done = deployment.cli("--version")
    assert done.returncode == 0
    assert done.stdout == f"discarr {metadata.version('discarr')}\n"
    assert version_module.VERSION == metadata.version("discarr")


def test_version_falls_back_to_pyproject_when_the_package_is_not_installed(monkeypatch, tmp_path):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(version_module.metadata, "version", not_installed)
    root = Path(version_module.__file__).resolve().parent.parent
    expected = re.search(r'^version\s*=\s*"([^"]+)"', (root / "pyproject.toml").read_text(), re.M).group(1)
    assert version_module._version() == expected
    other = tmp_path / "pyproject.toml"
    other.write_text('[build-system]\nrequires = ["x"]\n\n[project]\nname = "discarr"\nversion = "9.8.7"\n'
                     '\n[tool.other]\nversion = "1.0"\n')
    assert version_module._from_pyproject(other) == "9.8.7"
    assert version_module._from_pyproject(tmp_path / "missing.toml") is None


def test_tracker_and_poller_log_their_version_at_start_and_ping_with_version_and_uptime(running):
    for service, env_name in (("tracker", "TRACKER_QUERY_ENDPOINT"), ("poller", "POLLER_COMMAND_ENDPOINT")):
        assert f"discarr {version_module.VERSION} {service} starting" in running.log_path(service).read_text()
        answer = wait_for_ping(running, service, env_name)
        assert answer["service"] == service and answer["version"] == version_module.VERSION
        assert isinstance(answer["uptime_s"], float) and 0 <= answer["uptime_s"] < 120


# -- everything well -------------------------------------------------------------------


def test_all_checks_pass_with_simarr_tracker_and_poller_running(running):
    done = run_doctor(running)
    assert done.returncode == 0, done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith(("✓", "✗"))]
    assert lines and all(line.startswith("✓ ") for line in lines), done.stdout
    names = [line[2:].split(":", 1)[0] for line in lines]
    assert names[:3] == ["settings", "sonarr", "radarr"]
    assert {"tracker", "poller", "discord", "curve"} <= set(names)
    assert any(name.startswith("data ") for name in names)
    total = requests.get(f"http://127.0.0.1:{running.simarr_port}/sonarr/api/v3/queue",
                         params={"page": 1, "pageSize": 1, "includeUnknownSeriesItems": "true"},
                         headers={"X-Api-Key": "key-sonarr"}, timeout=5).json()["totalRecords"]
    assert total > 0
    assert f"✓ sonarr: Sonarr 4.0.14.2939 at http://127.0.0.1:{running.simarr_port}/sonarr; {total} queue records" \
        in done.stdout
    assert re.search(r"✓ radarr: Radarr \S+ at \S+; \d+ queue records", done.stdout)
    assert re.search(rf"✓ tracker: answers at \S+: discarr {re.escape(version_module.VERSION)}, up \d+", done.stdout)
    assert re.search(rf"✓ poller: answers at \S+: discarr {re.escape(version_module.VERSION)}, up \d+", done.stdout)
    assert "✓ discord: no DISCORD_TOKEN: the bot shows the board in the terminal" in done.stdout
    assert done.stdout.rstrip().endswith("checks passed")
    assert_no_secret(running, done.stdout + done.stderr)


def test_json_output_has_its_documented_shape_and_exit_code(running):
    code, report = doctor_json(running)
    assert code == 0
    assert set(report) == {"ok", "version", "checks"}
    assert report["ok"] is True and report["version"] == version_module.VERSION
    for check in report["checks"]:
        assert set(check) == {"name", "ok", "detail", "fix"}
        assert isinstance(check["name"], str) and isinstance(check["ok"], bool)
        assert isinstance(check["detail"], str) and isinstance(check["fix"], str)
    running.stop("poller")
    code, report = doctor_json(running)
    assert code == 1 and report["ok"] is False
    poller = by_name(report)["poller"]
    assert poller["ok"] is False and "no answer" in poller["detail"] and "discarr poller" in poller["fix"]


# -- what fails, and says so ------------------------------------------------------------


def test_a_wrong_api_key_is_unauthorized_and_never_printed(deployment):
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "empty")
    deployment.env["SONARR_API_KEY"] = "wrong-key-0123456789"
    done = run_doctor(deployment)
    assert done.returncode == 1
    assert re.search(r"^✗ sonarr: .*refused the API key: unauthorized \(HTTP 401\)$", done.stdout, re.M), done.stdout
    assert "fix: set SONARR_API_KEY to the key in Sonarr: Settings > General > Security > API Key" in done.stdout
    assert "wrong-key-0123456789" not in done.stdout + done.stderr
    code, report = doctor_json(deployment)
    assert code == 1 and "unauthorized" in by_name(report)["sonarr"]["detail"]
    assert "wrong-key-0123456789" not in json.dumps(report)


@pytest.mark.parametrize("served, app", [("radarr", "Radarr"), ("lidarr", "Lidarr")])
def test_another_kind_of_arr_configured_as_sonarr_is_named(deployment, served, app):
    deployment.simulate(served)
    deployment.start("simarr", "--scenario", "empty")
    # The Sonarr settings point at simarr's Radarr (same API v3) or Lidarr (API v1) base, with its key.
    deployment.env["SONARR_URL"] = deployment.env.pop(f"{served.upper()}_URL")
    deployment.env["SONARR_API_KEY"] = deployment.env.pop(f"{served.upper()}_API_KEY")
    code, report = doctor_json(deployment)
    assert code == 1
    sonarr = by_name(report)["sonarr"]
    assert sonarr["ok"] is False
    assert re.fullmatch(rf"http://127\.0\.0\.1:\d+/{served} is {app} [0-9.]+, but it is configured as a Sonarr "
                        r"\(SONARR_URL\)", sonarr["detail"]), sonarr["detail"]
    assert "point SONARR_URL at your Sonarr" in sonarr["fix"]
    assert f"{served.upper()}_URL" in sonarr["fix"]


def test_an_arr_that_is_down_is_unreachable(deployment):
    deployment.simulate("sonarr")  # no simarr started: nothing listens there
    code, report = doctor_json(deployment)
    sonarr = by_name(report)["sonarr"]
    assert code == 1 and sonarr["ok"] is False
    assert sonarr["detail"].startswith("cannot connect to http://127.0.0.1:") and "SONARR_URL" in sonarr["fix"]


def test_a_tracker_that_is_not_running_fails_with_how_to_start_it(deployment):
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "empty")
    deployment.start("poller")
    wait_for_ping(deployment, "poller", "POLLER_COMMAND_ENDPOINT")
    done = run_doctor(deployment)
    assert done.returncode == 1
    endpoint = deployment.env["TRACKER_QUERY_ENDPOINT"]
    assert f"✗ tracker: no answer at {endpoint}" in done.stdout
    assert "fix: start it: `discarr tracker`" in done.stdout
    assert re.search(r"^✓ poller: answers at", done.stdout, re.M)
    assert re.search(r"^✓ sonarr: ", done.stdout, re.M)


def test_a_data_path_that_cannot_be_a_directory_fails(deployment, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file where the data directory should be\n")
    deployment.env["AUDIT_LOG"] = str(blocker / "removals.jsonl")
    code, report = doctor_json(deployment)
    assert code == 1
    check = by_name(report)[f"data {blocker}"]
    assert check["ok"] is False and "a file is in the way" in check["detail"] and "AUDIT_LOG" in check["detail"]
    assert check["fix"]
    # The other data directory is created, and only the probe file was written and removed again.
    data = by_name(report)[f"data {tmp_path / 'data'}"]
    assert data["ok"] is True and "TRACKER_STATE_FILE" in data["detail"]
    assert (tmp_path / "data").is_dir() and not list((tmp_path / "data").iterdir())


def test_a_malformed_discord_token_fails_without_being_printed(deployment):
    deployment.env["DISCORD_TOKEN"] = "not-a-token-at-all-1234567890"
    done = run_doctor(deployment)
    assert done.returncode == 1
    assert "✗ discord: DISCORD_TOKEN is not a bot token" in done.stdout
    assert "not-a-token-at-all-1234567890" not in done.stdout + done.stderr
    # Three parts whose first one is not an id is no token either.
    deployment.env["DISCORD_TOKEN"] = "bm90LWFuLWlk.GxYz12.abcdefghijklmnopqrstuvwxyz"
    code, report = doctor_json(deployment)
    assert by_name(report)["discord"]["ok"] is False
    assert "bm90LWFuLWlk" not in json.dumps(report)


def test_a_well_formed_discord_token_passes_with_the_invite_url_and_is_never_printed(deployment):
    deployment.env.update({"DISCORD_TOKEN": FAKE_TOKEN, "DISCORD_CHANNEL_ID": "987654321098765432"})
    done = run_doctor(deployment)
    invite = (f"https://discord.com/oauth2/authorize?client_id={APP_ID}&scope=bot+applications.commands"
              f"&permissions={PERMISSIONS}")
    assert re.search(rf"^✓ discord: token well-formed for application {APP_ID} .*invite: {re.escape(invite)}$",
                     done.stdout, re.M), done.stdout
    assert FAKE_TOKEN not in done.stdout + done.stderr
    assert FAKE_TOKEN.split(".")[2] not in done.stdout + done.stderr
    code, report = doctor_json(deployment)
    assert by_name(report)["discord"]["ok"] is True and "discord channel" not in by_name(report)
    assert FAKE_TOKEN not in json.dumps(report)
    # Without a channel the board has nowhere to go: said, with where to find the id.
    del deployment.env["DISCORD_CHANNEL_ID"]
    code, report = doctor_json(deployment)
    assert by_name(report)["discord channel"]["ok"] is False
    assert "Copy Channel ID" in by_name(report)["discord channel"]["fix"]


def test_the_invite_permissions_are_computed_from_discord_permissions():
    expected = discord.Permissions(view_channel=True, send_messages=True, embed_links=True, attach_files=True,
                                   read_message_history=True).value
    assert doctor.bot_permissions() == expected == PERMISSIONS
    assert doctor.token_application_id(FAKE_TOKEN) == APP_ID
    for bad in ("", "a.b", "a.b.c.d", f"{FAKE_TOKEN}\n", "MTIz.abc.def", "!!!.abc.def"):
        assert doctor.token_application_id(bad) is None


def test_a_bad_setting_is_one_failed_line_and_exit_1(deployment):
    deployment.env["STUCK_THRESHOLD_MINUTES"] = "abc"
    done = run_doctor(deployment)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == ("✗ settings: setting STUCK_THRESHOLD_MINUTES='abc' is invalid: "
                                           "expected a number (fractions such as 0.1 are allowed)")
    assert done.stderr == ""
    deployment.env["STUCK_THRESHOLD_MINUTES"] = "1"
    deployment.env["TRACKER_QUERY_ENDPOINT"] = "tcp://192.0.2.1:5556"  # leaves the machine without CURVE keys
    code, report = doctor_json(deployment)
    assert code == 1 and report["ok"] is False and [c["name"] for c in report["checks"]] == ["settings"]
    assert "TRACKER_QUERY_ENDPOINT" in report["checks"][0]["detail"]


def test_curve_keys_must_be_pairs_and_their_secrets_are_never_printed(deployment):
    server_public, server_secret = (key.decode() for key in zmq.curve_keypair())
    client_public, client_secret = (key.decode() for key in zmq.curve_keypair())
    deployment.env.update({"CURVE_SERVER_PUBLIC_KEY": server_public, "CURVE_SERVER_SECRET_KEY": server_secret,
                           "CURVE_CLIENT_PUBLIC_KEY": client_public, "CURVE_CLIENT_SECRET_KEY": client_secret})
    code, report = doctor_json(deployment)
    assert by_name(report)["curve"]["ok"] is True
    deployment.env["CURVE_CLIENT_SECRET_KEY"] = server_secret  # a secret key of the other pair
    done = run_doctor(deployment)
    assert "✗ curve: CURVE_CLIENT_SECRET_KEY does not match CURVE_CLIENT_PUBLIC_KEY" in done.stdout
    assert "discarr keys generate" in done.stdout
    assert server_secret not in done.stdout + done.stderr and client_secret not in done.stdout + done.stderr


# -- download clients (real qbittorrent-nox and transmission-daemon; skipped where not installed) --


def test_qbittorrent_login_and_version_and_a_wrong_password(deployment, qbittorrent):  # noqa: F811
    client = qbittorrent()
    deployment.env.update({"QBITTORRENT_URL": client.url, "QBITTORRENT_USERNAME": "admin",
                           "QBITTORRENT_PASSWORD": client.password})
    code, report = doctor_json(deployment)
    check = by_name(report)["qbittorrent"]
    assert check["ok"] is True and re.match(r"qBittorrent v?\d+\.\d+\S* \(Web API \d", check["detail"]), check
    deployment.env["QBITTORRENT_PASSWORD"] = "wrong-password-42"
    done = run_doctor(deployment)
    assert "✗ qbittorrent: " in done.stdout and "refused the login" in done.stdout
    assert "QBITTORRENT_USERNAME and QBITTORRENT_PASSWORD" in done.stdout
    assert "wrong-password-42" not in done.stdout + done.stderr and client.password not in done.stdout


def test_transmission_login_and_version_and_a_wrong_password(deployment, transmission):  # noqa: F811
    deployment.env.update({"TRANSMISSION_URL": transmission.url, "TRANSMISSION_USERNAME": "admin",
                           "TRANSMISSION_PASSWORD": transmission.password})
    code, report = doctor_json(deployment)
    check = by_name(report)["transmission"]
    assert check["ok"] is True and re.match(r"Transmission \d+\.\d+.* \(RPC \d+\)", check["detail"]), check
    deployment.env["TRANSMISSION_PASSWORD"] = "wrong-password-43"
    code, report = doctor_json(deployment)
    check = by_name(report)["transmission"]
    assert check["ok"] is False and "refused the login" in check["detail"]
    assert "wrong-password-43" not in json.dumps(report) and transmission.password not in json.dumps(report)


def test_download_clients_that_are_down_fail_without_their_password(deployment):
    from tests.conftest import free_port
    deployment.env.update({
        "QBITTORRENT_URL": f"http://admin:url-secret-99@127.0.0.1:{free_port()}",
        "QBITTORRENT_PASSWORD": "qbit-secret-77",
        "TRANSMISSION_URL": f"http://127.0.0.1:{free_port()}", "TRANSMISSION_PASSWORD": "tr-secret-88"})
    done = run_doctor(deployment)
    assert re.search(r"^✗ qbittorrent: http://127\.0\.0\.1:\d+: cannot connect$", done.stdout, re.M), done.stdout
    assert re.search(r"^✗ transmission: http://127\.0\.0\.1:\d+/transmission/rpc: cannot connect$", done.stdout,
                     re.M), done.stdout
    for secret in ("url-secret-99", "qbit-secret-77", "tr-secret-88"):
        assert secret not in done.stdout + done.stderr


def test_the_scrub_hides_any_secret_that_slipped_into_a_check():
    checks = [doctor.Check("x", False, "the key is abcdef123", "set it to abcdef123")]
    assert doctor.scrub(checks, ["abcdef123"]) == [doctor.Check("x", False, "the key is <hidden>",
                                                                "set it to <hidden>")]
    assert doctor.safe_url("http://user:pw@host:8080/qbt") == "http://host:8080/qbt"


# -- the usenet clients and Deluge: right settings, a wrong secret, nothing answering --------------

def _check_of(deployment, name):
    done = run_doctor(deployment, "--json")
    return {check["name"]: check for check in json.loads(done.stdout)["checks"]}[name], done


def test_nzbget_login_version_a_wrong_password_and_nothing_answering(deployment, nzbget):  # noqa: F811
    client = nzbget()
    deployment.env.update({"NZBGET_URL": client.url, "NZBGET_USERNAME": client.username,
                           "NZBGET_PASSWORD": client.password})
    check, _ = _check_of(deployment, "nzbget")
    assert check["ok"] is True and re.fullmatch(r"NZBGet \d+\.\d+ at http://127\.0\.0\.1:\d+, logged in",
                                                check["detail"]), check
    deployment.env["NZBGET_PASSWORD"] = "wrong-password-44"
    check, done = _check_of(deployment, "nzbget")
    assert check["ok"] is False and "refused the username or password" in check["detail"]
    assert "NZBGET_USERNAME and NZBGET_PASSWORD" in check["fix"] and "ControlPassword" in check["fix"]
    client.stop()
    check, done = _check_of(deployment, "nzbget")
    assert check["ok"] is False and "cannot connect" in check["detail"] and "NZBGET_URL" in check["fix"]
    assert "wrong-password-44" not in done.stdout + done.stderr and client.password not in done.stdout


def test_sabnzbd_version_a_wrong_api_key_and_nothing_answering(deployment, tmp_path):
    from tests.sabnzbd import SABnzbdStandIn
    with SABnzbdStandIn(tmp_path / "incomplete", tmp_path / "complete") as sab:
        deployment.env.update({"SABNZBD_URL": sab.url, "SABNZBD_API_KEY": sab.api_key})
        check, _ = _check_of(deployment, "sabnzbd")
        assert check["ok"] is True and check["detail"].startswith("SABnzbd 4.3.3 at http://127.0.0.1:"), check
        deployment.env["SABNZBD_API_KEY"] = "wrong-key-45"
        check, done = _check_of(deployment, "sabnzbd")
        assert check["ok"] is False and "refused the API key" in check["detail"]
        assert "SABNZBD_API_KEY (Config → General → API Key)" in check["fix"]
        assert "wrong-key-45" not in done.stdout + done.stderr and sab.api_key not in done.stdout
    check, _ = _check_of(deployment, "sabnzbd")
    assert check["ok"] is False and "cannot connect" in check["detail"] and "SABNZBD_URL" in check["fix"]


def test_deluge_login_version_a_wrong_password_and_nothing_answering(deployment, deluge):  # noqa: F811
    daemon = deluge()
    deployment.env.update({"DELUGE_URL": daemon.url, "DELUGE_USERNAME": "admin", "DELUGE_PASSWORD": daemon.password})
    check, _ = _check_of(deployment, "deluge")
    assert check["ok"] is True and re.fullmatch(r"Deluge 2\.\S+ at deluge://127\.0\.0\.1:\d+, logged in",
                                                check["detail"]), check
    deployment.env["DELUGE_PASSWORD"] = "wrong-password-46"
    check, done = _check_of(deployment, "deluge")
    assert check["ok"] is False and "refused the username or password" in check["detail"]
    assert "auth file" in check["fix"]
    daemon.stop()
    check, done = _check_of(deployment, "deluge")
    assert check["ok"] is False and "cannot connect" in check["detail"] and "DELUGE_URL" in check["fix"]
    assert "wrong-password-46" not in done.stdout + done.stderr and daemon.password not in done.stdout


def test_the_protection_rules_in_force_how_many_each_protects_and_a_tag_no_arr_has(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"PROTECT_TAGS": "dont-kill, no-such-tag", "PROTECT_INDEXERS": "RareTracker",
                           "STUCK_THRESHOLD_MINUTES": "0.05"})
    deployment.start("simarr", "--scenario", "empty")
    for title, spec in (("Tagged.S01E01", {"tags": ["dont-kill"]}), ("Rare.S01E02", {"indexer": "RareTracker"}),
                        ("Rare.S01E03", {"indexer": "RareTracker"}), ("Plain.S01E04", {})):
        deployment.control("sonarr", "POST", "downloads", dict(spec, title=title, size=10 ** 9, state="stalled"))
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: deployment.cli_json("check")["tracked"] == 4, 20, "the downloads to be tracked")
    wait_until(lambda: len([i for i in deployment.cli_json("check")["downloads"] if i["protected_by"]]) == 3, 20,
               "the rules to be judged")
    done = run_doctor(deployment)
    assert ("✓ protection: tag `dont-kill` protects 1 now; tag `no-such-tag` protects 0 now; "
            "indexer `raretracker` protects 2 now; 0 kept by hand") in done.stdout, done.stdout
    assert "✓ protection tags: warning: no *arr has the tag `no-such-tag` (PROTECT_TAGS)" in done.stdout


def test_a_discord_proxy_is_named(deployment):
    deployment.env.update({"DISCORD_API_BASE": "http://discord-proxy:8080/api/v10",
                           "DISCORD_GATEWAY_URL": "ws://discord-proxy:7878",
                           "DISCORD_TOKEN": FAKE_TOKEN})
    done = run_doctor(deployment)
    assert ("discord endpoints: REST calls go to http://discord-proxy:8080/api/v10 (DISCORD_API_BASE), the gateway "
            "is ws://discord-proxy:7878 (DISCORD_GATEWAY_URL): not Discord's own") in done.stdout, done.stdout
