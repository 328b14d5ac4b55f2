"""Real BitTorrent clients for the tests: qbittorrent-nox and transmission-daemon on loopback.

Each client runs as its own process with a fresh profile in the test's tmp_path,
its Web UI / RPC on a free loopback port, DHT, LSD and PeX off (nothing leaves
the machine), and a password of the test's choosing. Torrents are made here
from files of random bytes, so a test knows every hash and every byte.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import deluge_client
import pytest
import requests
from deluge_client.client import DelugeClientException

from tests.conftest import free_port, wait_until

INSTALL_HINT = ("is not installed; install it with `apt-get install qbittorrent-nox transmission-daemon` "
                "(.ci/run does this in CI)")


def require(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} {INSTALL_HINT}")


def bencode(value: Any) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(map(bencode, value)) + b"e"
    return b"d" + b"".join(bencode(key) + bencode(value[key]) for key in sorted(value)) + b"e"


def make_torrent(path: Path, private: bool = False, piece_length: int = 16384) -> tuple[bytes, str]:
    """A single-file .torrent for `path` (no trackers): (metainfo, info hash in lower-case hex)."""
    data = path.read_bytes()
    pieces = b"".join(hashlib.sha1(data[i:i + piece_length]).digest() for i in range(0, len(data), piece_length))
    info: dict[str, Any] = {"name": path.name, "length": len(data), "piece length": piece_length, "pieces": pieces}
    if private:
        info["private"] = 1
    return bencode({"info": info}), hashlib.sha1(bencode(info)).hexdigest()


def random_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def _qbittorrent_password_hash(password: str) -> str:
    """qBittorrent's WebUI\\Password_PBKDF2 value: base64 salt and PBKDF2-SHA512 hash."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 100_000, 64)
    return f"@ByteArray({base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()})"


def stop_process(process: subprocess.Popen | None) -> None:
    """Terminate a daemon, killed if it takes more than 10 s."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


class _ClientProcess:
    def __init__(self, workdir: Path, name: str) -> None:
        self.name = name
        self.home = workdir / name
        self.home.mkdir(parents=True)
        self.web_port, self.peer_port = free_port(), free_port()
        self.password = f"pw-{name}-{os.urandom(4).hex()}"
        self.process: subprocess.Popen | None = None

    def _spawn(self, *command: str) -> None:
        log = open(self.home / "client.log", "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        log.close()

    def stop(self) -> None:
        stop_process(self.process)


class QBittorrent(_ClientProcess):
    """One qbittorrent-nox, its Web API v2 at `url`, logged in as admin."""

    def start(self) -> "QBittorrent":
        config = self.home / "qBittorrent" / "config"
        config.mkdir(parents=True)
        (config / "qBittorrent.conf").write_text(
            "[LegalNotice]\nAccepted=true\n\n[BitTorrent]\n"
            "Session\\DHTEnabled=false\nSession\\LSDEnabled=false\nSession\\PeXEnabled=false\n"
            f"Session\\Port={self.peer_port}\nSession\\DefaultSavePath={self.home / 'downloads'}\n\n"
            f"[Preferences]\nWebUI\\Port={self.web_port}\nWebUI\\Address=127.0.0.1\nWebUI\\Username=admin\n"
            f"WebUI\\Password_PBKDF2=\"{_qbittorrent_password_hash(self.password)}\"\n"
            "WebUI\\LocalHostAuth=true\nWebUI\\CSRFProtection=false\nWebUI\\HostHeaderValidation=false\n")
        self._spawn("qbittorrent-nox", f"--profile={self.home}")
        self.session = requests.Session()
        wait_until(self._login, 30, f"qbittorrent-nox {self.name} to answer")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _login(self) -> bool:
        try:
            answer = self.session.post(f"{self.url}/api/v2/auth/login",
                                       data={"username": "admin", "password": self.password}, timeout=2)
        except requests.ConnectionError:
            return False
        return answer.text == "Ok."

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        answer = self.session.request(method, f"{self.url}/api/v2/{path}", timeout=10, **kwargs)
        answer.raise_for_status()
        return answer

    def add_torrent(self, metainfo: bytes, save_path: Path, category: str = "", **options: str) -> None:
        self.api("POST", "torrents/add", files={"torrents": ("release.torrent", metainfo)},
                 data={"savepath": str(save_path), "category": category, **options})

    def add_magnet(self, info_hash: str, category: str = "") -> None:
        self.api("POST", "torrents/add", data={"urls": f"magnet:?xt=urn:btih:{info_hash}", "category": category})

    def add_peer(self, info_hash: str, other: "QBittorrent") -> None:
        self.api("POST", "torrents/addPeers", data={"hashes": info_hash, "peers": f"127.0.0.1:{other.peer_port}"})

    def torrent(self, info_hash: str) -> dict[str, Any] | None:
        found = self.api("GET", "torrents/info", params={"hashes": info_hash}).json()
        return found[0] if found else None


class Transmission(_ClientProcess):
    """One transmission-daemon, its RPC at `url`, with basic auth."""

    def start(self) -> "Transmission":
        settings = {
            "rpc-port": self.web_port, "rpc-bind-address": "127.0.0.1", "rpc-authentication-required": True,
            "rpc-username": "admin", "rpc-password": self.password, "rpc-whitelist-enabled": False,
            "rpc-host-whitelist-enabled": False, "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
            "utp-enabled": False, "peer-port": self.peer_port, "port-forwarding-enabled": False,
            "download-dir": str(self.home / "downloads"), "incomplete-dir-enabled": False,
        }
        (self.home / "settings.json").write_text(json.dumps(settings))
        self._spawn("transmission-daemon", "--foreground", "--config-dir", str(self.home))
        self.session = requests.Session()
        self.session.auth = ("admin", self.password)
        wait_until(self._answers, 30, f"transmission-daemon {self.name} to answer")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/transmission/rpc"

    def _answers(self) -> bool:
        try:
            return self.rpc("session-get")["result"] == "success"
        except requests.ConnectionError:
            return False

    def rpc(self, method: str, **arguments: Any) -> dict[str, Any]:
        for _ in range(2):
            answer = self.session.post(self.url, json={"method": method, "arguments": arguments}, timeout=10)
            if answer.status_code == 409:  # Transmission's CSRF token: take it and ask again
                self.session.headers["X-Transmission-Session-Id"] = answer.headers["X-Transmission-Session-Id"]
                continue
            answer.raise_for_status()
            return answer.json()
        raise AssertionError("transmission kept answering 409")

    def add_torrent(self, metainfo: bytes, save_path: Path) -> None:
        self.rpc("torrent-add", metainfo=base64.b64encode(metainfo).decode(), **{"download-dir": str(save_path)})

    def torrent(self, info_hash: str) -> dict[str, Any] | None:
        found = self.rpc("torrent-get", ids=[info_hash], fields=["hashString", "labels", "status"])
        torrents = found["arguments"]["torrents"]
        return torrents[0] if torrents else None


@pytest.fixture
def qbittorrent(tmp_path: Path):
    """A factory of running qbittorrent-nox processes, all stopped at the end of the test."""
    require("qbittorrent-nox")
    started: list[QBittorrent] = []

    def start(name: str = "qbittorrent") -> QBittorrent:
        client = QBittorrent(tmp_path, name)
        started.append(client)
        return client.start()

    yield start
    for client in started:
        client.stop()


@pytest.fixture
def transmission(tmp_path: Path):
    require("transmission-daemon")
    client = Transmission(tmp_path, "transmission")
    yield client.start()
    client.stop()


class Deluge(_ClientProcess):
    """One deluged, its daemon RPC at `url` (web_port is the daemon's port), with an admin account.

    `prefs` override core.conf, such as the queue's slots (`max_active_downloading`).
    """

    def __init__(self, workdir: Path, name: str, **prefs: Any) -> None:
        super().__init__(workdir, name)
        self.prefs = prefs
        self.client: deluge_client.DelugeRPCClient | None = None

    def start(self) -> "Deluge":
        downloads = str(self.home / "downloads")
        core = {
            "daemon_port": self.web_port, "allow_remote": False, "new_release_check": False,
            "listen_interface": "127.0.0.1", "listen_ports": [self.peer_port, self.peer_port], "random_port": False,
            "dht": False, "lsd": False, "utpex": False, "upnp": False, "natpmp": False,
            "download_location": downloads, "move_completed_path": downloads, "torrentfiles_location": downloads,
            "ignore_limits_on_local_network": False,  # else a torrent's speed limit does not hold on loopback
            **self.prefs,
        }
        (self.home / "core.conf").write_text(json.dumps({"file": 1, "format": 1}) + json.dumps(core))
        (self.home / "auth").write_text(f"admin:{self.password}:10\n")  # 10: Deluge's admin level
        # Errors only: Deluge 2.0.3's logger fails on Python 3.11, each record comes out as a TypeError traceback.
        self._spawn("deluged", "--do-not-daemonize", "--config", str(self.home), "--loglevel", "error")
        wait_until(self._login, 30, f"deluged {self.name} to answer")
        return self

    @property
    def url(self) -> str:
        return f"deluge://127.0.0.1:{self.web_port}"

    def _login(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"deluged {self.name} exited: {(self.home / 'client.log').read_text()[-2000:]}")
        client = deluge_client.DelugeRPCClient("127.0.0.1", self.web_port, "admin", self.password,
                                               decode_utf8=True, timeout=5)
        try:
            client.connect()
        except (OSError, DelugeClientException):
            client._socket.close()
            return False
        self.client = client
        return True

    def rpc(self, method: str, *args: Any) -> Any:
        return self.client.call(method, *args)

    def add_torrent(self, metainfo: bytes, save_path: Path, **options: Any) -> None:
        """Add a .torrent; `options` are Deluge's torrent options, such as `max_download_speed` (KiB/s)."""
        self.rpc("core.add_torrent_file", "release.torrent", base64.b64encode(metainfo).decode(),
                 {"download_location": str(save_path), **options})

    def add_magnet(self, info_hash: str) -> None:
        self.rpc("core.add_torrent_magnet", f"magnet:?xt=urn:btih:{info_hash}", {})

    def add_peer(self, info_hash: str, other: "Deluge") -> None:
        """Connect this torrent to the other daemon: with DHT, LSD and PeX off and no tracker, none finds another."""
        self.rpc("core.connect_peer", info_hash, "127.0.0.1", other.peer_port)

    def torrent(self, info_hash: str, fields: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The torrent's status fields, as Deluge names them; no fields: all of Deluge's own (a plugin's,
        such as `label`, only when named)."""
        return self.rpc("core.get_torrents_status", {"id": [info_hash]}, list(fields)).get(info_hash)

    def pause(self, info_hash: str) -> None:
        """Pause a torrent, sent until it shows paused: Deluge loses a pause that comes before libtorrent
        has started a torrent just added."""
        wait_until(lambda: self.rpc("core.pause_torrent", info_hash) or (self.torrent(info_hash) or {}).get("state") == "Paused",
                   10, f"{info_hash} to pause", interval=0.5)

    def stop(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client = None
        super().stop()


@pytest.fixture
def deluge(tmp_path: Path):
    """A factory of running deluged processes (two, for a transfer), all stopped at the end of the test."""
    if shutil.which("deluged") is None:
        pytest.skip("deluged is not installed; install it with `apt-get install deluged`")
    started: list[Deluge] = []

    def start(name: str = "deluge", **prefs: Any) -> Deluge:
        client = Deluge(tmp_path, name, **prefs)
        started.append(client)
        return client.start()

    yield start
    for client in started:
        client.stop()
