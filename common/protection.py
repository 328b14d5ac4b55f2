"""What is never removed (SPEC 4.2): the protection rules, judged on a download's queue records.

A download is protected when its series, movie, artist or author carries an *arr tag in PROTECT_TAGS,
its torrent or job carries a client tag, label or category in PROTECT_CLIENT_TAGS, its indexer is in
PROTECT_INDEXERS, or its title matches a regular expression in PROTECT_TITLES. (A download an admin
kept is protected too: the tracker keeps those.) The poller judges each record as it reads it, and
again before it removes anything, so a rule added between a preview and its confirmation wins.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProtectionRules:
    tags: tuple[str, ...] = ()         # casefolded
    client_tags: tuple[str, ...] = ()  # casefolded
    indexers: tuple[str, ...] = ()     # casefolded
    titles: tuple[re.Pattern, ...] = ()

    @classmethod
    def from_settings(cls, settings: Any) -> "ProtectionRules":
        return cls(settings.protect_tags, settings.protect_client_tags, settings.protect_indexers,
                   settings.protect_titles)

    def __bool__(self) -> bool:
        return bool(self.tags or self.client_tags or self.indexers or self.titles)

    def judge(self, record: dict[str, Any]) -> str | None:
        """The rule that protects this queue record, in words ("tag `dont-kill`"), or None."""
        for tag in record.get("arr_tags") or ():
            if tag.casefold() in self.tags:
                return f"tag `{tag}`"
        client = record.get("client")
        for label in (client or {}).get("labels") or ():
            if label.casefold() in self.client_tags:
                return f"client tag `{label}`"
        if record.get("indexer") and record["indexer"].casefold() in self.indexers:
            return f"indexer `{record['indexer']}`"
        for pattern in self.titles:
            if pattern.search(record["title"]):
                return f"title rule `{pattern.pattern}`"
        return None

    def judge_download(self, records: list[dict[str, Any]]) -> str | None:
        """The rule that protects a download: any of its records protected protects all of it."""
        return next((why for why in map(self.judge, records) if why is not None), None)

    def describe(self) -> list[str]:
        """Each rule in force, in words, as `discarr doctor` lists them."""
        return ([f"tag `{tag}`" for tag in self.tags] + [f"client tag `{tag}`" for tag in self.client_tags]
                + [f"indexer `{indexer}`" for indexer in self.indexers]
                + [f"title rule `{pattern.pattern}`" for pattern in self.titles])
