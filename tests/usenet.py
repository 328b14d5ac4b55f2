"""Real usenet downloading for the tests: a small NNTP server on loopback and a real NZBGet 21.

`NNTPServer` serves yEnc articles that `post()` made from the test's files (with real
`par2 create` recovery files when asked); `NZBGet` is a real nzbget process with a fresh
home in the test's tmp_path that downloads them from it. The server's controls change
what NZBGet sees while it downloads: `throttle_bytes_per_second`, `withheld` (articles
answered 430), `hang` (BODY/ARTICLE never answered). Nothing leaves the loopback.

What NZBGet 21.0 reports over JSON-RPC, as observed with these fixtures
(tests/test_usenet_fixtures.py; Unpack=no, ParCheck=auto, 64 KiB articles):

- Sizes come in 32-bit halves plus MB: `RemainingSizeLo`/`Hi`/`MB`, `PausedSize*`,
  `FileSize*`, `DownloadedSize*` (`size_of()` joins them). `listgroups` items carry `NZBID`
  (also `FirstID`/`LastID`, no `ID`); `history` items carry both `ID` and `NZBID`.
- `Parameters` is `[{"Name": "drone", "Value": "<32 hex>"}, {"Name": "*Unpack:", "Value": "yes"}]`
  in the queue and the history alike (NZBGet adds "*Unpack:" itself).
- `listgroups` `Status` while downloading: "DOWNLOADING" (`ActiveDownloads` > 0); a job
  waiting for a slot or a client paused with `pausedownload`: "QUEUED" (`ActiveDownloads` 0,
  `PausedSize` 0; only `status` tells: `DownloadPaused` true, `ServerStandBy` true); a job
  paused itself: "PAUSED" (`RemainingSize` == `PausedSize`).
  Post-processing, in order: "RENAMING", "LOADING_PARS", "VERIFYING_SOURCES", ("REPAIRING",
  "VERIFYING_REPAIRED" when articles were missing), "RENAMING", "UNPACKING" (shown even with
  Unpack=no), "MOVING", "PP_FINISHED"; about 1-2 s in all for a few MB. `ParStatus` in the
  queue turns "SUCCESS"/"FAILURE" during it. `PostStageProgress` is garbage while downloading.
- ParCheck=auto holds the par2 volumes back: `RemainingSize` never reaches 0; it stays at
  `PausedSize` (> 0) through post-processing (Sonarr uses `RemainingSize - PausedSize`).
  When articles are missing, NZBGet unpauses volumes during "VERIFYING_SOURCES", so
  `RemainingSize` falls again while the status is a post-processing one.
- `Health`/`CriticalHealth` are per mille. CriticalHealth = (size - 2 * par size) / (size -
  par size): 799 with 20 % par2, 949 with 5 % (4 MB), and 1000 for a job without par2 files
  (NZBGet's own health check then assumes 850): such a job missing any article shows
  "DOWNLOADING" with `Health` < `CriticalHealth` (934 < 1000 at 5 % missing), downloads on,
  and ends "FAILURE/HEALTH" with `DeleteStatus` "NONE".
- History, sound job with par2: `Status` "SUCCESS/PAR", `ParStatus` "SUCCESS", `DeleteStatus`
  "NONE", `MarkStatus` "NONE", `MoveStatus` "SUCCESS", `Health` 1000; without par2 files:
  "SUCCESS/HEALTH", `ParStatus` "NONE". Repaired (10 % of the file missing, 20 % par2):
  "SUCCESS/PAR", "SUCCESS", "NONE", "NONE", `Health` 901 / `CriticalHealth` 799 (4 MB).
- Below critical health (40 % missing, 5 % par2), by HealthCheck:
  "delete" and "park": the job leaves the queue at the article that crosses the line
  (for a blink `listgroups` shows it "PP_FINISHED" with `DeleteStatus` "HEALTH"); history
  `Status` "FAILURE/HEALTH", `ParStatus` "NONE", `DeleteStatus` "HEALTH", `MarkStatus`
  "NONE", `Health` 934 < `CriticalHealth` 949 (park keeps the files, delete removes them).
  "none": it downloads on, "DOWNLOADING" with `Health` < `CriticalHealth` (down to 590 < 949),
  then history "FAILURE/PAR", `ParStatus` "FAILURE", `DeleteStatus` "NONE".
  "pause": it stays in the queue "PAUSED", `Health` 934 < `CriticalHealth` 949.
- A server that stops answering: the job stays "DOWNLOADING" with `ActiveDownloads` > 0 and
  its sizes frozen; `status` `DownloadRate` is an average that only decays (about 330000 to
  130000 B/s over 4 s at 300 KB/s), never 0 at once.

On the wire NZBGet 21 sends only `AUTHINFO USER`, `AUTHINFO PASS` (at connect, since it has
credentials), `BODY <message-id>` and, when it drops an idle connection, `quit`.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import socketserver
import subprocess
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest
import requests

from tests.conftest import free_port, wait_until
from tests.torrent_clients import stop_process

INSTALL_HINT = "is not installed; install it with `apt-get install nzbget par2` (.ci/run does this in CI)"
GROUP = "alt.binaries.discarr"
POSTER = "discarr tests <tests@discarr.invalid>"


def require(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} {INSTALL_HINT}")


@dataclass
class Article:
    message_id: str  # without the angle brackets, as an NZB <segment> names it
    group: str
    subject: str
    body: bytes  # the yEnc lines, CRLF-terminated, not dot-stuffed


class NNTPServer:
    """An NNTP reader server on loopback with the commands NZBGet 21 uses, and fault controls.

    NZBGet 21 (daemon/nntp/NntpConnection.cpp, ArticleDownloader.cpp) reads the greeting,
    sends `AUTHINFO USER`/`AUTHINFO PASS` right away when it has credentials (again on a 480),
    `GROUP` only with ServerN.JoinGroup=yes, then `BODY <message-id>` per article
    (`ARTICLE` with RawArticle=yes) and a lower-case `quit`. Any 2xx greeting is accepted;
    41x/42x/43x means "article not found": with one server it fails the article at once.
    """

    def __init__(self, user: str = "discarr", password: str | None = None) -> None:
        self.user = user
        self.password = password or f"pw-nntp-{os.urandom(4).hex()}"
        self.throttle_bytes_per_second = 0  # all connections together; 0: full speed
        self.withheld: set[str] = set()  # message-ids (no brackets) answered 430
        self.hang = False  # while True, no byte of any article is sent
        self.stalled: set[str] = set()  # message-ids (no brackets) taken and not answered while listed here
        self.articles: dict[str, Article] = {}
        self._groups: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._next_send = 0.0
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._server: socketserver.ThreadingTCPServer | None = None

    def start(self) -> "NNTPServer":
        handler = type("Handler", (_NNTPSession,), {"news": self})
        # Port 0: the kernel picks a free port for the socket we keep, so no other test can take it
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.1,), name=f"nntp-{self.port}",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            for sock in self._sockets:  # wakes sessions blocked reading or hanging
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._server.server_close()
        self._server = None

    def add(self, article: Article) -> None:
        with self._lock:
            self.articles[article.message_id] = article
            self._groups.setdefault(article.group, []).append(article.message_id)

    def group_counts(self, name: str) -> tuple[int, int, int] | None:
        """(count, first, last) article numbers of a group, None when it does not exist."""
        with self._lock:
            ids = self._groups.get(name)
            return None if ids is None else (len(ids), 1, len(ids))

    def lookup(self, message_id: str) -> Article | None:
        if message_id in self.withheld:
            return None
        return self.articles.get(message_id)

    def send(self, sock: socket.socket, data: bytes) -> None:
        """Send an article, paced by the throttle, and stalled for as long as `hang` is set."""
        view = memoryview(data)
        for start in range(0, len(data), 8192):
            chunk = view[start:start + 8192]
            self.wait_while_hung()
            self._pace(len(chunk))
            sock.sendall(chunk)

    def wait_while_hung(self, message_id: str | None = None) -> None:
        while (self.hang or message_id in self.stalled) and not self._stopping.is_set():
            self._stopping.wait(0.05)
        if self._stopping.is_set():
            raise ConnectionAbortedError("the server stopped")

    def _pace(self, size: int) -> None:
        rate = self.throttle_bytes_per_second
        if not rate:
            return
        with self._lock:
            now = time.monotonic()
            self._next_send = max(now, self._next_send) + size / rate
            delay = self._next_send - now
        time.sleep(delay)

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)


class _NNTPSession(socketserver.StreamRequestHandler):
    news: NNTPServer

    def handle(self) -> None:
        self.news.opened(self.connection)
        self.user: str | None = None
        self.authenticated = False
        try:
            self.reply("201 discarr test server ready, posting not allowed")
            for raw in self.rfile:
                if not self.command(raw.decode("latin-1").strip()):
                    break
        except OSError:
            pass  # the client went away or the server stopped
        finally:
            self.news.closed(self.connection)

    def reply(self, line: str, data: bytes = b"") -> None:
        self.connection.sendall(line.encode("latin-1") + b"\r\n")
        if data:
            self.news.send(self.connection, data)

    def command(self, line: str) -> bool:
        """Answer one command line; False ends the session."""
        verb, _, argument = line.partition(" ")
        verb, argument = verb.upper(), argument.strip()
        if verb == "QUIT":
            self.reply("205 bye")
            return False
        if verb == "CAPABILITIES":
            self.reply("101 capability list follows", b"VERSION 2\r\nREADER\r\nAUTHINFO USER\r\n.\r\n")
        elif verb == "MODE" and argument.upper() == "READER":
            self.reply("201 posting not allowed")
        elif verb == "AUTHINFO":
            self.authinfo(argument)
        elif verb == "DATE":
            self.reply(time.strftime("111 %Y%m%d%H%M%S", time.gmtime()))
        elif verb in ("GROUP", "BODY", "ARTICLE", "STAT") and not self.authenticated:
            self.reply("480 authentication required")
        elif verb == "GROUP":
            counts = self.news.group_counts(argument)
            self.reply("411 no such group" if counts is None else "211 %d %d %d %s" % (*counts, argument))
        elif verb in ("BODY", "ARTICLE", "STAT"):
            self.article(verb, argument)
        else:
            self.reply("500 unknown command")
        return True

    def authinfo(self, argument: str) -> None:
        kind, _, value = argument.partition(" ")
        if kind.upper() == "USER":
            self.user = value
            self.reply("381 password required")
        elif kind.upper() == "PASS" and self.user is None:
            self.reply("482 send AUTHINFO USER first")
        elif kind.upper() == "PASS":
            self.authenticated = (self.user, value) == (self.news.user, self.news.password)
            self.reply("281 authentication accepted" if self.authenticated else "481 authentication failed")
        else:
            self.reply("501 unknown AUTHINFO form")

    def article(self, verb: str, argument: str) -> None:
        # Only message-ids: NZBGet never asks for articles by number
        if verb != "STAT":  # a hung server (or a stalled article) takes the request and never answers it
            self.news.wait_while_hung(argument.strip("<>"))
        found = self.news.lookup(argument.strip("<>")) if argument.startswith("<") else None
        if found is None:
            self.reply("430 no such article")
            return
        if verb == "STAT":
            self.reply(f"223 0 {argument}")
            return
        wire = _dot_stuffed(found.body)
        if verb == "ARTICLE":
            headers = (f"Path: discarr!not-for-mail\r\nFrom: {POSTER}\r\nNewsgroups: {found.group}\r\n"
                       f"Subject: {found.subject}\r\nMessage-ID: <{found.message_id}>\r\n\r\n")
            self.reply(f"220 0 {argument}", headers.encode("latin-1") + wire)
        else:
            self.reply(f"222 0 {argument}", wire)


def _dot_stuffed(body: bytes) -> bytes:
    """The body as NNTP sends it: a leading '.' doubled, then the '.' line that ends it."""
    return re.sub(rb"(?m)^\.", b"..", body) + b".\r\n"


# yEnc: every byte + 42; NUL, LF, CR and '=' always escaped ('=' then byte + 64), TAB and
# space too at a line's start or end. A '.' at a line's start is left to NNTP dot-stuffing.
_YENC_SHIFT = bytes((b + 42) % 256 for b in range(256))
_YENC_CRITICAL = re.compile(rb"[\x00\n\r=]")


def _yenc_escape(match: re.Match) -> bytes:
    return b"=" + bytes([(match[0][0] + 64) % 256])


def yenc_line(data: bytes) -> bytes:
    line = _YENC_CRITICAL.sub(_yenc_escape, data.translate(_YENC_SHIFT))
    # An escape's second byte is never TAB or space, so these are plain data bytes
    if line[:1] in (b"\t", b" "):
        line = b"=" + bytes([line[0] + 64]) + line[1:]
    if line[-1:] in (b"\t", b" "):
        line = line[:-1] + b"=" + bytes([line[-1] + 64])
    return line


def yenc_part(name: str, data: bytes, number: int, total: int, begin: int, file_size: int,
              file_crc: int, line_length: int = 128) -> bytes:
    """One article body of a multi-part yEnc post: `data` is the file's bytes from offset `begin`."""
    lines = [f"=ybegin part={number} total={total} line={line_length} size={file_size} name={name}".encode(),
             f"=ypart begin={begin + 1} end={begin + len(data)}".encode()]
    lines += [yenc_line(data[i:i + line_length]) for i in range(0, len(data), line_length)]
    trailer = f"=yend size={len(data)} part={number} pcrc32={zlib.crc32(data):08x}"
    if number == total:
        trailer += f" crc32={file_crc:08x}"
    lines.append(trailer.encode())
    return b"\r\n".join(lines) + b"\r\n"


@dataclass
class Posting:
    """What `post()` put on the server: the NZB, and each file's articles (par2 files too) in part order."""
    nzb: str
    message_ids: dict[str, list[str]] = field(default_factory=dict)

    def spread(self, name: str, fraction: float) -> set[str]:
        """About `fraction` of a file's articles, evenly spread over it (to withhold them)."""
        ids = self.message_ids[name]
        count = max(1, round(len(ids) * fraction))
        return {ids[int((i + 0.5) * len(ids) / count)] for i in range(count)}


def post(server: NNTPServer, files: list[Path], part_size: int = 65536, redundancy: int | None = None,
         group: str = GROUP) -> Posting:
    """Post files (all in one directory) to `server`, with par2 files of `redundancy` percent if given.

    The par2 block size is the part size, so each missing article costs exactly one block.
    """
    files = list(files)
    if redundancy is not None:
        require("par2")
        folder = files[0].parent
        subprocess.run(["par2", "create", "-q", f"-r{redundancy}", f"-s{part_size}", f"{files[0].name}.par2",
                        *(f.name for f in files)], cwd=folder, check=True, capture_output=True, timeout=60)
        files += sorted(folder.glob(f"{files[0].name}*.par2"))
    posting = Posting(nzb="")
    date = int(time.time())
    entries = []
    for index, path in enumerate(files, 1):
        data = path.read_bytes()
        total = max(1, -(-len(data) // part_size))
        crc = zlib.crc32(data)
        segments = []
        for number in range(1, total + 1):
            begin = (number - 1) * part_size
            body = yenc_part(path.name, data[begin:begin + part_size], number, total, begin, len(data), crc)
            article = Article(f"{uuid.uuid4().hex}@discarr.invalid", group,
                              f'[{index}/{len(files)}] - "{path.name}" yEnc ({number}/{total})', body)
            server.add(article)
            posting.message_ids.setdefault(path.name, []).append(article.message_id)
            segments.append(f'      <segment bytes="{len(body)}" number="{number}">'
                            f"{escape(article.message_id)}</segment>")
        subject = f'[{index}/{len(files)}] - "{path.name}" yEnc (1/{total})'
        entries.append(f'  <file poster={quoteattr(POSTER)} date="{date}" subject={quoteattr(subject)}>\n'
                       f"    <groups><group>{escape(group)}</group></groups>\n"
                       "    <segments>\n" + "\n".join(segments) + "\n    </segments>\n  </file>")
    # No DOCTYPE: a parser that fetched the DTD would leave the loopback
    posting.nzb = ('<?xml version="1.0" encoding="utf-8"?>\n<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb">\n'
                   + "\n".join(entries) + "\n</nzb>\n")
    return posting


def size_of(item: dict[str, Any], name: str) -> int:
    """A 64-bit size NZBGet sends as two 32-bit halves (`RemainingSizeLo`/`RemainingSizeHi`)."""
    return item[f"{name}Hi"] << 32 | item[f"{name}Lo"]


class NZBGetError(Exception):
    pass


class NZBGet:
    """One nzbget server process, its JSON-RPC at `url`, downloading from one `NNTPServer`.

    `health_check` is NZBGet's HealthCheck: "delete" (a job below critical health goes to the
    history at once as FAILURE/HEALTH), "park", "pause" or "none" (it downloads on).
    ParCheck=auto, NZBGet's default: it downloads the small .par2 index at once and holds the
    recovery volumes back (paused) unless a repair needs them.
    """

    def __init__(self, workdir: Path, news: NNTPServer, name: str = "nzbget", health_check: str = "delete") -> None:
        self.name = name
        self.home = workdir / name
        self.home.mkdir(parents=True)
        self.news = news
        self.health_check = health_check
        self.port = free_port()
        self.username = "nzbget"
        self.password = f"pw-{name}-{os.urandom(4).hex()}"
        self.process: subprocess.Popen | None = None
        self.session = requests.Session()
        self.session.auth = (self.username, self.password)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.home / "nzbget.log"

    def start(self) -> "NZBGet":
        for folder in ("dst", "inter", "nzb", "queue", "tmp", "scripts"):
            (self.home / folder).mkdir()
        options = {
            "MainDir": self.home, "DestDir": self.home / "dst", "InterDir": self.home / "inter",
            "NzbDir": self.home / "nzb", "QueueDir": self.home / "queue", "TempDir": self.home / "tmp",
            "ScriptDir": self.home / "scripts", "LockFile": self.home / "nzbget.lock", "LogFile": self.log,
            "WebDir": "", "ConfigTemplate": "", "WriteLog": "append", "DetailTarget": "log",
            "ControlIP": "127.0.0.1", "ControlPort": self.port, "SecureControl": "no",
            "ControlUsername": self.username, "ControlPassword": self.password,
            "RestrictedUsername": "", "AddUsername": "", "AuthorizedIP": "",
            "Server1.Active": "yes", "Server1.Name": "loopback", "Server1.Host": "127.0.0.1",
            "Server1.Port": self.news.port, "Server1.Username": self.news.user,
            "Server1.Password": self.news.password, "Server1.Encryption": "no",
            "Server1.Connections": 4, "Server1.JoinGroup": "no",
            "Category1.Name": "tv-sonarr", "Category2.Name": "radarr",
            "ParCheck": "auto", "ParRepair": "yes", "Unpack": "no", "HealthCheck": self.health_check,
            "DiskSpace": 0, "NzbDirInterval": 0, "UpdateCheck": "none",
        }
        conf = self.home / "nzbget.conf"
        conf.write_text("".join(f"{key}={value}\n" for key, value in options.items()))
        console = open(self.home / "console.log", "ab")
        # -s: the server in the foreground, so SIGTERM reaches it and it saves its queue and exits
        self.process = subprocess.Popen(["nzbget", "-s", "-c", str(conf), "-o", "OutputMode=loggable"],
                                        stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                        cwd=self.home)
        console.close()
        wait_until(self._answers, 30, f"nzbget {self.name} to answer")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"nzbget exited with {self.process.returncode}: {self.logs()}")
        try:
            return bool(self.rpc("version"))
        except requests.ConnectionError:
            return False

    def rpc(self, method: str, *params: Any) -> Any:
        answer = self.session.post(f"{self.url}/jsonrpc", json={"method": method, "params": list(params), "id": 1},
                                   timeout=10)
        answer.raise_for_status()
        body = answer.json()
        if body.get("error"):
            raise NZBGetError(f"{method}: {body['error']}")
        return body["result"]

    def append(self, nzb: str, name: str, category: str = "tv-sonarr", parameters: dict[str, str] | None = None,
               priority: int = 0, paused: bool = False) -> int:
        """Add an NZB as Sonarr's NzbgetProxy.DownloadNzb does (NZBGet 16+); returns the NZBID.

        Sonarr names the file after the release title plus ".nzb" and passes its drone id as
        the flat post-processing parameter list ["drone", "<32 hex>"].
        """
        flat = [item for pair in (parameters or {}).items() for item in pair]
        nzb_id = self.rpc("append", f"{name}.nzb", base64.b64encode(nzb.encode()).decode(), category, priority,
                          False, paused, "", 0, "all", flat)
        if nzb_id <= 0:
            raise NZBGetError(f"append refused {name}: {nzb_id}")
        return nzb_id

    def groups(self) -> list[dict[str, Any]]:
        return self.rpc("listgroups")

    def history(self) -> list[dict[str, Any]]:
        return self.rpc("history")

    def queued(self, nzb_id: int) -> dict[str, Any] | None:
        return next((group for group in self.groups() if group["NZBID"] == nzb_id), None)

    def finished(self, nzb_id: int) -> dict[str, Any] | None:
        return next((item for item in self.history() if item["NZBID"] == nzb_id), None)

    def finished_by_drone(self, drone: str) -> dict[str, Any] | None:
        """The history entry of the job Sonarr added with this drone id."""
        return next((item for item in self.history()
                     if any(p["Name"] == "drone" and p["Value"] == drone for p in item["Parameters"])), None)

    def pause_all(self) -> None:
        self.rpc("pausedownload")

    def resume_all(self) -> None:
        self.rpc("resumedownload")

    def logs(self) -> str:
        return "\n".join(f"--- {self.name}/{path.name}\n{path.read_text(errors='replace')[-6000:]}"
                         for path in (self.log, self.home / "console.log") if path.exists())

    def stop(self) -> None:
        stop_process(self.process)


@pytest.fixture
def news_server():
    """A running NNTPServer, stopped at the end of the test."""
    server = NNTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def nzbget(tmp_path: Path, news_server: NNTPServer, request: pytest.FixtureRequest):
    """A factory of running NZBGets downloading from `news_server`, all stopped at the end of the test.

    Their logs are printed when the test fails.
    """
    require("nzbget")
    started: list[NZBGet] = []

    def start(name: str = "nzbget", **options: Any) -> NZBGet:
        client = NZBGet(tmp_path, news_server, name, **options)
        started.append(client)
        return client.start()

    yield start
    for client in started:
        client.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("\n".join(client.logs() for client in started))
