"""The Session control page in AppTest against the real broker and pipeline: start a session
for a new athlete, mark it, stop it — and the pipeline's refusals shown in plain words."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride.dashboard import data
from hipstride.pipeline.store import open_store
from tests.support.pipeline import wait_until

PAGE = Path(data.__file__).parent / "views" / "session.py"
TIMEOUT_S = 30


def _messages(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.error, *at.info, *at.warning, *at.success))


def _page() -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=TIMEOUT_S).run()
    for _ in range(20):  # the cached client may still be receiving the retained messages
        if at.selectbox and at.selectbox(key="station").options:
            break
        at.run()
    return at


@pytest.mark.timeout(120)
def test_start_mark_and_stop_a_session_from_the_page(stack):
    at = _page()
    assert not at.exception
    assert at.selectbox(key="station").value == "tm1"
    assert "No session is running" in "\n".join(m.value for m in at.markdown)

    # start without an athlete: told what to do, nothing sent
    at.button(key="start").click().run()
    assert "Choose an athlete" in _messages(at)

    at.selectbox(key="start_athlete").set_value("New athlete…").run()
    at.text_input(key="new_athlete").input("maria")
    at.text_input(key="start_label").input("easy 5k")
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    assert "of **maria** started" in _messages(at), _messages(at)
    markdown = "\n".join(m.value for m in at.markdown)
    assert "**maria** is running" in markdown and "(easy 5k)" in markdown

    at.text_input(key="mark_label").input("felt the hamstring")
    at.button(key="FormSubmitter:mark_form-Mark").click().run()
    assert "Marked “felt the hamstring” (1 marks so far)" in _messages(at), _messages(at)

    at.button(key="stop").click().run()
    assert "stopped" in _messages(at), _messages(at)
    assert "No session is running" in "\n".join(m.value for m in at.markdown)

    def stored():
        with open_store(stack.store_url) as store:
            return [s for s in store.sessions() if s.end_ns is not None]

    (meta,) = wait_until(stored, 20, "the stopped session in the store")
    assert meta.athlete == "maria" and meta.label == "easy 5k" and meta.station == "tm1"
    assert [m["label"] for m in meta.meta["marks"]] == ["felt the hamstring"]


@pytest.mark.timeout(120)
def test_no_pipeline_is_said_in_plain_words(stack):
    at = _page()
    stack.pipeline.stop()  # the broker is up, but nobody answers commands
    at.selectbox(key="start_athlete").set_value("New athlete…").run()
    at.text_input(key="new_athlete").input("maria")
    at.button(key="start").click().run()
    text = _messages(at)
    assert "Could not start the session: the pipeline did not answer within 10 s" in text
    assert "hipstride pipeline" in text and not at.exception
