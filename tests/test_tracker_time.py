"""Real clocks against the tracker: gaps in observations, the *arrs' once-a-minute refresh, outages
and the holds they put on clocks (SPEC section 3), with a clock the tests move."""
import pytest

from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, MB, record, snapshot

THRESHOLD = 120 * 60
POLL = 30       # the poller reads every 30 s ...
REFRESH = 60    # ... the *arr refreshes its figures from the client about once a minute


@pytest.fixture
def tracker(clock):
    return Tracker(DetectionConfig(threshold_s=THRESHOLD), clock)


class Client:
    """Downloads of one client as an *arr shows them: figures refreshed every `refresh` seconds."""

    def __init__(self, clock, rates: dict[str, float], refresh: float = REFRESH, size: int = 500 * GB):
        self.clock, self.rates, self.refresh, self.size = clock, rates, refresh, size
        self.start = clock.now()
        self.status = dict.fromkeys(rates, "downloading")

    def queue(self):
        refreshed = self.start + (self.clock.now() - self.start) // self.refresh * self.refresh
        return [record(i, key, size=self.size, status=self.status[key],
                       downloaded=min(self.size, GB + int(rate * (refreshed - self.start))))
                for i, (key, rate) in enumerate(sorted(self.rates.items()), start=1)]


def poll(tracker, clock, records, seconds=POLL):
    tracker.ingest(snapshot("sonarr", records))
    clock.advance(seconds)


def stuck(tracker):
    return sorted(item["download_id"] for item in tracker.progress({})["stuck"])


def open_holds(tracker):
    return sorted(h.key for hs in tracker.downloads.values() for h in hs.values() if h.on_hold)


def test_the_arrs_refresh_is_no_outage_and_the_dead_download_is_stuck_on_time(tracker, clock):
    # Four movers and one dead download on one client; every other poll sees the same figures.
    client = Client(clock, {"M1": MB, "M2": MB, "M3": 2 * MB, "M4": 3 * MB, "DEAD": 0})
    outages = 0
    while "DEAD" not in stuck(tracker):
        poll(tracker, clock, client.queue())
        outages += bool(tracker.progress({})["outages"])
        assert open_holds(tracker) == []
        assert clock.now() - client.start <= THRESHOLD + 2 * REFRESH, "the dead download waited for an outage"
    assert stuck(tracker) == ["DEAD"] and outages == 0


def test_a_real_outage_holds_every_clock_and_is_reported(tracker, clock):
    client = Client(clock, {"M1": MB, "M2": MB, "M3": 2 * MB, "DEAD": 0})
    for _ in range(20):
        poll(tracker, clock, client.queue())
    client.rates = dict.fromkeys(client.rates, 0)  # the client's connection dies
    for _ in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, client.queue())
    progress = tracker.progress({})
    assert progress["stuck"] == []
    assert [(o["instance"], o["download_client"]) for o in progress["outages"]] == [("sonarr", "qBittorrent")]
    assert open_holds(tracker) == ["DEAD", "M1", "M2", "M3"]


def start_an_outage(tracker, clock):
    """Three movers and a dead download; the movers stop together and the outage is reported."""
    client = Client(clock, {"M1": MB, "M2": MB, "M3": 2 * MB, "DEAD": 0})
    for _ in range(10):
        poll(tracker, clock, client.queue())
    assert tracker.progress({})["outages"] == []
    client.rates = dict(client.rates, M1=0, M2=0, M3=0)
    for _ in range(10):
        poll(tracker, clock, client.queue())
    assert tracker.progress({})["outages"] and "DEAD" in open_holds(tracker)
    return client


def test_an_outage_that_ends_in_client_unavailable_releases_its_holds(tracker, clock):
    client = start_an_outage(tracker, clock)
    client.status = dict.fromkeys(client.status, "downloadClientUnavailable")
    for _ in range(10):
        poll(tracker, clock, client.queue())
    assert tracker.progress({})["outages"] == [] and open_holds(tracker) == []
    # The client is back: the movers move, the dead download does not.
    client.status = dict.fromkeys(client.status, "downloading")
    client.rates = dict(client.rates, M1=MB, M2=MB, M3=MB)
    back = clock.now()
    while "DEAD" not in stuck(tracker):
        poll(tracker, clock, client.queue())
        assert clock.now() - back <= THRESHOLD + 2 * POLL, "the dead download's clock is still held"
    assert stuck(tracker) == ["DEAD"]


def test_a_tracker_restart_during_an_outage_releases_its_holds(tracker, clock, tmp_path):
    client = start_an_outage(tracker, clock)
    checkpoint.save(tracker, tmp_path / "state")
    restarted = Tracker(tracker.config, clock)
    assert checkpoint.load(restarted, tmp_path / "state")
    assert restarted.progress({})["outages"] == [] and open_holds(restarted) == []
    client.rates = dict(client.rates, M1=MB, M2=MB, M3=MB)
    back = clock.now()
    while "DEAD" not in stuck(restarted):
        poll(restarted, clock, client.queue())
        assert open_holds(restarted) == []
        assert clock.now() - back <= THRESHOLD, "a hold outlived the outage"


def test_an_outage_ends_when_one_of_its_downloads_moves(tracker, clock):
    client = start_an_outage(tracker, clock)
    client.rates = dict(client.rates, M2=MB)
    for _ in range(3):
        poll(tracker, clock, client.queue())
    assert tracker.progress({})["outages"] == [] and open_holds(tracker) == []


def test_a_gap_in_observations_is_held_for_every_download(tracker, clock):
    client = Client(clock, {"MOVER": MB, "DEAD": 0})
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, client.queue())
    assert stuck(tracker) == ["DEAD"]
    clock.advance(2 * THRESHOLD)  # the host slept; nothing moved and nobody answered
    client.start += 2 * THRESHOLD
    for _ in range(6):
        poll(tracker, clock, client.queue())
        assert stuck(tracker) == ["DEAD"], "the mover was judged on the time nobody saw"


def test_a_tracker_restarted_just_before_an_outage_still_recognises_it(tracker, clock, tmp_path):
    # Found by the household simulation: the tracker restarts, then the VPN drops before any download rose
    # again in the restarted tracker. The movers' evidence of moving comes back with the checkpoint, so
    # their stop is an outage and no download of the client is removed alone.
    client = Client(clock, {"M1": MB, "M2": MB, "M3": MB, "BIG": 20 * MB}, refresh=POLL)
    for _ in range(6):
        stopped = client.queue()
        poll(tracker, clock, stopped)
    checkpoint.save(tracker, tmp_path / "state")
    restarted = Tracker(tracker.config, clock)
    assert checkpoint.load(restarted, tmp_path / "state")
    for _ in range(2 * THRESHOLD // POLL):  # the VPN drops: the figures stand where they were
        poll(restarted, clock, stopped)
    assert stuck(restarted) == []
    assert [o["downloads"] for o in restarted.progress({})["outages"]] == [["BIG", "M1", "M2", "M3"]]


def test_a_tracker_restarted_during_a_long_outage_recognises_it_again(tracker, clock, tmp_path):
    # Found by the household simulation: the restart ends the outage and releases its holds (SPEC 3), and
    # the restarted tracker must see at once that the client's downloads all stopped together, however
    # long ago, or the first of them to reach the threshold is removed alone.
    client = Client(clock, {"M1": MB, "M2": MB, "M3": MB, "BIG": 20 * MB}, refresh=POLL)
    for _ in range(6):
        stopped = client.queue()
        poll(tracker, clock, stopped)
    for _ in range(THRESHOLD // POLL // 2):  # the VPN drops: the outage is recognised and held
        poll(tracker, clock, stopped)
    assert len(tracker.progress({})["outages"]) == 1
    checkpoint.save(tracker, tmp_path / "state")
    restarted = Tracker(tracker.config, clock)
    assert checkpoint.load(restarted, tmp_path / "state")
    for _ in range(2 * THRESHOLD // POLL):
        poll(restarted, clock, stopped)
        assert stuck(restarted) == []
    assert [o["downloads"] for o in restarted.progress({})["outages"]] == [["BIG", "M1", "M2", "M3"]]
