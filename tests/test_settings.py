"""Settings: defaults, fractions, instances, and one-line errors that name the setting."""
import subprocess
import sys

import pytest

from common.settings import SettingsError, load_settings


def load(**env):
    return load_settings(environ=env, dotenv_path=None)


def test_defaults_match_the_spec():
    settings = load()
    assert settings.instances == ()
    assert settings.poll_interval_seconds == 30
    assert settings.check_interval == 300
    assert settings.stuck_threshold_minutes == 120
    assert settings.min_progress_change == 1.0
    assert settings.min_size_change == 104857600
    assert settings.progress_history_hours == 4
    assert settings.max_snapshots_per_download == 50
    assert settings.cleanup_blocklist is True
    assert settings.tracker_ingest_endpoint == "tcp://127.0.0.1:5555"
    assert settings.tracker_query_endpoint == "tcp://127.0.0.1:5556"
    assert settings.poller_command_endpoint == "tcp://127.0.0.1:5557"
    assert settings.request_timeout_seconds == 5
    assert settings.removal_timeout_seconds == 60
    assert settings.simarr_port == 8989


def test_fractions_are_accepted_so_tests_run_in_seconds():
    settings = load(STUCK_THRESHOLD_MINUTES="0.1", POLL_INTERVAL_SECONDS="0.5")
    assert settings.stuck_threshold_seconds == pytest.approx(6.0)
    assert settings.poll_interval_seconds == 0.5


def test_an_instance_is_configured_by_its_api_key():
    settings = load(SONARR_API_KEY="abc", RADARR_URL="http://nas:7878/radarr/", RADARR_API_KEY="def",
                    LIDARR_URL="http://nas:8686")
    assert [(i.name, i.kind, i.url, i.api_version) for i in settings.instances] == [
        ("sonarr", "sonarr", "http://localhost:8989", "v3"),
        ("radarr", "radarr", "http://nas:7878/radarr", "v3"),
    ]


def test_extra_instances_of_one_kind():
    settings = load(RADARR_API_KEY="k", EXTRA_INSTANCES="radarr4k, anime",
                    RADARR4K_URL="http://nas:7879", RADARR4K_API_KEY="k4",
                    ANIME_KIND="sonarr", ANIME_URL="https://nas/anime", ANIME_API_KEY="ka")
    assert [(i.name, i.kind, i.url) for i in settings.instances] == [
        ("radarr", "radarr", "http://localhost:7878"),
        ("radarr4k", "radarr", "http://nas:7879"),
        ("anime", "sonarr", "https://nas/anime"),
    ]


@pytest.mark.parametrize("env, named", [
    ({"STUCK_THRESHOLD_MINUTES": "abc"}, "STUCK_THRESHOLD_MINUTES='abc'"),
    ({"POLL_INTERVAL_SECONDS": "0"}, "POLL_INTERVAL_SECONDS='0'"),
    ({"MIN_SIZE_CHANGE": "-5"}, "MIN_SIZE_CHANGE='-5'"),
    ({"MAX_SNAPSHOTS_PER_DOWNLOAD": "2.5"}, "MAX_SNAPSHOTS_PER_DOWNLOAD='2.5'"),
    ({"CLEANUP_BLOCKLIST": "maybe"}, "CLEANUP_BLOCKLIST='maybe'"),
    ({"SONARR_API_KEY": "k", "SONARR_URL": "localhost:8989"}, "SONARR_URL='localhost:8989'"),
    ({"TRACKER_QUERY_ENDPOINT": "127.0.0.1:5556"}, "TRACKER_QUERY_ENDPOINT='127.0.0.1:5556'"),
    ({"DISCORD_CHANNEL_ID": "general"}, "DISCORD_CHANNEL_ID='general'"),
    ({"SIMARR_PORT": "70000"}, "SIMARR_PORT='70000'"),
    ({"EXTRA_INSTANCES": "radarr4k", "RADARR4K_API_KEY": "k"}, "RADARR4K_URL"),
])
def test_a_bad_value_is_one_line_naming_setting_and_value(env, named):
    with pytest.raises(SettingsError) as raised:
        load(**env)
    message = str(raised.value)
    assert named in message
    assert "\n" not in message


def test_a_bad_key_setting_never_echoes_the_secret():
    with pytest.raises(SettingsError) as raised:
        load(EXTRA_INSTANCES="radarr4k", RADARR4K_URL="http://x:1", RADARR4K_KIND="nope",
             RADARR4K_API_KEY="supersecret")
    assert "supersecret" not in str(raised.value)


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("STUCK_THRESHOLD_MINUTES=30\nPOLL_INTERVAL_SECONDS=10\n")
    settings = load_settings(environ={"POLL_INTERVAL_SECONDS": "5"}, dotenv_path=dotenv)
    assert settings.stuck_threshold_minutes == 30
    assert settings.poll_interval_seconds == 5


@pytest.mark.parametrize("process", ["tracker", "poller", "bot", "progress"])
def test_processes_stop_at_start_with_one_line_and_no_traceback(process, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "STUCK_THRESHOLD_MINUTES": "abc"}
    done = subprocess.run([sys.executable, "-m", "services", process], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "discarr: setting STUCK_THRESHOLD_MINUTES='abc' is invalid: "
        "expected a number (fractions such as 0.1 are allowed)"]


def test_env_example_documents_the_defaults():
    from pathlib import Path

    from common.settings import Settings
    example = Path(__file__).resolve().parent.parent / ".env.example"
    assert load_settings(environ={}, dotenv_path=example) == Settings()


def test_download_clients_are_configured_by_their_url():
    settings = load(QBITTORRENT_URL="http://nas:8080/", QBITTORRENT_USERNAME="admin", QBITTORRENT_PASSWORD="pw",
                    EXTRA_DOWNLOAD_CLIENTS="transmission-seedbox",
                    TRANSMISSION_SEEDBOX_URL="https://seedbox:9091/transmission/rpc")
    qbit, seedbox = settings.download_clients
    assert (qbit.name, qbit.kind, qbit.url, qbit.username, qbit.password) == (
        "qbittorrent", "qbittorrent", "http://nas:8080", "admin", "pw")
    assert (seedbox.name, seedbox.kind, seedbox.password) == ("transmission-seedbox", "transmission", "")
    assert "pw" not in repr(settings)
    assert load().download_clients == () and load().cleanup_private == "keep"
    assert load(CLEANUP_PRIVATE="Remove").cleanup_private == "remove"
    # Transmission's RPC path is added when only host and port are given.
    assert load(TRANSMISSION_URL="http://nas:9091").download_clients[0].url == "http://nas:9091/transmission/rpc"


@pytest.mark.parametrize("env, message", [
    ({"CLEANUP_PRIVATE": "sometimes"}, "setting CLEANUP_PRIVATE='sometimes' is invalid: expected keep"),
    ({"QBITTORRENT_URL": "nas:8080"}, "setting QBITTORRENT_URL='nas:8080' is invalid: expected a URL"),
    ({"EXTRA_DOWNLOAD_CLIENTS": "seedbox"},
     "setting SEEDBOX_KIND='' is invalid: expected one of qbittorrent, transmission, deluge, nzbget, sabnzbd"),
    ({"EXTRA_DOWNLOAD_CLIENTS": "qbit2"}, "setting QBIT2_URL='' is invalid: download client qbit2 needs a URL"),
])
def test_bad_download_client_settings_name_the_setting(env, message):
    with pytest.raises(SettingsError) as raised:
        load(**env)
    assert str(raised.value).startswith(message)
