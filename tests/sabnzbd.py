"""A stand-in for SABnzbd 4.3.3's HTTP API, for the tests (SABnzbd is not packaged here and cannot be vendored).

It answers `GET|POST {url}/api?mode=...&output=json&apikey=...` (and the same under the URL base,
`/sabnzbd/api`, as SABnzbd mounts its pages on both: SABnzbd.py, `cherrypy.tree.mount(main_page, "/")` and
`cherrypy.tree.mount(main_page, cfg.url_base())`, url_base defaulting to "/sabnzbd" in sabnzbd/cfg.py).

Every answer was modelled on SABnzbd's own source at tag 4.3.3 (github.com/sabnzbd/sabnzbd, commit
f24b3ced280e381d0aac8bd9d9d98930ad397a59); the functions each part copies are named where it is done:

- sabnzbd/interface.py: `secured_expose`, `check_apikey`, `MainPage.api` (the API key check and its 403 answer);
- sabnzbd/api.py: `api_handler`, `_api_table`, `report` (the JSON envelope), `_api_version`, `_api_queue`,
  `_api_queue_default`, `_api_queue_delete`, `_api_queue_pause`, `_api_queue_resume`, `_api_queue_purge`,
  `_api_history`, `_api_pause`, `_api_resume`, `_api_fullstatus`, `_api_warnings`, `_api_get_files`,
  `build_header`, `build_queue`, `build_history`, `add_active_history`, `build_file_list`, `build_status`,
  `calc_timeleft`, `del_job_files`;
- sabnzbd/nzbqueue.py: `queue_info` (totals, paging, the `noofslots` quirk), `remove_multiple`, `remove_all`,
  `pause_multiple_nzo`, `resume_multiple_nzo`, `end_job`;
- sabnzbd/nzbstuff.py: `NzbObject` fields (`bytes`, `bytes_tried`, `bytes_missing`, `bytes_par2`,
  `bytes_downloaded`, `remaining`, `labels`, `propagation_delay_left`, `action_line`, `unpack_info`),
  `remove_article` and `check_availability_ratio` (missing articles, "Aborted, cannot be completed"),
  `purge_data` (what a delete leaves on disk);
- sabnzbd/postproc.py: `PostProcessor.delete`, `PostProcessor.get_queue`, `process_job` (the stages and the
  statuses a job shows in post-processing);
- sabnzbd/database.py: `fetch_history`, `unpack_history_info`, `build_history_info`, `get_incomplete_path`,
  `archive`, `remove` (a history row as the API sends it);
- sabnzbd/constants.py: `Status`, `INTERFACE_PRIORITIES`, `STAGES`, `PP_LOOKUP`, `MEBI`/`KIBI`/`GIGI`,
  `MAX_BAD_ARTICLES`;
- sabnzbd/misc.py: `to_units`, `format_time_left`, `calc_age`, `int_conv`, `bool_conv`,
  `clean_comma_separated_list`, `opts_to_pp`, `history_updated`;
- sabnzbd/downloader.py: `Downloader.pause`, `Downloader.resume`, `pause_all`, `unpause_all`;
- sabnzbd/assembler.py: `Assembler.diskspace_check` (a full disk: the downloader pauses, a warning is logged);
- SABnzbd.py: `GUIHandler.emit` (the shape of a warning);
- the published reference, sabnzbd.org/wiki/configuration/4.4/api (repository sabnzbd/sabnzbd.github.io,
  wiki/configuration/4.4/api.html) for the documented parameters. Where it and the source disagree (it shows
  `"mbmissing": "0.0"`, the source formats "%.2f"; it says a refused key answers "error: API Key Incorrect",
  4.x answers HTTP 403 with the bare text), the source is followed.

What SABnzbd tells a client about missing articles and repair data (see `availability_ratio` below):
the queue slot carries `mbmissing` ("%.2f" MiB of articles no server had, `bytes_missing`), and nothing
about the job's par2 data: `bytes_par2`, `bad_articles` and the par2 blocks are internal (logged at debug
level only, in `check_availability_ratio`). The only API view of the repair data is `mode=get_files`,
which lists the job's files, the par2 volumes not yet fetched with status "queued" and a "set" key; their
sizes add up to what `bytes_par2` counts (every file `is_parfile` says is par2, `NzbObject.add_nzf`).
With "Abort jobs that cannot be completed" on (`fail_hopeless_jobs`, default True), SABnzbd itself ends
such a job the moment `check_availability_ratio` fails: it leaves the queue and shows in the history as
`Failed` with `fail_message` "Aborted, cannot be completed - https://sabnzbd.org/not-complete" (the words
translated into the UI language, the URL not) - `abort_hopeless` reproduces that path.
"""
from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

VERSION = "4.3.3"

# sabnzbd/constants.py
GIGI = float(2 ** 30)
MEBI = float(2 ** 20)
KIBI = float(2 ** 10)
MAX_BAD_ARTICLES = 5
REPAIR_PRIORITY, FORCE_PRIORITY, HIGH_PRIORITY, NORMAL_PRIORITY, LOW_PRIORITY = 3, 2, 1, 0, -1
INTERFACE_PRIORITIES = {FORCE_PRIORITY: "Force", REPAIR_PRIORITY: "Repair", HIGH_PRIORITY: "High",
                        NORMAL_PRIORITY: "Normal", LOW_PRIORITY: "Low"}
PRIORITY_NUMBERS = {name: number for number, name in INTERFACE_PRIORITIES.items()}
PP_LOOKUP = {0: "", 1: "R", 2: "U", 3: "D"}
STAGES = {"RSS": 0, "Source": 1, "Download": 2, "Servers": 3, "Repair": 4, "Filejoin": 5, "Unpack": 6,
          "Deobfuscate": 7, "Script": 8}
TAB_UNITS = ("", "K", "M", "G", "T", "P")  # sabnzbd/misc.py


class Status:
    """sabnzbd/constants.py `Status`: Q = shown in the queue, PP = shown in the history."""
    IDLE = "Idle"  # Q: nothing downloading (the queue's own status, also with jobs in it at 0 B/s)
    COMPLETED = "Completed"  # PP
    CHECKING = "Checking"  # Q: pre-check is running
    DOWNLOADING = "Downloading"  # Q
    EXTRACTING = "Extracting"  # PP
    FAILED = "Failed"  # PP
    FETCHING = "Fetching"  # Q: job is downloading extra par2 files
    GRABBING = "Grabbing"  # Q: getting an NZB from an external site
    MOVING = "Moving"  # PP
    PAUSED = "Paused"  # Q
    QUEUED = "Queued"  # Q and PP: waiting for its turn to download or to be post-processed
    QUICK_CHECK = "QuickCheck"  # PP
    REPAIRING = "Repairing"  # PP
    RUNNING = "Running"  # PP: user's post-processing script
    VERIFYING = "Verifying"  # PP
    DELETED = "Deleted"  # Q: deleted, almost gone
    PROPAGATING = "Propagating"  # Q: delayed download (set by the API code only)


QUEUE_STATUSES = (Status.GRABBING, Status.QUEUED, Status.PAUSED, Status.CHECKING, Status.DOWNLOADING,
                  Status.PROPAGATING, Status.FETCHING)
# The statuses a job has while in the post-processor's queue (postproc.py `process`, `process_job`, `parring`;
# newsunpack.py `par2_repair`, `unpacker`), before `process_job` writes it to the history database.
PP_STAGES = (Status.QUEUED, Status.QUICK_CHECK, Status.VERIFYING, Status.REPAIRING, Status.FETCHING,
             Status.EXTRACTING, Status.MOVING, Status.RUNNING)
# What `nzo.set_action_line` says in each stage (newsunpack.py, postproc.py; English UI).
ACTION_LINES = {
    Status.QUEUED: "",
    Status.QUICK_CHECK: "Repair: Quick Checking",  # newsunpack.py: set_action_line(T("Repair"), T("Quick Checking"))
    Status.VERIFYING: "Verifying: 01/12",  # newsunpack.py: set_action_line(T("Verifying"), "%02d/%02d")
    Status.REPAIRING: "Repairing: 42%",  # newsunpack.py: set_action_line(T("Repairing"), "%2d%%")
    Status.FETCHING: "Fetching: Fetching 12 blocks...",  # newsunpack.py: T("Fetching %s blocks...")
    Status.EXTRACTING: "Unpacking: 03/12",  # newsunpack.py: set_action_line(T("Unpacking"), "%02d/%02d")
    Status.MOVING: "Moving: ...",  # postproc.py: set_action_line(T("Moving"), "...")
    Status.RUNNING: "Running script: script.py",  # postproc.py: set_action_line(T("Running script"), script)
}
NOT_COMPLETE = " - https://sabnzbd.org/not-complete"
ABORTED = "Aborted, cannot be completed" + NOT_COMPLETE  # nzbstuff.py `remove_article`
DEFAULT_REQ_COMPLETION_RATE = 100.2  # sabnzbd/cfg.py req_completion_rate

# sabnzbd/api.py error messages
_MSG_NO_VALUE = "expects one parameter"
_MSG_NOT_IMPLEMENTED = "not implemented"
# sabnzbd/interface.py
_MSG_APIKEY_REQUIRED = "API Key Required"
_MSG_APIKEY_INCORRECT = "API Key Incorrect"

# sabnzbd/api.py `_api_table`: every mode and its access level (1 = the NZB key suffices). The stand-in answers
# the modes in MODELLED; the others exist in SABnzbd but are not modelled here (HTTP 501, so a test notices).
API_LEVELS = {
    "server_stats": 2, "get_config": 3, "set_config": 3, "set_config_default": 3, "del_config": 3, "queue": 2,
    "translate": 2, "addfile": 1, "retry": 2, "cancel_pp": 2, "addlocalfile": 1, "switch": 2, "change_cat": 2,
    "change_script": 2, "change_opts": 2, "fullstatus": 2, "status": 2, "history": 2, "get_files": 2,
    "move_nzf_bulk": 2, "addurl": 1, "pause": 2, "resume": 2, "shutdown": 3, "warnings": 2, "showlog": 3,
    "config": 2, "get_cats": 2, "get_scripts": 2, "version": 1, "auth": 1, "restart": 3, "restart_repair": 3,
    "disconnect": 2, "gc_stats": 3, "eval_sort": 3, "watched_now": 2, "resume_pp": 2, "pause_pp": 2,
    "rss_now": 2, "browse": 3, "retry_all": 2, "reset_quota": 3, "test_email": 3, "test_windows": 3,
    "test_notif": 3, "test_osd": 3, "test_pushover": 3, "test_pushbullet": 3, "test_apprise": 3,
    "test_prowl": 3, "test_nscript": 3,
}
QUEUE_NAMES = ("delete", "delete_nzf", "rename", "change_complete_action", "purge", "pause", "resume",
               "priority", "sort")  # api.py `_api_queue_table`: any other name answers the queue itself


# --- sabnzbd/misc.py, copied ------------------------------------------------------------------------------------
def to_units(val: Any, postfix: str = "") -> str:
    """misc.py `to_units`: 1.4 M, 700.0 MB, "0 " (a space, no unit) for nothing."""
    if not isinstance(val, (int, float)):
        return ""
    sign = "-" if val < 0 else ""
    val = abs(val)
    n = 0
    while val > 1023 and n < 5:
        val = val / 1024
        n += 1
    decimals = 1 if n > 1 else 0
    return ("%%s%%.%sf %%s%%s" % decimals) % (sign, val, TAB_UNITS[n], postfix)


def format_time_left(totalseconds: int) -> str:
    """misc.py `format_time_left` (long format): H:MM:SS, or D:HH:MM:SS past a day; "0:00:00" for nothing."""
    if totalseconds > 0:
        minutes, seconds = divmod(totalseconds, 60)
        hours, minutes = divmod(minutes, 60)
        days, hours = divmod(hours, 24)
        if days > 0:
            return "%s:%02d:%02d:%02d" % (days, hours, minutes, seconds)
        return "%s:%02d:%02d" % (hours, minutes, seconds)
    return "0:00:00"


def calc_timeleft(bytesleft: float, bps: float) -> str:
    """api.py `calc_timeleft`."""
    if bytesleft <= 0 or bps <= 0:
        return "0:00:00"
    return format_time_left(int(bytesleft / bps))


def calc_age(date: datetime.datetime) -> str:
    """misc.py `calc_age`: "3d", "5h", "12m"."""
    diff = datetime.datetime.now() - date
    if diff.days:
        return "%dd" % diff.days
    if int(diff.seconds / 3600):
        return "%dh" % (diff.seconds / 3600)
    return "%dm" % (diff.seconds / 60)


def int_conv(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def bool_conv(value: Any) -> bool:
    return bool(int_conv(value))


def clean_comma_separated_list(inp: Any) -> list[str]:
    if isinstance(inp, str):
        inp = inp.split(",")
    return [item.strip() for item in (inp or []) if item.strip()]


def availability_ratio(mb: float, mbmissing: float, par2_mb: float,
                       req_completion_rate: float = DEFAULT_REQ_COMPLETION_RATE,
                       bad_articles: int = MAX_BAD_ARTICLES + 1) -> tuple[bool, float]:
    """nzbstuff.py `NzbObject.check_availability_ratio`, in the figures a client can read: (can succeed, ratio).

        availability_ratio = 100 * (bytes - bytes_missing) / (bytes - bytes_par2)
        job can succeed   <=>  bad_articles <= MAX_BAD_ARTICLES (5)  or  availability_ratio >= req_completion_rate

    `bytes` is the queue slot's `mb`, `bytes_missing` its `mbmissing`; `bytes_par2` is in no API answer but is
    the sum of the par2 files' sizes (`mode=get_files`). `req_completion_rate` is a setting (default 100.2,
    misc.req_completion_rate in sabnzbd.ini; readable with mode=get_config). `bad_articles` (articles missing or
    malformed) is not exposed either; the default here assumes more than five.
    """
    ratio = req_completion_rate
    if mb > par2_mb:
        ratio = 100 * (mb - mbmissing) / (mb - par2_mb)
    if bad_articles <= MAX_BAD_ARTICLES:
        return True, req_completion_rate
    return ratio >= req_completion_rate, ratio


def dumps(data: Any) -> bytes:
    """api.py `report`: json.dumps of ujson 5.10 (requirements.txt), compact, ASCII, "/" escaped as "\\/"."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def _duplicate_key(name: str) -> str:
    """A stand-in for nzbstuff.py `set_duplicate_key` (guessit): "title/season/episode" for a series, else title."""
    match = re.match(r"(.+?)[. _-]+S(\d+)E(\d+)", name, re.I)
    if match:
        return "%s/%d/%d" % (match.group(1).replace(".", " ").strip().lower(), int(match.group(2)),
                             int(match.group(3)))
    return re.split(r"[. _-]+(?:19|20)\d\d", name)[0].replace(".", " ").strip().lower()



def _job_history_fields(job: Any) -> dict[str, Any]:
    """The fields a history slot takes from its job, alike in the database row and the active slot."""
    return {"name": job.final_name, "nzb_name": job.filename, "category": job.cat,
            "pp": PP_LOOKUP.get(job.pp, "X"), "script": job.script, "report": "", "url": job.filename}

# --- the client's state ---------------------------------------------------------------------------------------
@dataclass
class Job:
    """The part of nzbstuff.py `NzbObject` the API shows, queued or post-processing."""
    nzo_id: str
    final_name: str
    cat: str
    bytes: int
    bytes_tried: int
    bytes_missing: int = 0
    bytes_par2: int = 0
    status: str = Status.QUEUED  # nzo.status, never "Downloading" or "Propagating" (build_queue derives those)
    priority: int = NORMAL_PRIORITY
    password: str = ""
    script: str | None = None  # None unless a script of the scripts folder is set (filesystem.is_valid_script)
    pp: int = 3  # opts_to_pp(repair, unpack, delete): +Repair/Unpack/Delete
    propagation_delay_left: int = 0  # minutes
    direct_unpack: str | None = None  # nzo.direct_unpack_progress: "03/12" while DirectUnpack runs, else None
    avg_date: datetime.datetime = field(default_factory=lambda: datetime.datetime.now() - datetime.timedelta(days=1))
    labels_extra: list[str] = field(default_factory=list)  # "DUPLICATE", "ENCRYPTED", "TOO LARGE", ...
    download_path: Path | None = None
    files: list[str] = field(default_factory=list)
    # post-processing
    pp_active: bool = False
    action_line: str = ""
    unpack_info: dict[str, list[str]] = field(default_factory=dict)
    fail_msg: str = ""
    download_time: int = 0
    pp_started: float = 0.0

    @property
    def filename(self) -> str:  # nzo.filename: the NZB's file name
        return self.final_name + ".nzb"

    @property
    def remaining(self) -> int:  # nzbstuff.py `remaining`: missing articles count as tried, so as done
        return self.bytes - self.bytes_tried

    @property
    def bytes_downloaded(self) -> int:
        return max(self.bytes_tried - self.bytes_missing, 0)

    def labels(self) -> list[str]:  # nzbstuff.py `labels`
        labels = list(self.labels_extra)
        if self.propagation_delay_left and self.priority != FORCE_PRIORITY:
            labels.append("PROPAGATING %s min" % self.propagation_delay_left)
        return labels

    def set_unpack_info(self, key: str, msg: str, unique: bool = False) -> None:  # nzbstuff.py `set_unpack_info`
        if unique or key not in self.unpack_info:
            self.unpack_info[key] = [msg]
        else:
            self.unpack_info[key].append(msg)


class NotModelled(Exception):
    """A call SABnzbd answers that the stand-in does not model: HTTP 501, so a test notices."""


class Request(NamedTuple):
    method: str
    path: str
    query: dict[str, str]  # every parameter, first value, the API key included


def _priority_number(priority: Any) -> int:
    if isinstance(priority, int):
        return priority
    return PRIORITY_NUMBERS[priority]


def _queue_status(status: str) -> tuple[str, bool]:
    """The nzo.status a test's queue status stands for, and whether it is propagating."""
    if status not in QUEUE_STATUSES:
        raise ValueError(f"{status!r} is not a queue status of SABnzbd ({', '.join(QUEUE_STATUSES)})")
    if status == Status.PROPAGATING:
        return Status.QUEUED, True
    if status == Status.DOWNLOADING:  # nzo.status is Queued while it downloads; build_queue says Downloading
        return Status.QUEUED, False
    return status, False


class SABnzbdStandIn:
    """SABnzbd 4.3.3's HTTP API on 127.0.0.1:<free port>, in a background thread. Every request is logged.

    `download_dir` is SABnzbd's "Temporary Download Folder" (incomplete), `complete_dir` its "Completed Download
    Folder": jobs get real folders and files there, so a test can see what a delete leaves on disk. Without
    them the stand-in makes (and on close removes) a temporary directory of its own.
    """

    def __init__(self, download_dir: Path | str | None = None, complete_dir: Path | str | None = None, *,
                 api_key: str = "0123456789abcdef0123456789abcdef", nzb_key: str = "fedcba9876543210fedcba9876543210",
                 url_base: str = "/sabnzbd", history_limit: int = 10, fulldisk_autoresume: bool = False,
                 version: str = VERSION) -> None:
        self.api_key = api_key
        self.nzb_key = nzb_key
        self.url_base = url_base.rstrip("/")
        self.history_limit = history_limit  # cfg.history_limit: what mode=history shows for limit=0 (default 10)
        self.fulldisk_autoresume = fulldisk_autoresume  # cfg.fulldisk_autoresume (default False)
        self.version = version
        self._own_dir = None
        if download_dir is None or complete_dir is None:
            self._own_dir = Path(tempfile.mkdtemp(prefix="sabnzbd-standin-"))
        self.download_dir = Path(download_dir) if download_dir is not None else self._own_dir / "incomplete"
        self.complete_dir = Path(complete_dir) if complete_dir is not None else self._own_dir / "complete"
        self.download_dir.mkdir(parents=True, exist_ok=True)
        self.complete_dir.mkdir(parents=True, exist_ok=True)

        self.lock = threading.RLock()
        self.log: list[Request] = []
        self.queue: list[Job] = []  # NzbQueue.__nzo_list, in order
        self.postproc: list[Job] = []  # PostProcessor.history_queue
        self.history: list[dict[str, Any]] = []  # the history database's rows, as database.py stores them
        self._row_ids = itertools.count(1)
        self.paused = False  # Downloader.paused
        self.paused_for_postproc = False  # Downloader.paused_for_postproc (pause_on_post_processing)
        self.paused_all = False  # sabnzbd.PAUSED_ALL
        self.bps = 0.0  # BPSMeter.bps
        self.disk = {"download_dir": [500.0, 200.0], "complete_dir": [500.0, 200.0]}  # [total, free] in GiB
        self._disk_before_full: dict[str, list[float]] | None = None
        self.warnings: list[dict[str, Any]] = []  # GUIHANDLER.store
        self.last_history_update = 1  # sabnzbd.LAST_HISTORY_UPDATE
        self.started = time.time()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                query = {name: values[0] for name, values in
                         (parse_qs(url.query, keep_blank_values=True)
                          | parse_qs(body, keep_blank_values=True)).items()}
                with stand_in.lock:
                    stand_in.log.append(Request(self.command, url.path, query))
                    status, payload, content_type = stand_in.reply(url.path, query)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if content_type.startswith("application/json"):
                    self.send_header("Pragma", "no-cache")  # api.py `report`
                self.send_header("Access-Control-Allow-Origin", "*")  # SABnzbd.py appconfig["/api"]
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- HTTP ---------------------------------------------------------------------------------------------------
    def reply(self, path: str, kwargs: dict[str, str]) -> tuple[int, bytes, str]:
        if path not in ("/api", self.url_base + "/api"):
            return 404, b"Not Found", "text/html;charset=utf-8"
        # interface.py `secured_expose(check_api_key=True)` → `check_apikey`: refused with HTTP 403 and the bare
        # message as the body (cfg.api_warnings, default True), in plain text whatever `output` asks for.
        if message := self.check_apikey(kwargs):
            return 403, message.encode(), "text/html;charset=utf-8"  # CherryPy's default type for a str
        if kwargs.get("output") == "xml":
            return 501, b"output=xml is not modelled by the SABnzbd stand-in", "text/plain"
        mode = kwargs.get("mode", "")
        handler = getattr(self, "_api_" + mode, None) if mode in API_LEVELS else self._api_undefined
        try:
            if handler is None:
                raise NotModelled(f"mode={mode}")
            return 200, dumps(handler(kwargs.get("name", ""), kwargs)), "application/json;charset=UTF-8"
        except NotModelled as exc:
            return 501, f"{exc} is not modelled by the SABnzbd stand-in".encode(), "text/plain"

    def check_apikey(self, kwargs: dict[str, str]) -> str | None:
        """interface.py `check_apikey`."""
        mode = kwargs.get("mode", "")
        if mode in ("version", "auth"):
            return None
        key = kwargs.get("apikey")
        if not key:
            return _MSG_APIKEY_REQUIRED
        req_access = API_LEVELS.get(mode, 4)  # api.py `api_level` (every queue/status name is level 2 too)
        if req_access == 1 and key == self.nzb_key:
            return None
        if key == self.api_key:
            return None
        return _MSG_APIKEY_INCORRECT

    @staticmethod
    def report(error: str | None = None, keyword: str = "value", data: Any = None) -> Any:
        """api.py `report`, JSON branch."""
        if error:
            return {"status": False, "error": error}
        if data is None:
            return {"status": True}
        if hasattr(data, "__iter__") and not keyword:
            return data
        return {keyword: data}

    def _api_undefined(self, name: str, kwargs: dict[str, str]) -> Any:
        return self.report(_MSG_NOT_IMPLEMENTED)

    def _api_version(self, name: str, kwargs: dict[str, str]) -> Any:
        return self.report(keyword="version", data=self.version)

    def _api_auth(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_auth`."""
        key = kwargs.get("key", "")
        auth = "apikey"
        if key:
            auth = "badkey"
            if key == self.nzb_key:
                auth = "nzbkey"
            if key == self.api_key:
                auth = "apikey"
        return self.report(keyword="auth", data=auth)

    def _api_pause(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_pause`: Downloader.pause() only; PAUSED_ALL is not set."""
        self.paused = True
        return self.report()

    def _api_resume(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_resume`: downloader.unpause_all(), which clears PAUSED_ALL too."""
        self.paused_all = False
        self.paused = False
        return self.report()

    def _api_warnings(self, name: str, kwargs: dict[str, str]) -> Any:
        if name == "clear":
            self.warnings = []
            return self.report(keyword="warnings", data=None)  # GUIHandler.clear() returns None: {"status": true}
        if name and name != "show":
            return self.report(_MSG_NOT_IMPLEMENTED)
        return self.report(keyword="warnings", data=self.warnings)

    def _api_queue(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_queue`: `_api_queue_table.get(name, (_api_queue_default, 2))`."""
        value = kwargs.get("value", "")
        if name == "delete":
            return self._api_queue_delete(value, kwargs)
        if name == "purge":
            return self._queue_removed(self.remove_all(kwargs.get("search")))
        if name in ("pause", "resume"):
            # nzbqueue.py `pause_multiple_nzo` / `resume_multiple_nzo`: every id given is reported handled,
            # known or not.
            handled = clean_comma_separated_list(value)
            for job in self.queue:
                if job.nzo_id in handled:
                    job.status = Status.PAUSED if name == "pause" else Status.QUEUED
            return self.report(keyword="", data={"status": bool(handled), "nzo_ids": handled})
        if name in QUEUE_NAMES:
            raise NotModelled(f"mode=queue&name={name}")
        return self.report(keyword="queue", data=self.build_queue(kwargs))

    def _queue_removed(self, removed: list[str]) -> Any:
        return self.report(keyword="", data={"status": bool(removed), "nzo_ids": removed})

    def _api_queue_delete(self, value: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_queue_delete`."""
        if value.lower() == "all":
            # NzbQueue.remove_all → remove_multiple(nzo_ids) with its default delete_all_data=True:
            # value=all deletes the files whatever del_files says.
            return self._queue_removed(self.remove_all(kwargs.get("search")))
        if items := clean_comma_separated_list(value):
            return self._queue_removed(self.remove_multiple(items, bool_conv(kwargs.get("del_files"))))
        return self.report(_MSG_NO_VALUE)

    def remove_all(self, search: str | None) -> list[str]:
        search = (search or "").lower()
        return self.remove_multiple([job.nzo_id for job in self.queue
                                     if not search or search in job.final_name.lower()], True)

    def remove_multiple(self, nzo_ids: list[str], delete_all_data: bool) -> list[str]:
        """nzbqueue.py `remove_multiple` → `remove(cleanup=True)` → nzbstuff.py `purge_data`."""
        removed = []
        for nzo_id in nzo_ids:
            job = self._queued(nzo_id)
            if job is None:
                continue
            self.queue.remove(job)
            job.status = Status.DELETED
            self._purge(job, delete_all_data)
            removed.append(nzo_id)
        return removed

    @staticmethod
    def _purge(job: Job, delete_all_data: bool) -> None:
        """nzbstuff.py `purge_data`: all of the job's folder, or only SABnzbd's own article files in it."""
        if job.download_path is None or not job.download_path.exists():
            return
        if delete_all_data:
            shutil.rmtree(job.download_path, ignore_errors=True)
        else:
            for pattern in ("SABnzbd_nz?_*", "SABnzbd_article_*"):
                for leftover in job.download_path.glob(pattern):
                    leftover.unlink()

    def build_header(self) -> dict[str, Any]:
        """api.py `build_header(for_template=False)`."""
        download_total, download_free = self.disk["download_dir"]
        complete_total, complete_free = self.disk["complete_dir"]
        return {
            "version": self.version,
            "paused": bool(self.paused or self.paused_for_postproc),
            "pause_int": "0",  # Scheduler.pause_int(): "0" unless paused for a set time
            "paused_all": self.paused_all,
            "diskspace1": "%.2f" % download_free,
            "diskspace2": "%.2f" % complete_free,
            "diskspace1_norm": to_units(download_free * GIGI),
            "diskspace2_norm": to_units(complete_free * GIGI),
            "diskspacetotal1": "%.2f" % download_total,
            "diskspacetotal2": "%.2f" % complete_total,
            "speedlimit": "0",  # str(Downloader.bandwidth_perc): 0 without a maximum line speed set
            "speedlimit_abs": "0",  # str(Downloader.bandwidth_limit)
            "have_warnings": str(len(self.warnings)),
            "finishaction": None,  # sabnzbd.QUEUECOMPLETE
            "quota": to_units(0.0),
            "have_quota": False,
            "left_quota": to_units(0.0),
            "cache_art": "0",
            "cache_size": to_units(0, "B"),
        }

    def build_queue(self, kwargs: dict[str, str]) -> dict[str, Any]:
        """api.py `_api_queue_default` + `build_queue`, over nzbqueue.py `queue_info`."""
        start = int_conv(kwargs.get("start"))
        limit = int_conv(kwargs.get("limit"))
        search = (kwargs.get("search") or "").lower()
        categories = clean_comma_separated_list(kwargs.get("cat") or kwargs.get("category"))
        priorities = [int_conv(p) for p in clean_comma_separated_list(kwargs.get("priority"))]
        statuses = clean_comma_separated_list(kwargs.get("status"))
        nzo_ids = clean_comma_separated_list(kwargs.get("nzo_ids"))

        # nzbqueue.py `queue_info`
        bytes_left = bytes_total = bytes_left_previous_page = q_size = nzos_matched = 0
        nzo_list: list[Job] = []
        for job in self.queue:
            if job.status not in (Status.PAUSED, Status.CHECKING) or job.priority == FORCE_PRIORITY:
                bytes_total += job.bytes
                bytes_left += job.remaining
                q_size += 1
                if nzos_matched < start:
                    bytes_left_previous_page += job.remaining
            if search and search not in job.final_name.lower():
                continue
            if categories and job.cat not in categories:
                continue
            if priorities and job.priority not in priorities:
                continue
            if statuses and job.status not in statuses:
                if not (Status.PROPAGATING in statuses and job.propagation_delay_left):
                    continue
            if nzo_ids and job.nzo_id not in nzo_ids:
                continue
            if not limit or start <= nzos_matched < start + limit:
                nzo_list.append(job)
            nzos_matched += 1
        if not search and not nzo_ids:
            nzos_matched = len(self.queue)  # sic: a category, priority or status filter does not change it

        info = self.build_header()
        info["kbpersec"] = "%.2f" % (self.bps / KIBI)
        info["speed"] = to_units(self.bps)
        info["mbleft"] = "%.2f" % (bytes_left / MEBI)
        info["mb"] = "%.2f" % (bytes_total / MEBI)
        info["sizeleft"] = to_units(bytes_left, "B")
        info["size"] = to_units(bytes_total, "B")
        info["noofslots_total"] = q_size
        info["noofslots"] = nzos_matched
        info["start"] = start
        info["limit"] = limit
        info["finish"] = start + limit
        if self.paused or self.paused_for_postproc:
            info["status"] = Status.PAUSED
        elif self.bps > 0:
            info["status"] = Status.DOWNLOADING
        else:
            info["status"] = Status.IDLE
        info["timeleft"] = calc_timeleft(bytes_left, self.bps)

        running_bytes = bytes_left_previous_page
        slots = []
        for n, job in enumerate(nzo_list, start=start):
            mbleft = job.remaining / MEBI
            mb = job.bytes / MEBI
            slot: dict[str, Any] = {
                "index": n,
                "nzo_id": str(job.nzo_id),
                "unpackopts": str(job.pp),
                "priority": INTERFACE_PRIORITIES.get(job.priority, NORMAL_PRIORITY),  # sic: an int 0 if unknown
                "script": job.script if job.script else "None",
                "filename": job.final_name,
                "labels": job.labels(),
                "password": job.password if job.password else "",
                "cat": job.cat if job.cat else "None",
                "mbleft": "%.2f" % mbleft,
                "mb": "%.2f" % mb,
                "size": to_units(job.bytes, "B"),
                "sizeleft": to_units(job.remaining, "B"),
                "percentage": "%s" % (int(((mb - mbleft) / mb) * 100)) if mb != mbleft else "0",
                "mbmissing": "%.2f" % (job.bytes_missing / MEBI),
                "direct_unpack": job.direct_unpack,
            }
            if not self.paused and job.status not in (Status.PAUSED, Status.FETCHING, Status.GRABBING):
                if job.propagation_delay_left:
                    slot["status"] = Status.PROPAGATING
                elif job.status == Status.CHECKING:
                    slot["status"] = Status.CHECKING
                else:
                    slot["status"] = Status.DOWNLOADING  # a job waiting for its turn (nzo.status Queued) too
            else:
                # "Ensure compatibility of API status": a Force job (or a deleted one) becomes Downloading for good
                if job.status == Status.DELETED or job.priority == FORCE_PRIORITY:
                    job.status = Status.DOWNLOADING
                slot["status"] = job.status  # under a global pause: Queued, Paused, Checking, Fetching, ...
            if ((self.paused or self.paused_for_postproc or job.propagation_delay_left
                 or job.status not in (Status.DOWNLOADING, Status.FETCHING, Status.QUEUED))
                    and job.priority != FORCE_PRIORITY):
                slot["timeleft"] = "0:00:00"
            else:
                running_bytes += job.remaining
                slot["timeleft"] = calc_timeleft(running_bytes, self.bps)
            slot["avg_age"] = "-" if job.avg_date.year < 2000 else calc_age(job.avg_date)
            slots.append(slot)
        info["slots"] = slots
        return info

    def _api_history(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_history`."""
        value = kwargs.get("value", "")
        start = int_conv(kwargs.get("start"))
        limit = int_conv(kwargs.get("limit"))
        search = kwargs.get("search")
        categories = clean_comma_separated_list(kwargs.get("cat") or kwargs.get("category"))
        statuses = clean_comma_separated_list(kwargs.get("status"))
        nzo_ids = clean_comma_separated_list(kwargs.get("nzo_ids"))
        archive = True
        if name == "delete":
            if kwargs.get("archive") == "0":  # (or cfg.disable_archive)
                archive = False
            special = value.lower()
            del_files = bool_conv(kwargs.get("del_files"))
            if special in ("all", "failed", "completed"):
                for status in ((Status.FAILED,) if special == "failed" else (Status.COMPLETED,)
                               if special == "completed" else (Status.FAILED, Status.COMPLETED)):
                    rows = [row for row in self.history if row["status"] == status and row["archive"] is None
                            and self._name_like(row["name"], search)] if archive else \
                        [row for row in self.history if row["status"] == status
                         and self._name_like(row["name"], search)]
                    if del_files and status == Status.FAILED:
                        self._del_job_files([row["path"] for row in self.history if row["status"] == status
                                             and self._name_like(row["name"], search)])
                    for row in rows:
                        self._archive_or_remove(row, archive)
                self.history_updated()
                return self.report()
            if value:
                for nzo_id in clean_comma_separated_list(value):
                    job = self._in_postproc(nzo_id)
                    if job is not None:  # PostProcessor.get_path(job) → PostProcessor.delete: never archived
                        if job.status in (Status.QUEUED,):  # (or Downloading): out of the queue, data purged
                            self.postproc.remove(job)
                            self._purge(job, del_files)
                        # Completed/Failed there would be flagged to_be_removed; any other stage (Verifying,
                        # Repairing, Extracting, Moving, Running, QuickCheck, Fetching): nothing happens.
                    else:
                        if del_files:  # database.py `get_incomplete_path`: the path of a Failed job only
                            path = next((row["path"] for row in self.history
                                         if row["nzo_id"] == nzo_id and row["status"] == Status.FAILED), "")
                            if path:
                                shutil.rmtree(path, ignore_errors=True)
                        for row in [row for row in self.history if row["nzo_id"] == nzo_id]:
                            self._archive_or_remove(row, archive)
                self.history_updated()
                return self.report()  # {"status": true}, whether anything was there or not
            return self.report(_MSG_NO_VALUE)
        if name:
            return self.report(_MSG_NOT_IMPLEMENTED)
        if int_conv(kwargs.get("last_history_update", 0)) == self.last_history_update:
            return self.report(keyword="history", data=False)
        if bool_conv(kwargs.get("failed_only")):
            statuses = [Status.FAILED]
        if not limit:
            limit = self.history_limit  # sic: limit=0 means cfg.history_limit (default 10), not "all"
        archive = bool(int_conv(kwargs.get("archive")))
        slots, ppslots, noofslots = self.build_history(start, limit, archive, search, categories, statuses,
                                                       nzo_ids)
        sums = to_units(sum(row["bytes"] or 0 for row in self.history))  # BPSMeter.get_sums(), roughly
        return self.report(keyword="history", data={
            "total_size": sums, "month_size": sums, "week_size": sums, "day_size": sums,
            "slots": slots, "ppslots": ppslots, "noofslots": noofslots,
            "last_history_update": self.last_history_update, "version": self.version})

    def _archive_or_remove(self, row: dict[str, Any], archive: bool) -> None:
        """database.py `archive` (UPDATE history SET archive = 1) / `remove` (DELETE)."""
        if archive:
            row["archive"] = 1
        elif row in self.history:
            self.history.remove(row)

    def _del_job_files(self, paths: list[str]) -> None:
        """api.py `del_job_files`: only paths inside the temporary download folder."""
        for path in paths:
            if path and str(path).lower().startswith(str(self.download_dir).lower()):
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def _name_like(name: str, search: str | None) -> bool:
        """database.py `convert_search` (LIKE, * and space as wildcards), as a regular expression."""
        if not search:
            return True
        pattern = ".*".join(re.escape(part) for part in re.split(r"[* ]", search.strip("^$")))
        if search.startswith("^"):
            return re.match(pattern, name, re.I) is not None
        if search.endswith("$"):
            return re.search(pattern + "$", name, re.I) is not None
        return re.search(pattern, name, re.I) is not None

    def build_history(self, start: int, limit: int, archive: bool, search: str | None, categories: list[str],
                      statuses: list[str], nzo_ids: list[str]) -> tuple[list[dict[str, Any]], int, int]:
        """api.py `build_history`: the post-processing queue on top, then the database, newest first."""
        if not archive:
            postproc = [job for job in self.postproc  # postproc.py `get_queue`
                        if self._name_like(job.final_name, search)
                        and (not categories or job.cat in categories)
                        and (not statuses or job.status in statuses)
                        and (not nzo_ids or job.nzo_id in nzo_ids)]
            postproc_size = len(postproc)
            if start > postproc_size:
                postproc = []
                db_limit = limit
            else:
                postproc = postproc[start:start + limit] if limit else postproc[start:]
                db_limit = max(limit - len(postproc), 0)
            db_start = max(start - postproc_size, 0)
        else:
            db_start, db_limit, postproc, postproc_size = start, limit, [], 0
        categories = ["*" if c == "Default" else c for c in categories]
        rows = [row for row in self.history  # database.py `fetch_history`
                if ((row["archive"] == 1) if archive else (row["archive"] is None))
                and self._name_like(row["name"], search)
                and (not categories or row["category"] in categories)
                and (not statuses or row["status"] in statuses)
                and (not nzo_ids or row["nzo_id"] in nzo_ids)]
        rows.sort(key=lambda row: (row["completed"], row["id"]), reverse=True)
        total = len(rows)
        items = [self.unpack_history_info(row) for row in rows[db_start:db_start + db_limit]] if db_limit else []
        return [self.active_history_item(job) for job in postproc] + items, postproc_size, total + postproc_size

    def active_history_item(self, job: Job) -> dict[str, Any]:
        """api.py `add_active_history`: a job in post-processing, as a history slot."""
        return {
            "completed": int(time.time()),
            **_job_history_fields(job),
            "status": job.status,
            "nzo_id": job.nzo_id,
            "storage": "",
            "path": str(job.download_path),
            "script_line": "",
            "download_time": job.download_time,
            "postproc_time": 0,
            "stage_log": [{"name": stage, "actions": job.unpack_info[stage]}
                          for stage in STAGES if stage in job.unpack_info],
            "downloaded": job.bytes_downloaded,
            "completeness": None,
            "fail_message": job.fail_msg,
            "url_info": "",
            "bytes": job.bytes_downloaded,
            "size": to_units(job.bytes_downloaded, "B"),
            "meta": None,
            "series": "",
            "duplicate_key": _duplicate_key(job.final_name),
            "md5sum": "",
            "password": None,  # nzo.correct_password
            "action_line": job.action_line,
            "loaded": job.pp_active,
            "retry": False,
            "archive": False,
        }

    def unpack_history_info(self, row: dict[str, Any]) -> dict[str, Any]:
        """database.py `unpack_history_info`: a database row (all columns but id and script_log) as a slot."""
        item = {key: value for key, value in row.items() if key not in ("id", "script_log")}
        stage_log = []
        for stage_lines in (row["stage_log"] or "").split("\r\n") if row["stage_log"] else []:
            key, _, logs = stage_lines.partition(":::")
            stage_log.append({"name": key, "actions": logs.split(";")})
        stage_log.sort(key=lambda stage: STAGES.get(stage["name"], 100))
        item["stage_log"] = stage_log
        item["size"] = to_units(row["bytes"], "B")
        item["action_line"] = ""
        item["loaded"] = False
        item["archive"] = bool(row["archive"])
        item["retry"] = bool(row["status"] == Status.FAILED and row["path"] and os.path.exists(row["path"]))
        if row["report"] == "future":
            item["retry"] = True
        return item

    def _api_get_files(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_get_files` / `build_file_list`: finished, then active, then the par2 volumes not yet
        fetched (nzo.extrapars), each with sizes as strings; the extrapars carry "set"."""
        value = kwargs.get("value")
        if not value:
            return self.report(_MSG_NO_VALUE)
        job = self._queued(value)
        files: list[dict[str, Any]] = []
        if job is not None:
            age = calc_age(job.avg_date)
            data_bytes = job.bytes - job.bytes_par2
            names = [f for f in job.files if not f.lower().endswith(".par2")] or [job.final_name + ".rar"]
            share = data_bytes / len(names)
            left = job.remaining
            entries = []
            for index, filename in enumerate(names):
                file_left = min(share, max(left - share * (len(names) - 1 - index), 0))
                entries.append((filename, share, file_left, None))
            if job.bytes_par2:  # the small index .par2 is downloaded first; the volumes wait in extrapars
                index_bytes = min(job.bytes_par2, 40 * 1024)
                entries.append((job.final_name + ".par2", index_bytes, 0, None))
                if job.bytes_par2 > index_bytes:
                    entries.append((job.final_name + ".vol000+100.par2", job.bytes_par2 - index_bytes,
                                    job.bytes_par2 - index_bytes, job.final_name))
            for status in ("finished", "active", "queued"):
                for number, (filename, size, file_left, setname) in enumerate(entries):
                    kind = "queued" if setname else "finished" if not file_left else "active"
                    if kind != status:
                        continue
                    entry = {"filename": filename}
                    if setname:
                        entry["set"] = setname
                    entry.update({"mbleft": "%.2f" % (file_left / MEBI), "mb": "%.2f" % (size / MEBI),
                                  "bytes": "%.2f" % size, "age": age,
                                  "nzf_id": f"SABnzbd_nzf_{job.nzo_id[-6:]}{number}", "status": status})
                    files.append(entry)
        return self.report(keyword="files", data=files)

    def _api_fullstatus(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_fullstatus` → `build_status` (header with for_template=True, minus T/Tspec)."""
        info: dict[str, Any] = {
            "uptime": calc_age(datetime.datetime.fromtimestamp(self.started)),
            "color_scheme": "",
            "confighelpuri": f"https://sabnzbd.org/wiki/configuration/{self.version[:3]}/",
            "pid": os.getpid(),
            "active_lang": "en",
            "rtl": False,
            "my_lcldata": "/config",
            "my_home": "/config",
            "webdir": "/app/interfaces/Glitter/templates",
            "url_base": self.url_base,
            "windows": False,
            "macos": False,
            "power_options": False,
            "pp_pause_event": False,
            "apikey": self.api_key,
            "new_release": "",
            "new_rel_url": "",
        }
        info.update(self.build_header())
        info.update({
            "logfile": "/config/logs/sabnzbd.log",
            "weblogfile": None,
            "loglevel": "1",
            "folders": [],
            "configfn": "/config/sabnzbd.ini",
            "warnings": self.warnings,
            "delayed_assembler": 0,
            "loadavg": "",
            "pystone": 0,
            "downloaddir": str(self.download_dir),
            "downloaddirspeed": 0,
            "completedir": str(self.complete_dir),
            "completedirspeed": 0,
            "internetbandwidth": 0,
        })
        if not bool_conv(kwargs.get("skip_dashboard")):
            info.update({"active_socks5_proxy": None, "localipv4": "127.0.0.1", "publicipv4": None,
                         "ipv6": None, "dnslookup": "OK"})
        info["servers"] = []
        return self.report(keyword="status", data=info)

    def _api_status(self, name: str, kwargs: dict[str, str]) -> Any:
        """api.py `_api_status`: without a name it is fullstatus."""
        if name:
            raise NotModelled(f"mode=status&name={name}")
        return self._api_fullstatus(name, kwargs)

    # --- controls for the tests -----------------------------------------------------------------------------------
    def add_job(self, nzo_id: str, name: str, category: str = "*", mb: float = 1000.0, mbleft: float | None = None,
                status: str = "Downloading", mbmissing: float = 0.0, priority: str | int = "Normal", *,
                par2_mb: float = 0.0, files: list[str] | None = None, age_days: float = 1.0,
                propagation_minutes: int = 5, password: str = "", direct_unpack: str | None = None,
                labels: list[str] | None = None) -> str:
        """A job in the queue, its folder in the download folder holding `files` (default NAME.part01.rar).

        `status` is what the queue slot should say with the client running: "Downloading" and "Queued" are
        both nzo.status Queued (SABnzbd shows Downloading for both while not paused, Queued under a global
        pause); "Propagating" is a Queued job with `propagation_minutes` of delay left; "Paused", "Checking",
        "Grabbing", "Fetching" are kept. `mbmissing` counts in `mbleft` as done (nzo.remaining = bytes -
        bytes_tried), as in SABnzbd. `par2_mb` is the job's repair data (`bytes_par2`), only seen in get_files.
        """
        internal, propagating = _queue_status(status)
        mbleft = mb if mbleft is None else mbleft
        with self.lock:
            if self._queued(nzo_id) or self._in_postproc(nzo_id):
                raise ValueError(f"{nzo_id} is already there")
            path = self.download_dir / name
            job = Job(nzo_id=nzo_id, final_name=name, cat=category or "*", bytes=round(mb * MEBI),
                      bytes_tried=round((mb - mbleft) * MEBI), bytes_missing=round(mbmissing * MEBI),
                      bytes_par2=round(par2_mb * MEBI), status=internal, priority=_priority_number(priority),
                      password=password, propagation_delay_left=propagation_minutes if propagating else 0,
                      direct_unpack=direct_unpack,
                      avg_date=datetime.datetime.now() - datetime.timedelta(days=age_days),
                      labels_extra=list(labels or []), download_path=path,
                      files=list(files) if files is not None else [name + ".part01.rar"])
            self._make_files(path, job.files, admin=nzo_id)
            self.queue.append(job)
        return nzo_id

    def update_job(self, nzo_id: str, *, mb: float | None = None, mbleft: float | None = None,
                   mbmissing: float | None = None, status: str | None = None, priority: str | int | None = None,
                   category: str | None = None, par2_mb: float | None = None, direct_unpack: str | None = None,
                   propagation_minutes: int | None = None) -> None:
        """Change a queued job's figures (the same meanings as in add_job)."""
        with self.lock:
            job = self._queued(nzo_id)
            if job is None:
                raise KeyError(nzo_id)
            if mb is not None:
                left = job.remaining
                job.bytes = round(mb * MEBI)
                job.bytes_tried = job.bytes - left
            if mbleft is not None:
                job.bytes_tried = job.bytes - round(mbleft * MEBI)
            if mbmissing is not None:
                job.bytes_missing = round(mbmissing * MEBI)
            if status is not None:
                job.status, propagating = _queue_status(status)
                job.propagation_delay_left = (propagation_minutes or 5) if propagating else 0
            elif propagation_minutes is not None:
                job.propagation_delay_left = propagation_minutes
            if priority is not None:
                job.priority = _priority_number(priority)
            if category is not None:
                job.cat = category
            if par2_mb is not None:
                job.bytes_par2 = round(par2_mb * MEBI)
            if direct_unpack is not None:
                job.direct_unpack = direct_unpack or None

    def finish_job(self, nzo_id: str, stage: str = "Verifying", action_line: str | None = None) -> None:
        """The job's download ends: out of the queue, into post-processing in `stage` (nzbqueue.py `end_job` →
        assembler → PostProcessor.process, which first makes it Queued; process_job then runs the stages)."""
        if stage not in PP_STAGES:
            raise ValueError(f"{stage!r} is not a post-processing stage ({', '.join(PP_STAGES)})")
        with self.lock:
            job = self._queued(nzo_id)
            if job is None:
                raise KeyError(nzo_id)
            self.queue.remove(job)
            job.bytes_tried = job.bytes
            job.download_time = 60
            self._download_report(job)
            self._set_stage(job, stage, action_line)
            self.postproc.append(job)
            self.history_updated()

    def set_history_status(self, nzo_id: str, status: str, fail_message: str | None = None,
                           action_line: str | None = None) -> None:
        """Move a job in post-processing to another stage, or end it: Completed (its files move to the
        completed folder) or Failed (they stay in the download folder), written to the history database
        (postproc.py `process_job` → database.py `add_history_db`). A history row's status can be set too."""
        with self.lock:
            job = self._in_postproc(nzo_id)
            if job is not None:
                if status in PP_STAGES:
                    self._set_stage(job, status, action_line)
                elif status in (Status.COMPLETED, Status.FAILED):
                    if status == Status.FAILED:
                        job.fail_msg = fail_message if fail_message is not None else ABORTED
                        job.set_unpack_info("Download" if job.fail_msg.endswith(NOT_COMPLETE) else "Repair",
                                            job.fail_msg)
                    self.postproc.remove(job)
                    self._to_history(job, status)
                else:
                    raise ValueError(f"{status!r} is not a history status")
            else:
                rows = [row for row in self.history if row["nzo_id"] == nzo_id]
                if not rows:
                    raise KeyError(nzo_id)
                rows[0]["status"] = status
                if fail_message is not None:
                    rows[0]["fail_message"] = fail_message
            self.history_updated()

    def abort_hopeless(self, nzo_id: str) -> None:
        """What SABnzbd does to a job whose missing articles its par2 data cannot cover (fail_hopeless_jobs):
        nzbstuff.py `remove_article` sets fail_msg "Aborted, cannot be completed - https://sabnzbd.org/not-complete"
        and the Download stage line, the job leaves the queue, and post-processing writes it Failed at once,
        its files left in the download folder (purge_data(delete_all_data=False))."""
        with self.lock:
            job = self._queued(nzo_id)
            if job is None:
                raise KeyError(nzo_id)
            self.queue.remove(job)
            job.fail_msg = ABORTED
            job.set_unpack_info("Download", ABORTED)
            # nzbqueue.py `register_article` then calls set_download_report, whose Download line is unique=True:
            # it replaces the "Aborted" line, which survives only in fail_message.
            self._download_report(job)
            self._to_history(job, Status.FAILED)
            self.history_updated()

    def add_failed(self, nzo_id: str, name: str, category: str = "*", files: list[str] | None = None, *,
                   fail_message: str = ABORTED, mb: float = 1000.0, age_seconds: float = 0.0) -> Path:
        """A failed history entry whose files are on disk in DOWNLOAD_DIR/NAME (returned)."""
        with self.lock:
            path = self.download_dir / name
            job = Job(nzo_id=nzo_id, final_name=name, cat=category or "*", bytes=round(mb * MEBI),
                      bytes_tried=round(mb * MEBI), bytes_missing=round(mb * MEBI / 10), download_path=path,
                      files=list(files) if files is not None else [name + ".part01.rar"], fail_msg=fail_message,
                      download_time=60)
            self._make_files(path, job.files, admin=nzo_id)
            self._download_report(job)  # (an "Aborted" line set before it is overwritten: see abort_hopeless)
            if not fail_message.startswith(ABORTED):
                job.set_unpack_info("Download" if fail_message.endswith(NOT_COMPLETE) else "Repair", fail_message)
            self._to_history(job, Status.FAILED, completed=int(time.time() - age_seconds))
            self.history_updated()
        return path

    def add_completed(self, nzo_id: str, name: str, category: str = "*", files: list[str] | None = None, *,
                      mb: float = 1000.0, age_seconds: float = 0.0) -> Path:
        """A completed history entry; its files are in COMPLETE_DIR/NAME (returned)."""
        with self.lock:
            path = self.download_dir / name
            job = Job(nzo_id=nzo_id, final_name=name, cat=category or "*", bytes=round(mb * MEBI),
                      bytes_tried=round(mb * MEBI), download_path=path,
                      files=list(files) if files is not None else [name + ".mkv"], download_time=60)
            self._make_files(path, job.files, admin=nzo_id)
            self._download_report(job)
            row = self._to_history(job, Status.COMPLETED, completed=int(time.time() - age_seconds))
            self.history_updated()
        return Path(row["storage"])

    def pause(self) -> None:
        """Downloader.pause(): what mode=pause and the web interface's pause button do (paused_all stays)."""
        with self.lock:
            self.paused = True

    def pause_all(self) -> None:
        """downloader.py `pause_all` (the scheduler's "pause all"): PAUSED_ALL and the downloader paused."""
        with self.lock:
            self.paused_all = True
            self.paused = True

    def resume_all(self) -> None:
        """downloader.py `unpause_all`: what mode=resume does."""
        with self.lock:
            self.paused_all = False
            self.paused = False

    def disk_full(self, full: bool = True, free_gb: float = 0.05) -> None:
        """assembler.py `diskspace_check`: too little space in the download folder for the next file pauses the
        downloader (Downloader.pause(), not pause_all) and logs the warning "Too little diskspace forcing
        PAUSE"; nothing else in the queue says why. Freeing the disk again resumes only with
        fulldisk_autoresume (scheduler.py `__check_diskspace`), off by default."""
        with self.lock:
            if full:
                if self._disk_before_full is None:
                    self._disk_before_full = {key: list(value) for key, value in self.disk.items()}
                self.disk["download_dir"][1] = free_gb
                self.paused = True
                self.add_warning("Too little diskspace forcing PAUSE", "WARNING", "assembler.py155")
            else:
                if self._disk_before_full is not None:
                    self.disk = self._disk_before_full
                    self._disk_before_full = None
                if self.fulldisk_autoresume:
                    self.paused = False

    def set_disk(self, free_gb: float, total_gb: float | None = None, *, complete_free_gb: float | None = None,
                 complete_total_gb: float | None = None) -> None:
        with self.lock:
            self.disk["download_dir"] = [total_gb if total_gb is not None else self.disk["download_dir"][0], free_gb]
            self.disk["complete_dir"] = [
                complete_total_gb if complete_total_gb is not None else self.disk["complete_dir"][0],
                complete_free_gb if complete_free_gb is not None else self.disk["complete_dir"][1]]

    def set_speed(self, bytes_per_second: float) -> None:
        """BPSMeter.bps: the queue's speed, kbpersec, status Downloading (> 0) or Idle, and the timelefts."""
        with self.lock:
            self.bps = float(bytes_per_second)

    def add_warning(self, text: str, kind: str = "WARNING", origin: str = "standin0") -> None:
        """SABnzbd.py `GUIHandler.emit`: one entry of mode=warnings."""
        with self.lock:
            self.warnings.append({"type": kind, "text": text, "time": int(time.time()), "origin": origin})

    def requests_for(self, mode: str) -> list[Request]:
        with self.lock:
            return [request for request in self.log if request.query.get("mode") == mode]

    def queue_ids(self) -> list[str]:
        with self.lock:
            return [job.nzo_id for job in self.queue]

    def history_ids(self, archived: bool = False) -> list[str]:
        """Post-processing jobs, then history rows (not archived ones unless asked)."""
        with self.lock:
            return [job.nzo_id for job in self.postproc] + [
                row["nzo_id"] for row in sorted(self.history, key=lambda r: (r["completed"], r["id"]), reverse=True)
                if (row["archive"] == 1) == archived]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def __enter__(self) -> SABnzbdStandIn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- inside ---------------------------------------------------------------------------------------------------
    def history_updated(self) -> None:
        self.last_history_update += 1  # misc.py `history_updated`

    def _queued(self, nzo_id: str) -> Job | None:
        return next((job for job in self.queue if job.nzo_id == nzo_id), None)

    def _in_postproc(self, nzo_id: str) -> Job | None:
        return next((job for job in self.postproc if job.nzo_id == nzo_id), None)

    @staticmethod
    def _make_files(path: Path, files: list[str], admin: str) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name in files:
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            (path / name).write_bytes(os.urandom(64))
        (path / "__ADMIN__").mkdir(exist_ok=True)
        (path / "__ADMIN__" / admin).write_bytes(b"nzo")  # save_data(nzo, nzo_id, admin_path)
        (path / "SABnzbd_article_0001").write_bytes(b"cached")  # an article saved by the article cache

    @staticmethod
    def _download_report(job: Job) -> None:
        """nzbstuff.py `set_download_report` (English UI)."""
        job.set_unpack_info("Source", job.filename, unique=True)
        lines = ["Downloaded in 1 min at an average of 16.7 MB/s", "Age: %s" % calc_age(job.avg_date)]
        if job.bytes_missing:
            lines.append("%s articles were missing" % max(1, round(job.bytes_missing / 716800)))
        job.set_unpack_info("Download", "<br/>".join(lines), unique=True)
        job.set_unpack_info("Servers", "news.example.com=%sB" % to_units(job.bytes_downloaded), unique=True)

    @staticmethod
    def _set_stage(job: Job, stage: str, action_line: str | None) -> None:
        job.status = stage
        job.pp_active = stage != Status.QUEUED  # PostProcessor.run flags pp_active when it takes the job
        job.action_line = ACTION_LINES[stage] if action_line is None else action_line
        if stage in (Status.VERIFYING, Status.REPAIRING) and "Repair" not in job.unpack_info:
            job.pp_started = time.time()

    def _to_history(self, job: Job, status: str, completed: int | None = None) -> dict[str, Any]:
        """postproc.py end of `process_job` + database.py `build_history_info` / `add_history_db`."""
        job.status = status
        path = job.download_path
        storage = path
        if status == Status.COMPLETED:
            job.fail_msg = ""
            storage = self.complete_dir / job.final_name
            if path is not None and path.exists():
                storage.mkdir(parents=True, exist_ok=True)
                for name in job.files:
                    if (path / name).exists():
                        (storage / name).parent.mkdir(parents=True, exist_ok=True)
                        shutil.move(str(path / name), str(storage / name))
                shutil.rmtree(path, ignore_errors=True)  # purge_data(delete_all_data=True)
        else:
            self._purge(job, False)  # purge_data(delete_all_data=False): the files stay for a retry
        row = {
            "id": next(self._row_ids),
            "completed": int(time.time()) if completed is None else completed,
            **_job_history_fields(job),
            "status": status,
            "nzo_id": job.nzo_id,
            "storage": str(storage),
            "path": str(path),
            "script_log": None,
            "script_line": "",
            "download_time": job.download_time,
            "postproc_time": int(time.time() - job.pp_started) if job.pp_started else 0,
            "stage_log": "\r\n".join("%s:::%s" % (key, ";".join(lines)) for key, lines in job.unpack_info.items()),
            "downloaded": job.bytes_downloaded,
            "completeness": None,
            "fail_message": job.fail_msg,
            "url_info": "",
            "bytes": job.bytes_downloaded,
            "meta": None,
            "series": None,
            "md5sum": "d41d8cd98f00b204e9800998ecf8427e",
            "password": None,
            "duplicate_key": _duplicate_key(job.final_name),
            "archive": None,
        }
        self.history.append(row)
        return row
