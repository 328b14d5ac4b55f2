"""The downloads simulated instances start with.

"demo" is what `make demo` shows a newcomer: at speed 1 with
STUCK_THRESHOLD_MINUTES=0.5, a Radarr movie stalled from the start and a
metadata-less magnet are stuck after 30 s, and a Sonarr episode that stalls at
20 s is stuck at about 50 s, while the movers move well over MIN_SIZE_CHANGE per
30 s and do not finish within the first five minutes. A usenet episode finishes
after 10 s and unpacks for 40 s (never stuck: it needs attention once it has
waited a threshold), then is imported and leaves the queue. So that `discarr
stats` has rows early, a completed movie is imported at 20 s and the failed
episode leaves the queue at 45 s.
"""
from __future__ import annotations

from typing import Any

from common.clock import Clock
from services.simarr.model import SimInstance

SCENARIOS = ("demo", "empty")
MiB = 1024 * 1024
GiB = 1024 * MiB

DEMO_DOWNLOADS: dict[str, list[dict[str, Any]]] = {
    "sonarr": [
        {"title": "Severance.S02E07.1080p.ATVP.WEB-DL.DDP5.1.H.264-NTb", "protocol": "usenet",
         "size": 4 * GiB, "downloaded": 1 * GiB, "rate": 6 * MiB},
        {"title": "The.Bear.S03.1080p.HULU.WEB-DL.DDP5.1.H.264-NTb", "episodes": 4,
         "size": 18 * GiB, "downloaded": 3 * GiB, "rate": 12 * MiB},
        {"title": "Andor.S02E09.1080p.DSNP.WEB-DL.DDP5.1.H.264-NTb", "size": 3 * GiB,
         "downloaded": 700 * MiB, "rate": 5 * MiB, "script": [{"at": 20, "state": "stalled"}]},
        {"title": "Shogun.2024.S01E05.2160p.DSNP.WEB-DL.DDP5.1.DV.HDR.H.265-NTb", "state": "paused",
         "size": 9 * GiB, "downloaded": 2 * GiB},
        {"title": "Slow.Horses.S04E03.1080p.ATVP.WEB-DL.DDP5.1.H.264-FLUX", "state": "queued",
         "size": 2 * GiB},
        {"title": "The.Last.of.Us.S02E02.1080p.WEB.H264-SuccessfulCrab", "state": "metadata",
         "size": 3 * GiB},
        {"title": "Fallout.S01E04.720p.AMZN.WEB-DL.DDP5.1.H.264-NTb", "state": "failed", "protocol": "usenet",
         "size": 1400 * MiB, "downloaded": 900 * MiB, "script": [{"at": 45, "state": "imported"}],
         "message": "Aborted, cannot be completed - https://sabnzbd.org/not-complete"},
        {"title": "The.Penguin.S01E08.1080p.HMAX.WEB-DL.DDP5.1.H.264-NTb", "protocol": "usenet",
         "size": 1200 * MiB, "downloaded": 1100 * MiB, "rate": 10 * MiB, "post_processing": 40, "import_after": 10},
        {"title": "Silo.S02E05.1080p.ATVP.WEB-DL.DDP5.1.H.264-FLUX", "state": "import_blocked",
         "size": 2600 * MiB, "downloaded": 2600 * MiB,
         "message": "Not an upgrade for existing episode file(s). Existing quality: Bluray-1080p. "
                    "New Quality WEBDL-1080p."},
    ],
    "radarr": [
        {"title": "Dune.Part.Two.2024.1080p.BluRay.x264-SPARKS", "size": 14 * GiB,
         "downloaded": 2 * GiB, "rate": 10 * MiB},
        {"title": "Oppenheimer.2023.2160p.UHD.BluRay.x265-TERMiNAL", "state": "stalled",
         "size": 32 * GiB, "downloaded": 11 * GiB},
        {"title": "Past.Lives.2023.1080p.WEB-DL.DDP5.1.H.264-FLUX", "state": "completed",
         "size": 5 * GiB, "downloaded": 5 * GiB, "import_after": 20},
        {"title": "Civil.War.2024.1080p.AMZN.WEB-DL.DDP5.1.H.264-FLUX", "state": "queued",
         "protocol": "usenet", "size": 6 * GiB},
    ],
    "lidarr": [
        {"title": "Radiohead - In Rainbows (2007) [FLAC]", "size": 320 * MiB,
         "downloaded": 40 * MiB, "rate": 400 * 1024},
        {"title": "Pink Floyd - The Dark Side of the Moon (1973) [FLAC 24-96]", "state": "stalled",
         "size": 900 * MiB, "downloaded": 120 * MiB},
    ],
    "readarr": [
        {"title": "Brandon Sanderson - The Way of Kings (2010) [EPUB]", "size": 3 * MiB,
         "downloaded": 256 * 1024, "rate": 4 * 1024},
        {"title": "Frank Herbert - Dune (1965) [M4B]", "state": "stalled",
         "size": 780 * MiB, "downloaded": 95 * MiB},
    ],
}


def build_instances(specs: list[tuple[str, str, str, str]], scenario: str,
                    clock: Clock, speed: float) -> list[SimInstance]:
    """One SimInstance per (name, kind, url_base, api_key), seeded with the scenario's downloads."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; choose one of {SCENARIOS}")
    instances = []
    for name, kind, url_base, api_key in specs:
        instance = SimInstance(name=name, kind=kind, url_base=url_base, api_key=api_key, clock=clock, speed=speed)
        if scenario == "demo":
            for download in DEMO_DOWNLOADS[kind]:
                instance.add_download(**download)
        instances.append(instance)
    return instances
