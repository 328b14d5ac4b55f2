"""The one helper that makes every message fit Discord's limits, and says what it left out."""
import re

import discord
from hypothesis import given, settings
from hypothesis import strategies as st

from services.bot.limits import (DESCRIPTION, FIELD_VALUE, TOTAL, clip, fit_lines, fit_message, fit_text,
                                 limit_violations, more_note, text_length)
from tests.test_bot_fakes import measure


def _left_out(text: str) -> int:
    match = re.search(r"…and (\d+) more$", text)
    return int(match.group(1)) if match else 0


def test_lines_that_fit_are_left_alone():
    assert fit_lines(["a", "b"], 10) == "a\nb"


def test_lines_that_do_not_fit_end_with_how_many_were_left_out():
    lines = [f"line {i:03d}" for i in range(100)]
    text = fit_lines(lines, 100)
    assert text_length(text) <= 100
    shown = text.split("\n")[:-1]
    assert shown == lines[:len(shown)]
    assert _left_out(text) == 100 - len(shown)


def test_a_note_already_there_is_merged_not_repeated():
    text = fit_lines([f"item {i}" for i in range(50)], 60, left_out=1000)
    assert text.count("more") == 1
    shown = len(text.split("\n")) - 1
    assert _left_out(text) == 1000 + 50 - shown
    again = fit_text(text, 30)
    assert again.count("more") == 1 and _left_out(again) == 1000 + 50 - (len(again.split("\n")) - 1)


def test_one_huge_line_is_clipped_rather_than_lost():
    text = fit_lines(["x" * 5000, "y"], 1024)
    assert text.startswith("xxx") and text.endswith(more_note(1)) and text_length(text) <= 1024


def test_clip_counts_wide_characters():
    assert text_length("🔴") == 2
    assert text_length(clip("🔴" * 10, 5)) <= 5
    assert clip("short", 10) == "short"


def test_fit_message_enforces_every_limit_and_counts_what_it_left_out():
    embeds = []
    for number in range(12):
        embed = discord.Embed(title="T" * 300, description="\n".join(f"row {i}" for i in range(2000)))
        for field in range(30):
            embed.add_field(name="n" * 300, value="\n".join(f"v{i}" for i in range(500)))
        embed.set_footer(text="f" * 3000)
        embed.set_author(name="a" * 300)
        embeds.append(embed)
    fitted = fit_message(embeds)
    assert measure(fitted) == [] and limit_violations(fitted) == []
    assert 1 <= len(fitted) <= 10
    assert "more" in fitted[-1].footer.text  # the embeds left out are counted


def test_fit_message_keeps_a_message_that_fits_as_it_is():
    embed = discord.Embed(title="board", description="a\nb", colour=discord.Colour.red())
    embed.add_field(name="x", value="y")
    assert [e.to_dict() for e in fit_message([embed])] == [embed.to_dict()]


def test_fit_message_does_not_touch_its_input():
    embed = discord.Embed(description="z" * 5000)
    fit_message([embed])
    assert len(embed.description) == 5000


def test_many_fields_become_24_and_a_note():
    embed = discord.Embed(title="t")
    for index in range(40):
        embed.add_field(name=f"f{index}", value="v")
    fields = fit_message([embed])[0].fields
    assert len(fields) == 25 and fields[-1].value == more_note(16)


_texts = st.text(alphabet=st.sampled_from("ab \n🔴…*_`é"), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "title": _texts, "description": _texts, "footer": _texts,
    "fields": st.lists(st.tuples(_texts, _texts), max_size=30)}), min_size=1, max_size=12))
def test_any_embeds_fit_after_fit_message(specs):
    embeds = []
    for spec in specs:
        embed = discord.Embed(title=spec["title"] or None, description=spec["description"] or None)
        if spec["footer"]:
            embed.set_footer(text=spec["footer"])
        for name, value in spec["fields"]:
            embed.add_field(name=name or "n", value=value or "v")
        embeds.append(embed)
    fitted = fit_message(embeds)
    assert measure(fitted) == []


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab🔴…"), min_size=1, max_size=200), max_size=80),
       st.integers(min_value=20, max_value=FIELD_VALUE), st.integers(min_value=0, max_value=10_000))
def test_fit_lines_never_overflows_and_counts_exactly(lines, limit, left_out):
    text = fit_lines(lines, limit, left_out=left_out)
    assert text_length(text) <= limit
    if text == "\n".join(lines) and not left_out:
        return
    if not _left_out(text):  # nothing left out: every line is there (a lone long one clipped)
        assert len(text.split("\n")) == len(lines) and not left_out
        return
    shown = 0 if text.startswith("…and") else len(text.split("\n")) - 1
    assert _left_out(text) + shown == len(lines) + left_out


def test_limits_are_discords():
    assert (DESCRIPTION, FIELD_VALUE, TOTAL) == (4096, 1024, 6000)
