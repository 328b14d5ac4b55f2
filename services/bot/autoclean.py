"""Automatic cleanup (SPEC section 4.1): removal without a human, more careful than any peer tool.

After each board refresh the bot asks the tracker for the removal candidates of the
categories in AUTO_CLEANUP. A download is removed only once AUTO_CLEANUP_CONFIRMATIONS
consecutive analyses found it a candidate (a confirmation counts only CHECK_INTERVAL after
the last one, on a newer snapshot of it), at most AUTO_CLEANUP_MAX_PER_HOUR per instance
(every download requested counts, whatever came back; the rest wait for the next hour),
and never from an instance that is held:

- the instance is unhealthy or stale (its poller stopped reporting);
- one of its download clients is in an outage (every active download stopped at once);
- its candidates are at least 3 and at least half of its active downloads, or of the
  active downloads of a client it shares with other instances: that is an outage or a
  broken indexer, not N stuck downloads.

A candidate whose download client is unhealthy, whose evidence is withheld, or whose
client also serves an instance that does not answer, is never removed either. Removals go
through the same request path as /cleanup (the poller checks each download again and
audits it with "auto" as the requester).

`plan` decides, as a pure function of the configuration, the state, the tracker's answers
and the time; `AutoCleaner` does the I/O around it and keeps the state in the bot's state
file, so a restart neither resets confirmations nor lets the hourly cap be exceeded.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from common.settings import env_prefix
from services.bot.board import result_groups
from services.bot.requests import request_removal

log = logging.getLogger(__name__)

CATEGORIES = ("stuck", "inactive", "slow", "import_blocked")
HOLD_MIN_CANDIDATES = 3
HOUR = 3600.0
REQUESTED_BY = "auto"


def category_of(item: dict[str, Any]) -> str:
    """The AUTO_CLEANUP category of a candidate: import-blocked downloads are "attention" items."""
    return "import_blocked" if item["category"] == "attention" else item["category"]


def item_key(item: dict[str, Any]) -> str:
    return f"{item['instance']}/{item['download_id']}"


# A confirmation counts only CHECK_INTERVAL after the last one, less a timer's jitter: the board's runs
# come one interval apart, give or take the milliseconds a loop wakes late.
CONFIRMATION_JITTER = 0.05  # of CHECK_INTERVAL
CONFIRMATION_JITTER_MAX_SECONDS = 1.0


@dataclass(frozen=True)
class AutoConfig:
    categories: frozenset[str] = frozenset()
    dry_run: bool = False
    confirmations: int = 2
    max_per_hour: int = 10
    interval: float = 300.0        # CHECK_INTERVAL (as the board runs it): confirmations at least this far apart
    removal_grace: float = 120.0   # how long after a request its removals may still take effect (SPEC 4)
    # Instances with their own AUTO_CLEANUP or AUTO_CLEANUP_MAX_PER_HOUR (SPEC 4.2): (env prefix, categories, cap)
    instances: tuple[tuple[str, frozenset[str], int], ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> "AutoConfig":
        own = tuple((prefix, frozenset(rules.auto_cleanup), rules.auto_cleanup_max_per_hour)
                    for prefix, rules in ((p, settings.for_instance(p)) for p, _ in settings.overrides)
                    if (rules.auto_cleanup, rules.auto_cleanup_max_per_hour) != (settings.auto_cleanup,
                                                                                 settings.auto_cleanup_max_per_hour))
        return cls(frozenset(settings.auto_cleanup), settings.auto_cleanup_dry_run,
                   settings.auto_cleanup_confirmations, settings.auto_cleanup_max_per_hour,
                   settings.effective_check_interval, settings.removal_effect_seconds, own)

    def _own(self, instance: str) -> tuple[frozenset[str], int]:
        prefix = env_prefix(instance)
        return next(((categories, cap) for name, categories, cap in self.instances if name == prefix),
                    (self.categories, self.max_per_hour))

    def categories_for(self, instance: str) -> frozenset[str]:
        return self._own(instance)[0]

    def cap_for(self, instance: str) -> int:
        return self._own(instance)[1]

    @property
    def all_categories(self) -> frozenset[str]:
        """What it removes from any instance."""
        return self.categories.union(*(categories for _, categories, _ in self.instances))

    @property
    def enabled(self) -> bool:
        return bool(self.all_categories)

    @property
    def spacing(self) -> float:
        """How long after a confirmation the next one may count."""
        return self.interval - min(CONFIRMATION_JITTER * self.interval, CONFIRMATION_JITTER_MAX_SECONDS)

    @property
    def charged_for(self) -> float:
        """How long a requested removal counts against the hourly cap: an hour from the last moment it
        may take effect (a DELETE that got no answer may still be carried out after it)."""
        return HOUR + self.removal_grace

    def describe(self) -> str:
        """"off", or what it removes: "on: stuck, inactive" / "dry run: stuck" (and each instance's own)."""
        if not self.enabled:
            return "off"
        mode = "dry run" if self.dry_run else "on"
        words = f"{mode}: {', '.join(c for c in CATEGORIES if c in self.categories) or 'nothing'}"
        return words + "".join(f"; {prefix.lower()}: {', '.join(c for c in CATEGORIES if c in own) or 'nothing'}"
                               f" (at most {cap} an hour)" for prefix, own, cap in self.instances)

    def as_dict(self) -> dict[str, Any]:
        return {"categories": [c for c in CATEGORIES if c in self.categories], "dry_run": self.dry_run,
                "confirmations": self.confirmations, "max_per_hour": self.max_per_hour}


@dataclass(frozen=True)
class Confirmation:
    """How many consecutive analyses found a download a candidate, and the latest that counted: when
    (the bot's clock) and on which observation of it (the tracker's time of its latest snapshot)."""

    count: int
    at: float
    seen: float

    def counts_again(self, now: float, seen: float | None, config: AutoConfig) -> bool:
        """Whether an analysis at `now` of the download observed at `seen` is one more confirmation:
        CHECK_INTERVAL later, on a newer snapshot (an early refresh or a restart adds none)."""
        return now - self.at >= config.spacing and seen is not None and seen > self.seen

    @classmethod
    def from_json(cls, value: Any) -> "Confirmation | None":
        """None for what is not one (an older bot's bare count: such a download is confirmed anew)."""
        if not isinstance(value, dict):
            return None
        count, at, seen = value.get("count"), value.get("at"), value.get("seen")
        if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (at, seen))):
            return None
        return cls(count, float(at), float(seen))

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "at": self.at, "seen": self.seen}


@dataclass
class AutoState:
    """What automatic cleanup remembers between runs (and restarts): JSON in the bot state file."""

    confirmations: dict[str, Confirmation] = field(default_factory=dict)  # "instance/download_id" -> its finds
    removed: dict[str, list[float]] = field(default_factory=dict)  # instance -> times of requested removals
    held: dict[str, str] = field(default_factory=dict)  # instance -> why it is held

    @classmethod
    def from_json(cls, data: Any) -> "AutoState":
        data = data if isinstance(data, dict) else {}

        def mapping(name: str, valid: Callable[[Any], bool]) -> dict:
            value = data.get(name)
            if not isinstance(value, dict):
                return {}
            return {k: v for k, v in value.items() if isinstance(k, str) and valid(v)}
        confirmations = {key: found for key, value in mapping("confirmations", lambda v: True).items()
                         if (found := Confirmation.from_json(value)) is not None}
        return cls(confirmations,
                   mapping("removed", lambda v: isinstance(v, list) and all(isinstance(t, (int, float)) for t in v)),
                   mapping("held", lambda v: isinstance(v, str)))

    def as_json(self) -> dict[str, Any]:
        return {"confirmations": {key: found.as_json() for key, found in self.confirmations.items()},
                "removed": self.removed, "held": self.held}

    def removed_this_hour(self, instance: str, now: float, config: AutoConfig) -> int:
        """Removals requested that still count against the cap (a time ahead of `now`, after the clock
        was set back, counts too)."""
        return sum(1 for moment in self.removed.get(instance, ()) if now - moment < config.charged_for)


@dataclass
class Plan:
    remove: list[dict[str, Any]]     # candidates confirmed enough times, within the hourly cap
    waiting: list[dict[str, Any]]    # confirmed, but over the hourly cap: the next hour
    counting: list[dict[str, Any]]   # candidates still being confirmed
    held: dict[str, str]             # instance -> why nothing of it is removed now
    newly_held: dict[str, str]
    released: list[str]
    state: AutoState


def _client_of(check: dict[str, Any]) -> Callable[[dict[str, Any]], tuple[Any, str] | None]:
    """A download's client as outages group them: (its instance's poller, the client's name)."""
    pollers = {instance["name"]: instance.get("poller") for instance in check.get("instances", ())}

    def client_of(item: dict[str, Any]) -> tuple[Any, str] | None:
        return (pollers.get(item["instance"]), item["client_name"]) if item.get("client_name") else None
    return client_of


def holds(check: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, str]:
    """The instances nothing may be removed from now, each with why."""
    why: dict[str, str] = {}
    for instance in check.get("instances", ()):
        if not instance["healthy"]:
            why[instance["name"]] = f"it is {instance['state']}: {instance['error']}"
    for outage in check.get("outages", ()):
        why.setdefault(outage["instance"], f"{outage['download_client']} stopped every download at once (outage)")
    downloads = check.get("downloads", ())
    active = Counter(item["instance"] for item in downloads if item.get("activity") == "active")
    found = Counter(item["instance"] for item in candidates)
    for instance, count in found.items():
        if _too_many(count, active[instance]):
            why.setdefault(instance, f"{count} of its {active[instance]} active downloads are candidates at once: "
                                     "an outage or a broken indexer, not that many stuck downloads")
    # The same across the instances of one poller that share a download client: a VPN drop on the
    # qBittorrent of a Sonarr and a Radarr stops both's downloads at once.
    client_of = _client_of(check)
    active_on = Counter(client_of(item) for item in downloads if item.get("activity") == "active")
    found_on = Counter(client_of(item) for item in candidates)
    for client, count in found_on.items():
        if client is not None and _too_many(count, active_on[client]):
            for instance in sorted({item["instance"] for item in candidates if client_of(item) == client}):
                why.setdefault(instance, f"{count} of the {active_on[client]} active downloads on {client[1]} are "
                                         "candidates at once: an outage or a broken indexer, not that many stuck "
                                         "downloads")
    return why


def _too_many(candidates: int, active: int) -> bool:
    return candidates >= HOLD_MIN_CANDIDATES and candidates * 2 >= active


def _unjudged_clients(check: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """Whether a candidate's download client cannot be judged now: discarr cannot ask it, or another
    instance that has sent it downloads does not answer (what that one sent since, and whether it
    stopped with the rest in an outage, cannot be seen)."""
    down = {client["name"] for client in check.get("download_clients", ()) if not client["healthy"]}
    unseen = {(instance.get("poller"), client) for instance in check.get("instances", ()) if not instance["healthy"]
              for client in instance.get("clients", ())}
    client_of = _client_of(check)

    def unjudged(item: dict[str, Any]) -> bool:
        client = item.get("client")
        return (bool(client) and client.get("name") in down) or client_of(item) in unseen
    return unjudged


def plan(config: AutoConfig, state: AutoState, analysis: dict[str, Any], check: dict[str, Any],
         now: float) -> Plan:
    """What automatic cleanup does after this analysis (pure: the caller does the I/O)."""
    wanted = [item for item in analysis.get("candidates", ())
              if category_of(item) in config.categories_for(item["instance"]) and not item.get("withheld")]
    held = holds(check, wanted)
    unjudged = _unjudged_clients(check)
    confirmations: dict[str, Confirmation] = {}
    remove, waiting, counting = [], [], []
    budget = {instance: config.cap_for(instance) - state.removed_this_hour(instance, now, config)
              for instance in {item["instance"] for item in wanted}}
    for item in wanted:
        if item["instance"] in held or unjudged(item):
            continue  # a held candidate starts its confirmations again once the hold is over
        key, seen = item_key(item), item.get("observed_at")
        found = state.confirmations.get(key)
        if found is None:
            found = Confirmation(1, now, seen if seen is not None else float("inf"))
        elif found.counts_again(now, seen, config):
            found = Confirmation(found.count + 1, now, seen)
        confirmations[key] = found
        if found.count < config.confirmations:
            counting.append(item)
        elif budget[item["instance"]] > 0:
            budget[item["instance"]] -= 1
            remove.append(item)
        else:
            waiting.append(item)
    removed = {instance: [t for t in times if now - t < config.charged_for]
               for instance, times in state.removed.items()}
    new_state = AutoState(confirmations, {k: v for k, v in removed.items() if v}, held)
    return Plan(remove, waiting, counting, held, {k: v for k, v in held.items() if k not in state.held},
                [instance for instance in state.held if instance not in held], new_state)


def record_requested(state: AutoState, requested: list[dict[str, Any]], now: float) -> None:
    """Count every download named in a removal request against the hourly cap, whatever comes back
    (a request that timed out may still be carried out); each needs confirming anew."""
    for item in requested:
        state.removed.setdefault(item["instance"], []).append(now)
        state.confirmations.pop(item_key(item), None)


@dataclass(frozen=True)
class Announcement:
    """What automatic cleanup tells the channel (or the terminal): one of these per event."""

    kind: str  # "removed" (a run's results), "held", "released"
    results: tuple[dict[str, Any], ...] = ()
    instance: str = ""
    why: str = ""
    dry_run: bool = False

    def text(self) -> str:
        """One line for the log and the terminal."""
        if self.kind == "held":
            return (f"automatic cleanup holds {self.instance}: {self.why}; nothing of it is removed until this "
                    "clears (discarr cleanup or /cleanup removes by hand)")
        if self.kind == "released":
            return f"automatic cleanup no longer holds {self.instance}"
        groups = result_groups(list(self.results), dry_run=self.dry_run)
        done = "would remove" if self.dry_run else "removed"
        lines = [f"{r['title']} ({r['instance']}, {category_of(r)}): {r['reason']}"
                 for r in groups["would" if self.dry_run else "removed"]]
        lines += [f"{r['title']} ({r['instance']}) {kind}: {r['detail']}"
                  for kind in ("skipped", "failed") for r in groups[kind]]
        return (f"automatic cleanup {done} {len(groups['would' if self.dry_run else 'removed'])}, skipped "
                f"{len(groups['skipped'])}, failed {len(groups['failed'])}: " + "; ".join(lines))


def _by_reason(held: dict[str, str]) -> dict[str, list[str]]:
    """Held instances grouped by why they are held."""
    grouped: dict[str, list[str]] = {}
    for instance, why in sorted(held.items()):
        grouped.setdefault(why, []).append(instance)
    return grouped


Ask = Callable[..., Awaitable[dict[str, Any]]]
Remove = Callable[[dict[str, Any], list[dict[str, Any]]], Awaitable[list[dict[str, Any]]]]
Announce = Callable[[Announcement], Awaitable[None]]


class AutoCleaner:
    """Runs `plan` after each board refresh: asks the tracker, removes through the pollers, announces."""

    def __init__(self, config: AutoConfig, state: dict[str, Any], save: Callable[[], Awaitable[None]],
                 ask_tracker: Ask, remove: Remove, announce: Announce, clock: Callable[[], float],
                 check_interval: float) -> None:
        self.config = config
        self.check_interval = check_interval
        self.store = state  # the bot state dict; ours is under "auto_cleanup"
        self.state = AutoState.from_json(state.get("auto_cleanup"))
        self.save = save
        self.ask_tracker = ask_tracker
        self.remove = remove
        self.announce = announce
        self.clock = clock
        self.last: Plan | None = None

    async def run(self, check: dict[str, Any]) -> Plan | None:
        """One automatic cleanup, after a board refresh that produced `check`; then its report to the
        tracker, so `discarr progress` anywhere shows it."""
        decided = await self._clean(check) if self.config.enabled else None
        await self.ask_tracker("auto_report", {"report": self.report()})
        return decided

    async def _clean(self, check: dict[str, Any]) -> Plan:
        analysis = await self.ask_tracker("analyze", {
            "include_import_blocked": "import_blocked" in self.config.all_categories,
            "include_slow": "slow" in self.config.all_categories})
        now = self.clock()
        decided = plan(self.config, self.state, analysis, check, now)
        self.state = decided.state
        for why, instances in _by_reason(decided.newly_held).items():  # a shared client's outage: one warning
            await self.announce(Announcement("held", instance=", ".join(instances), why=why))
        if decided.released:
            await self.announce(Announcement("released", instance=", ".join(sorted(decided.released))))
        if decided.remove and not self.config.dry_run:
            # Counted and saved before the request goes: a bot that dies while it waits still counts it.
            record_requested(self.state, decided.remove, now)
        self.store["auto_cleanup"] = self.state.as_json()
        await self.save()
        if decided.remove:
            results = await self.remove(analysis, decided.remove)
            await self.announce(Announcement("removed", tuple(results), dry_run=self.config.dry_run))
        self.last = decided
        return decided

    def report(self) -> dict[str, Any]:
        """Automatic cleanup as /progress and the board show it: its configuration, what it removed this
        hour, the instances it holds, and each candidate's confirmations and when it will be removed."""
        now = self.clock()
        candidates = []
        if self.last is not None:
            for item in [*self.last.counting, *self.last.waiting]:
                found = self.state.confirmations.get(item_key(item))
                have = found.count if found is not None else 0
                runs = max(1, self.config.confirmations - have)
                waiting = item in self.last.waiting
                candidates.append({"instance": item["instance"], "download_id": item["download_id"],
                                   "title": item["title"], "category": category_of(item), "confirmations": have,
                                   "needed": self.config.confirmations,
                                   "removal_at": None if waiting else now + runs * self.check_interval,
                                   "waiting_for_next_hour": waiting})
        return {"config": self.config.as_dict(), "state": self.config.describe(),
                "removed_this_hour": {i: n for i in self.state.removed
                                      if (n := self.state.removed_this_hour(i, now, self.config))},
                "held": dict(self.state.held), "candidates": candidates}


def auto_cleaner(settings: Any, services: Any, state: dict[str, Any], save: Callable[[], Awaitable[None]],
                 announce: Announce) -> AutoCleaner:
    """The bot's automatic cleanup, removing through the same request path as /cleanup."""
    config = AutoConfig.from_settings(settings)

    async def remove(analysis: dict[str, Any], candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await request_removal(services, analysis, candidates, REQUESTED_BY, dry_run=config.dry_run,
                                     include_import_blocked="import_blocked" in config.all_categories,
                                     include_slow="slow" in config.all_categories)

    async def ask_tracker(message_type: str, body: dict[str, Any]) -> dict[str, Any]:
        return await services.ask("tracker", message_type, body)

    return AutoCleaner(config, state, save, ask_tracker, remove, announce, time.time,
                       settings.effective_check_interval)
