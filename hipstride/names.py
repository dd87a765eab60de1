"""The one rule for every name HipStride takes from outside (docs/protocol.md, "Names").

A name ends up in places that each break on some character: an MQTT topic (``/ + #``), a
tag of the store's line protocol (line breaks; a trailing backslash), a Mosquitto password
or ACL file (``:``, line breaks), a recording's file name (``/``), a log line, a page.
Rather than escaping for each place, every name is checked once, where it enters — the CLI,
the control topic, ``hipstride admin``, the accounts file — against one of the rules below;
the stores escape on top of that (defence in depth).

Two kinds of rules:

- **Identifiers** (station id, session id, login name, EMG channel): ASCII, a fixed set of
  characters, a length limit. They name topics, files and accounts.
- **Text** (athlete name, label, notes, request id): any script (``"Zoë Müller"``), digits,
  spaces and punctuation, but no control or format characters (newline, tab, NUL, bidi
  overrides, …), normalised to Unicode NFC so that one name is always the same string.
  Athlete names become store tags, so they may not contain a backslash either. Only notes
  may span lines (``\\n``, ``\\r``, tab). Leading and trailing spaces are dropped.

:func:`check` returns the clean name or raises :class:`BadName` (a ValueError) whose message
names the rule. :func:`sanitise` repairs a stored value from before these rules (a restored
session) instead of refusing it. Pure functions, no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["ATHLETE", "BAD_NAME", "CHANNEL", "LABEL", "LOGIN", "NOTES", "REQUEST", "RULES",
           "SESSION", "STATION", "BadName", "Rule", "check", "problem", "sanitise"]

BAD_NAME = "bad_name"  # the refusal reason on the control topic and in /metrics
#: Format characters that belong to the text itself (Persian, Indic scripts, emoji).
_JOINERS = frozenset("\u200c\u200d")
_LINES = frozenset("\n\r\t")


class BadName(ValueError):
    """A name that breaks its rule; ``str()`` says what is wrong and what is allowed."""

    reason = BAD_NAME

    def __init__(self, rule: Rule, message: str) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Rule:
    """One kind of name. Identifiers have ``first``/``chars`` (regex character classes);
    text rules have none and refuse control characters instead."""

    what: str  # how messages name it: "athlete name"
    max_len: int
    text: str  # the rule in words, as messages and docs state it
    first: str | None = None  # identifiers: class of the first character
    chars: str | None = None  # identifiers: class of the other characters
    backslash: bool = True  # text: is "\" allowed?
    lines: bool = False  # text: are line breaks and tabs allowed?
    reserved: tuple[str, ...] = ()

    @property
    def pattern(self) -> re.Pattern[str] | None:
        if self.first is None:
            return None
        return re.compile(f"[{self.first}][{self.chars}]{{0,{self.max_len - 1}}}")


STATION = Rule("station id", 32, "use 1-32 lower-case letters, digits, '-' or '_', starting "
               "with a letter or digit (e.g. 'treadmill-1')", first="a-z0-9", chars="a-z0-9_-")
SESSION = Rule("session id", 64, "use 1-64 letters, digits, '_', '-', '.', ':', starting with "
               "a letter or digit (and not 'unassigned')", first="A-Za-z0-9",
               chars="A-Za-z0-9_.:-", reserved=("unassigned",))
LOGIN = Rule("login name", 64, "expected 1-64 characters of A-Z a-z 0-9 _ . @ -, starting "
             "with a letter or digit", first="A-Za-z0-9", chars="A-Za-z0-9_.@-")
CHANNEL = Rule("EMG channel", 64, "use an EMG channel name such as 'glute_max_l': 1-64 "
               "lower-case letters, digits or '_', starting with a letter", first="a-z",
               chars="a-z0-9_")
ATHLETE = Rule("athlete name", 64, "use 1-64 characters: letters of any script, digits, "
               "spaces and punctuation; no control characters (newline, tab, ...) and no "
               "backslash", backslash=False)
LABEL = Rule("label", 200, "use 1-200 characters on one line: no control characters "
             "(newline, tab, ...)")
NOTES = Rule("notes", 2000, "use at most 2000 characters; line breaks and tabs are fine, "
             "other control characters are not", lines=True)
REQUEST = Rule("request id", 64, "use 1-64 characters on one line: no control characters "
               "(newline, tab, ...)")
RULES = (STATION, SESSION, LOGIN, CHANNEL, ATHLETE, LABEL, NOTES, REQUEST)


def _bad_char(c: str, rule: Rule) -> bool:
    """Is ``c`` refused in a text name of ``rule``?"""
    if c in _LINES:
        return not rule.lines
    if c == "\\":
        return not rule.backslash
    if c in _JOINERS:
        return False
    category = unicodedata.category(c)
    if category[0] == "C" and category != "Cn":  # control, format, surrogate, private use
        return True
    return category in ("Zl", "Zp") or (category == "Zs" and c != " ")


def _describe(c: str) -> str:
    name = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", "\0": "NUL",
            "\\": "a backslash", " ": "a space"}.get(c)
    if name is None and c.isprintable() and not c.isspace():
        return repr(c)
    kind = {"Cc": "a control character", "Cs": "a lone surrogate"}.get(
        unicodedata.category(c), unicodedata.category(c))
    return name or f"U+{ord(c):04X} ({unicodedata.name(c, kind)})"


def _clean(rule: Rule, value: str) -> str:
    if rule.first is not None:
        return value
    return unicodedata.normalize("NFC", value.strip(" "))


def problem(rule: Rule, value: object) -> str | None:
    """What is wrong with ``value`` under ``rule`` (None: nothing), checked as :func:`check`
    would clean it."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    name = _clean(rule, value)
    if not name and not (rule.lines and rule.first is None):
        return "is empty"
    if len(name) > rule.max_len:
        return f"is {len(name)} characters long (at most {rule.max_len})"
    pattern = rule.pattern
    if pattern is not None:
        if not pattern.fullmatch(name):
            bad = [c for c in name if not re.fullmatch(f"[{rule.chars}]", c)]
            return f"contains {_describe(bad[0])}" if bad else f"starts with {name[0]!r}"
    else:
        bad = [c for c in name if _bad_char(c, rule)]
        if bad:
            return f"contains {_describe(bad[0])}"
    if name in rule.reserved:
        return "is reserved"
    return None


def check(rule: Rule, value: object) -> str:
    """The name, cleaned (text: spaces around it dropped, NFC), or :class:`BadName`."""
    why = problem(rule, value)
    if why is not None:
        shown = value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "…"
        raise BadName(rule, f"{rule.what} {shown!r} is not valid: it {why}; {rule.text}")
    return _clean(rule, value)  # type: ignore[arg-type]


def sanitise(rule: Rule, value: str, fallback: str) -> str:
    """A name that passes ``rule``, made from a stored ``value`` that may not: refused
    characters become ``_`` (text: a space), the length is cut, ``fallback`` if nothing is
    left. For data written before the rules, never for new input (refuse that)."""
    if not isinstance(value, str):
        return fallback
    if problem(rule, value) is None:
        return _clean(rule, value)
    if rule.first is not None:
        fixed = "".join(c if re.fullmatch(f"[{rule.chars}]", c) else "_" for c in value)
        fixed = fixed[:rule.max_len]
    else:
        fixed = "".join(" " if _bad_char(c, rule) else c for c in _clean(rule, value))
        if not rule.lines:
            fixed = re.sub(" +", " ", fixed)
        fixed = fixed.strip(" ")[:rule.max_len].strip(" ")
    return fixed if problem(rule, fixed) is None else fallback
