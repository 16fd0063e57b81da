"""pwsh.py is the injection boundary: every value must come back exactly, as one literal."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from psgen import pwsh
from tests.helpers import decode_literal

NASTY = [
    "", "'", "''", "it's", "\u2018\u2019\u201a\u201b", '"\u201c\u201d\u201e', "$(Remove-Item C:\\)",
    "`n`r`0", "a\nb\r\nc", "\x00", "\u202e\u202d\u200f bidi", "'@\n@'\n\"@", "\U0001F600",
    "\u2013\u2014\u2015 dashes", "${env:PATH}", "#>", "<#", "\t", "\x7f", "\ufeff", "\ud7ff\ue000",
]


@pytest.mark.parametrize("value", NASTY)
def test_known_nasty_values_round_trip(value):
    emitted = pwsh.quote(value)
    assert emitted.isascii()
    assert "\n" not in emitted and "\r" not in emitted
    assert decode_literal(emitted) == value


unicode_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60
) | st.text(alphabet=st.sampled_from(list("'\u2018\u2019\u201a\u201b\"\u201c\u201d$`(){}@#\n\r\x00\u202e")),
            max_size=30)


@settings(max_examples=400, deadline=None)
@given(unicode_text)
@example("'@")
@example("@'\r\n'@")
def test_quote_round_trips_any_text(value):
    emitted = pwsh.quote(value)
    assert emitted.isascii()
    assert decode_literal(emitted) == value


@settings(max_examples=200, deadline=None)
@given(st.lists(unicode_text, max_size=5))
def test_arrays_hold_exact_items(items):
    emitted = pwsh.array(items)
    assert emitted.isascii()
    if not items:
        assert emitted == "@()"
    else:
        assert emitted.startswith("@(") and emitted.endswith(")")
        for item in items:
            assert pwsh.quote(item) in emitted


def test_scalars():
    assert pwsh.value(True) == "$true"
    assert pwsh.value(False) == "$false"
    assert pwsh.value(None) == "$null"
    assert pwsh.value(42) == "42"
    assert pwsh.value(-3) == "(-3)"
    assert pwsh.value(-(2**63)) == "[long]::MinValue"
    with pytest.raises(pwsh.PwshValueError):
        pwsh.value(2**63)
    with pytest.raises(pwsh.PwshValueError):
        pwsh.value(1.5)


def test_hashtable_is_ordered_and_quotes_odd_keys():
    text = pwsh.hashtable({"Name": "x", "odd key": 1, "B": [True, None]})
    assert text.splitlines() == [
        "[ordered]@{",
        "    Name = 'x'",
        "    'odd key' = 1",
        "    B = @($true, $null)",
        "}",
    ]


@pytest.mark.parametrize("name", ["Name", "_x", "A1"])
def test_variable_accepts_identifiers(name):
    assert pwsh.variable(name) == f"${name}"


@pytest.mark.parametrize("name", ["", "1a", "a-b", "a b", "a}", "env:PATH", "x$(y)"])
def test_variable_refuses_anything_else(name):
    with pytest.raises(pwsh.PwshValueError):
        pwsh.variable(name)


def test_quote_unicode_doubles_all_five_single_quotes():
    assert pwsh.quote_unicode("a'\u2018\u2019\u201a\u201bb") == (
        "'a''\u2018\u2018\u2019\u2019\u201a\u201a\u201b\u201bb'")


def test_comment_text_cannot_close_help_block():
    assert "#>" not in pwsh.comment("evil #> Remove-Item")
    assert "\n" not in pwsh.comment("a\nb")
    assert pwsh.comment("caf\u00e9").isascii()


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc de'\u2019$`\n")), min_size=0, max_size=400),
       st.integers(min_value=0, max_value=40))
def test_wrapped_strings_round_trip_within_the_line_limit(value, indent):
    emitted = pwsh.quote_wrapped(value, indent)
    for line in emitted.split("\n")[1:]:  # continuation lines carry their own indent
        assert len(line) <= pwsh.MAX_LINE
    assert decode_literal(emitted) == value


def test_hashtable_wraps_long_strings():
    long = "word " * 60
    text = pwsh.hashtable({"Explain": long.strip()}, 4)
    assert all(len(line) <= pwsh.MAX_LINE for line in text.split("\n"))
    assert text.split("\n")[1] == "        Explain = ("
    assert decode_literal(text.split(" = ", 1)[1].rsplit("\n", 1)[0]) == long.strip()
