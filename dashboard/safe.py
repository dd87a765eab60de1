"""User-written text shown as text, never as Markdown.

Session labels, notes, mark labels, athlete names, station ids and the pipeline's messages
come from people (or stations) the viewer does not control. Streamlit renders Markdown in
``st.markdown``, ``st.caption``, alerts, headers and widget labels, so ``![x](http://host/x.png)``
in a label would make every viewer's browser fetch that address, and ``[click](…)`` would be a
link nobody wrote. :func:`md` escapes a text so that Markdown shows it literally: every
character Markdown (or Streamlit's directives ``:red[…]``, ``:material/…:`` and ``$…$``)
gives a meaning is backslash-escaped, and line breaks become spaces. Pure; no Streamlit.
"""

from __future__ import annotations

import re

__all__ = ["md"]

#: ASCII punctuation that starts or ends Markdown syntax somewhere (CommonMark lets a backslash
#: escape any ASCII punctuation, so escaping one that needs none is harmless).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~$:&])")
#: What makes a list, a heading or a rule only at the start of a line ("- x", "1. x", "+ x").
_LEADING = re.compile(r"^(\s*(?:\d+)?)([-+=.)])")
_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c]+")


def md(text: object) -> str:
    """``text`` escaped for Markdown: shown exactly as written, on one line."""
    escaped = _SPECIAL.sub(r"\\\1", _BREAKS.sub(" ", str(text)))
    return _LEADING.sub(r"\1\\\2", escaped)
