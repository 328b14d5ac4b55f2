"""Network security: loopback by default, CURVE everywhere else, and secrets never written anywhere."""
import json

import pytest
import zmq

from common.settings import CurveKeys, SettingsError, load_settings
from common.sockets import RequestClient, ServiceUnavailable
from tests.conftest import wait_until


def new_keys():
    server_public, server_secret = zmq.curve_keypair()
    client_public, client_secret = zmq.curve_keypair()
    return {"CURVE_SERVER_PUBLIC_KEY": server_public.decode(), "CURVE_SERVER_SECRET_KEY": server_secret.decode(),
            "CURVE_CLIENT_PUBLIC_KEY": client_public.decode(), "CURVE_CLIENT_SECRET_KEY": client_secret.decode()}


def curve_of(env):
    return load_settings(environ=env, dotenv_path=None).curve


def test_an_endpoint_beyond_loopback_without_keys_is_refused_at_start(deployment):
    deployment.env["TRACKER_QUERY_ENDPOINT"] = "tcp://0.0.0.0:5556"
    done = deployment.cli("tracker")
    assert done.returncode == 2
    assert done.stderr.strip() == ("discarr: setting TRACKER_QUERY_ENDPOINT='tcp://0.0.0.0:5556' reaches beyond "
                                   "this machine: set the CURVE_* keys (discarr keys generate) or use a "
                                   "127.0.0.1 endpoint")


def test_keys_generate_prints_settings_that_load():
    from click.testing import CliRunner

    from services.cli import main
    result = CliRunner().invoke(main, ["keys", "generate"])
    assert result.exit_code == 0
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert isinstance(curve_of(dict(env, TRACKER_INGEST_ENDPOINT="tcp://10.0.0.2:5555")), CurveKeys)


def test_half_a_key_set_is_a_clear_error():
    env = new_keys()
    del env["CURVE_CLIENT_SECRET_KEY"]
    with pytest.raises(SettingsError, match="CURVE_CLIENT_SECRET_KEY=<hidden> is invalid"):
        curve_of(env)


def test_with_curve_the_whole_chain_works_and_a_wrong_key_is_rejected(deployment):
    keys = new_keys()
    deployment.env.update(keys)
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "empty")
    deployment.control("sonarr", "POST", "downloads", {"title": "Encrypted.Show.S01E01", "size": 10 ** 9,
                                                       "state": "downloading", "rate": 10 ** 6})
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: deployment.cli_json("check")["tracked"] == 1, 30, "the snapshot over CURVE", interval=0.5)

    endpoint = deployment.env["TRACKER_QUERY_ENDPOINT"]
    intruders = {"no keys": None,
                 "its own client key": curve_of(dict(new_keys(), CURVE_SERVER_PUBLIC_KEY=keys["CURVE_SERVER_PUBLIC_KEY"])),
                 "a wrong server key": curve_of(dict(keys, CURVE_SERVER_PUBLIC_KEY=new_keys()["CURVE_SERVER_PUBLIC_KEY"]))}
    for curve in intruders.values():
        with RequestClient("tracker", endpoint, 1.0, curve=curve) as client:
            with pytest.raises(ServiceUnavailable):
                client.request("check")
    with RequestClient("tracker", endpoint, 3.0, curve=curve_of(keys)) as client:
        assert client.request("check")["tracked"] == 1


def test_secrets_never_appear_in_anything_a_run_wrote(deployment):
    keys = new_keys()
    deployment.env.update(keys)
    deployment.env["DISCORD_TOKEN"] = "MTIz.discord-token-secret.abc"
    deployment.simulate("sonarr", "radarr")
    deployment.env["RADARR_API_KEY"] = "radarr-wrong-key-secret"  # refused: its error is logged
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.02", "LOG_LEVEL": "DEBUG"})
    deployment.start("simarr", "--scenario", "empty")
    deployment.control("sonarr", "POST", "downloads", {"title": "Stalled.Show.S01E01", "size": 10 ** 9,
                                                       "downloaded": 10 ** 8, "state": "stalled"})
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: deployment.cli_json("progress")["stuck"], 30, "a stuck download", interval=0.5)
    outputs = [deployment.cli("progress", "--json"), deployment.cli("cleanup", "--yes", "--json"),
               deployment.cli("check"), deployment.cli("bot")]
    deployment.stop_all()
    written = "".join(o.stdout + o.stderr for o in outputs)
    written += "".join(p.read_text(errors="replace") for p in deployment.workdir.rglob("*") if p.is_file()
                       and not p.name.endswith(".msgpack"))
    written += "".join(p.read_bytes().decode("latin-1") for p in deployment.workdir.rglob("*.msgpack"))
    assert "removed" in written  # the audit log is among what was searched
    secrets = ["MTIz.discord-token-secret.abc", "radarr-wrong-key-secret", deployment.env["SONARR_API_KEY"],
               keys["CURVE_SERVER_SECRET_KEY"], keys["CURVE_CLIENT_SECRET_KEY"]]
    for secret in secrets:
        assert secret not in written
    json.loads(outputs[0].stdout)
