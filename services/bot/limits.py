"""Discord's message limits, and the one helper that makes any message fit them.

Every embed builder lays out its lists with `fit_lines` and hands its embeds
to `fit_message` last, so no payload is ever rejected, whatever the queue
size. What does not fit is left out and counted: "…and N more", where N is
the number of items (lines of a list, fields of an embed, embeds of a
message) that were left out. Lengths are counted in UTF-16 code units, which
is never less than what Discord counts.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

import discord

TITLE = 256
DESCRIPTION = 4096
FIELDS = 25
FIELD_NAME = 256
FIELD_VALUE = 1024
FOOTER = 2048
AUTHOR = 256
TOTAL = 6000          # all embeds of one message together
EMBEDS = 10           # embeds per message

ELLIPSIS = "…"
_MORE = re.compile(r"(?:^|\n)…and (\d+) more$")
_NOTE_ROOM = 24       # room kept for a "…and N more" note when something must go


def text_length(text: str | None) -> int:
    """Length as Discord may count it: UTF-16 code units (an emoji can be two)."""
    if not text:
        return 0
    return len(text.encode("utf-16-le")) // 2


def more_note(count: int) -> str:
    return f"{ELLIPSIS}and {count} more"


def clip(text: str | None, limit: int) -> str:
    """One piece of text cut to `limit` with a trailing "…" when it is longer."""
    text = text or ""
    if text_length(text) <= limit:
        return text
    if limit <= 0:
        return ""
    cut = text[:limit - 1]
    while cut and text_length(cut) > limit - 1:  # wide characters: cut further
        cut = cut[:-1]
    return cut + ELLIPSIS


def _split_note(text: str) -> tuple[str, int]:
    """A text and the count of a "…and N more" note it already ends with (0 when none)."""
    match = _MORE.search(text)
    if not match:
        return text, 0
    return text[:match.start()], int(match.group(1))


def fit_lines(lines: Sequence[str], limit: int, *, left_out: int = 0) -> str:
    """As many whole lines as fit in `limit`, then "…and N more" for the lines left out.

    `left_out` counts items the caller already dropped, so the note says the
    whole truth. A first line too long to fit alone is clipped rather than lost.
    """
    lines = list(lines)
    joined = "\n".join(lines)
    if left_out == 0 and text_length(joined) <= limit:
        return joined
    used = 0
    shown = 0
    for index, line in enumerate(lines):
        grown = used + text_length(line) + (1 if index else 0)
        remaining = len(lines) - index - 1 + left_out
        note = (1 + text_length(more_note(remaining))) if remaining else 0
        if grown + note > limit:
            break
        used, shown = grown, index + 1
    if shown == len(lines) and left_out == 0:
        return joined
    kept = lines[:shown]
    dropped = len(lines) - shown + left_out
    if not kept and lines:
        # Not even one whole line fits: clip the first one if there is room worth using.
        note = more_note(dropped - 1) if dropped - 1 else ""
        room = limit - text_length(note) - (1 if note else 0)
        if room >= 16:
            return clip(lines[0], room) + ("\n" + note if note else "")
    note = more_note(dropped)
    if not kept:
        return clip(note, limit)
    return "\n".join(kept) + "\n" + note


def fit_text(text: str | None, limit: int) -> str:
    """A text of lines cut to `limit`; an existing "…and N more" note is merged, not repeated."""
    text = text or ""
    if text_length(text) <= limit:
        return text
    body, already = _split_note(text)
    return fit_lines(body.split("\n") if body else [], limit, left_out=already)


# --- measuring ---------------------------------------------------------------

def embed_length(embed: discord.Embed | dict[str, Any]) -> int:
    """The characters of one embed that count towards the 6000 of a message."""
    data = embed.to_dict() if isinstance(embed, discord.Embed) else embed
    total = text_length(data.get("title")) + text_length(data.get("description"))
    total += text_length((data.get("footer") or {}).get("text"))
    total += text_length((data.get("author") or {}).get("name"))
    for field in data.get("fields") or ():
        total += text_length(field.get("name")) + text_length(field.get("value"))
    return total


def message_length(embeds: Iterable[discord.Embed | dict[str, Any]]) -> int:
    return sum(embed_length(embed) for embed in embeds)


def limit_violations(embeds: Sequence[discord.Embed | dict[str, Any]]) -> list[str]:
    """Every way these embeds, sent as one message, would break Discord's limits (empty when none)."""
    problems = []
    dicts = [e.to_dict() if isinstance(e, discord.Embed) else e for e in embeds]
    if len(dicts) > EMBEDS:
        problems.append(f"{len(dicts)} embeds (limit {EMBEDS})")
    for index, data in enumerate(dicts):
        for key, limit in (("title", TITLE), ("description", DESCRIPTION)):
            if text_length(data.get(key)) > limit:
                problems.append(f"embed {index} {key}: {text_length(data.get(key))} > {limit}")
        if text_length((data.get("footer") or {}).get("text")) > FOOTER:
            problems.append(f"embed {index} footer too long")
        if text_length((data.get("author") or {}).get("name")) > AUTHOR:
            problems.append(f"embed {index} author too long")
        fields = data.get("fields") or []
        if len(fields) > FIELDS:
            problems.append(f"embed {index}: {len(fields)} fields (limit {FIELDS})")
        for number, field in enumerate(fields):
            if not 0 < text_length(field.get("name")) <= FIELD_NAME:
                problems.append(f"embed {index} field {number} name length {text_length(field.get('name'))}")
            if not 0 < text_length(field.get("value")) <= FIELD_VALUE:
                problems.append(f"embed {index} field {number} value length {text_length(field.get('value'))}")
    total = message_length(dicts)
    if total > TOTAL:
        problems.append(f"{total} characters in all embeds (limit {TOTAL})")
    return problems


# --- fitting -------------------------------------------------------------------

def _copy(embed: discord.Embed) -> discord.Embed:
    return discord.Embed.from_dict(embed.to_dict())


def _fit_each(data: dict[str, Any]) -> dict[str, Any]:
    """One embed's own limits: lengths of every part, and 25 fields."""
    if data.get("title"):
        data["title"] = clip(data["title"], TITLE)
    if data.get("description"):
        data["description"] = fit_text(data["description"], DESCRIPTION)
    if (data.get("footer") or {}).get("text"):
        data["footer"]["text"] = clip(data["footer"]["text"], FOOTER)
    if (data.get("author") or {}).get("name"):
        data["author"]["name"] = clip(data["author"]["name"], AUTHOR)
    fields = []
    for field in data.get("fields") or ():
        fields.append({"name": clip(field.get("name") or "\u200b", FIELD_NAME) or "\u200b",
                       "value": fit_text(field.get("value") or "\u200b", FIELD_VALUE) or "\u200b",
                       "inline": bool(field.get("inline"))})
    if len(fields) > FIELDS:
        dropped = len(fields) - (FIELDS - 1)
        fields = fields[:FIELDS - 1] + [{"name": "\u200b", "value": more_note(dropped), "inline": False}]
    if fields or "fields" in data:
        data["fields"] = fields
    return data


def _shrink(data: dict[str, Any], budget: int) -> dict[str, Any] | None:
    """This embed cut down to `budget` characters, or None when not even its title fits."""
    if embed_length(data) <= budget:
        return data
    # The fixed parts (footer, author, title) keep at most a sixth of the budget each.
    for key, text in (("footer", "text"), ("author", "name")):
        part = data.get(key)
        if part and part.get(text):
            part[text] = clip(part[text], budget // 6)
            if not part[text]:
                data.pop(key)
    if data.get("title"):
        data["title"] = clip(data["title"], max(1, min(TITLE, budget // 6)))
    fixed = embed_length({k: v for k, v in data.items() if k in ("title", "footer", "author")})
    room = budget - fixed
    if room < 0 or (room < _NOTE_ROOM and not data.get("title")):
        return None
    description = data.get("description") or ""
    fields = list(data.get("fields") or ())
    variable = text_length(description) + sum(text_length(f["name"]) + text_length(f["value"]) for f in fields)
    ratio = room / max(1, variable)
    for _ in range(40):
        kept_fields, dropped = [], 0
        for field in fields:
            name = clip(field["name"], max(1, int(text_length(field["name"]) * ratio)))
            value = fit_text(field["value"], max(_NOTE_ROOM, int(text_length(field["value"]) * ratio)))
            kept_fields.append({"name": name or "\u200b", "value": value or "\u200b", "inline": field["inline"]})
        new_description = fit_text(description, int(text_length(description) * ratio)) if description else ""
        trial = dict(data, description=new_description, fields=kept_fields)
        # Fields that no longer fit go from the end, counted in a last note field.
        while kept_fields and embed_length(trial) > budget:
            kept_fields.pop()
            dropped += 1
            note = {"name": "\u200b", "value": more_note(dropped), "inline": False}
            trial = dict(data, description=new_description, fields=kept_fields + [note])
            if embed_length(trial) <= budget:
                break
        if embed_length(trial) <= budget:
            if not trial["description"]:
                trial.pop("description")
            if not trial["fields"]:
                trial.pop("fields")
            return trial
        ratio *= 0.85
    # Last resort: the title and a note.
    trial = {k: v for k, v in data.items() if k not in ("description", "fields")}
    note = more_note(len(fields) + (1 if description else 0))
    if embed_length(trial) + text_length(note) <= budget:
        trial["description"] = note
    return trial if embed_length(trial) <= budget else None


def fit_message(embeds: Sequence[discord.Embed]) -> list[discord.Embed]:
    """These embeds as one message within every Discord limit; new Embed objects, the input is untouched.

    Embeds are kept in order: earlier ones keep their content, later ones are
    shrunk, and those that do not fit at all are left out, counted in the
    footer of the last embed kept.
    """
    datas = [_fit_each(_copy(embed).to_dict()) for embed in embeds]
    dropped = max(0, len(datas) - EMBEDS)
    datas = datas[:EMBEDS]
    over = message_length(datas) > TOTAL or dropped > 0
    budget = TOTAL - (_NOTE_ROOM if over else 0)
    kept: list[dict[str, Any]] = []
    for index, data in enumerate(datas):
        length = embed_length(data)
        if length <= budget:
            kept.append(data)
            budget -= length
            continue
        shrunk = _shrink(data, budget)
        if shrunk is not None:
            kept.append(shrunk)
            budget -= embed_length(shrunk)
            dropped += len(datas) - index - 1
        else:
            dropped += len(datas) - index
        break
    if dropped and kept:
        footer = kept[-1].setdefault("footer", {})
        text, already = _split_note(footer.get("text") or "")
        note = more_note(dropped + already)
        room = budget + text_length(footer.get("text") or "")
        footer["text"] = (clip(text, room - text_length(note) - 3) + " · " + note) if text else note
        if text_length(footer["text"]) > room:
            footer["text"] = clip(note, room)
        if not footer["text"]:
            kept[-1].pop("footer")
    return [discord.Embed.from_dict(data) for data in kept]
