"""`discarr watch` and the terminal board of the bot process without a Discord token."""
import signal
import subprocess
import sys
import time

from tests.conftest import wait_until

GB = 1024 ** 3


def test_watch_shows_the_board_in_place_and_quits_cleanly_on_ctrl_c(deployment):
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "empty")
    deployment.control("sonarr", "POST", "downloads", {"title": "Watched.Show.S01E01", "size": GB, "rate": 10 ** 6})
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: deployment.cli_json("check")["tracked"] == 1, 20, "the download to be tracked")
    watch = subprocess.Popen([sys.executable, "-m", "services", "watch", "--interval", "0.5"], env=deployment.env,
                             cwd=deployment.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(3)
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=10)
    assert watch.returncode == 0, err.decode()
    assert b"Watched.Show.S01E01" in out and b"Traceback" not in err


def test_the_terminal_board_is_printed_again_only_when_it_changed(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"CHECK_INTERVAL": "0.3", "STUCK_THRESHOLD_MINUTES": "60"})
    deployment.start("simarr", "--scenario", "empty")
    deployment.control("sonarr", "POST", "downloads", {"title": "Paused.Show.S01E01", "size": GB, "state": "paused"})
    deployment.start("tracker")
    deployment.start("poller")
    deployment.start("bot")
    def printed():
        return deployment.log_path("bot").read_text().count("downloads tracked")
    wait_until(lambda: "sonarr: ok, 1 queue records" in deployment.log_path("bot").read_text(), 20, "the board")
    shown = printed()
    time.sleep(3)  # ten refreshes of a board on which nothing changes
    assert printed() == shown
    deployment.control("sonarr", "POST", "downloads", {"title": "New.Show.S01E02", "size": GB, "state": "paused"})
    wait_until(lambda: printed() == shown + 1, 20, "the board to be printed again")
