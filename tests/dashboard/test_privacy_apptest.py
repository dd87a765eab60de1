"""An athlete sees nothing of another athlete (AppTest): Review keys sessions by station and
session, Live draws no chart of a station that is not theirs (deep links included), Coach and
the station pickers leave such stations out, and user-written text is shown as text."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride import topics
from hipstride.dashboard import auth, data
from hipstride.dashboard.safe import md
from hipstride.pipeline.store import SessionMeta, SqliteStore
from tests.dashboard.conftest import T0_NS, _runs
from tests.dashboard.test_live_apptest import html_of, live, publish, run_until, stride, texts
from tests.support.mosquitto import Mosquitto
from tests.support.pipeline import USERS

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "views"
TIMEOUT_S = 30
ANNA = auth.Access("anna", "athlete", frozenset({"anna"}), "accounts")


def as_user(page: str, access: auth.Access, **query: str) -> AppTest:
    """The page as a logged-in user (the login itself is tested in test_auth_access)."""
    at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT_S)
    at.session_state["hipstride_access"] = access
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


@pytest.fixture
def accounts_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [k for k in os.environ if k.startswith("HIPSTRIDE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HIPSTRIDE_ACCOUNTS", str(tmp_path / "accounts.json"))


# --- Review: the same session id on two stations ------------------------------------------------
def test_review_reads_a_session_by_station_and_id(monkeypatch, tmp_path, accounts_mode):
    rows, cues = _runs()["anna-1"]
    path = tmp_path / "store.db"
    with SqliteStore(path) as store:  # one session id, two stations, two athletes
        store.write_session(SessionMeta("s1", "tm-anna", "anna", T0_NS, T0_NS + 60 * 10**9,
                                        label="easy"))
        store.write_strides("tm-anna", "s1", "anna", rows[:10], origin_ns=T0_NS)
        store.write_session(SessionMeta("s1", "tm-ben", "ben", T0_NS, T0_NS + 60 * 10**9))
        store.write_strides("tm-ben", "s1", "ben", rows, origin_ns=T0_NS)
        store.write_cues("tm-ben", "s1", "ben", cues, origin_ns=T0_NS)
    monkeypatch.setenv(data.STORE_ENV, f"sqlite:///{path}")
    at = as_user("review.py", ANNA)
    assert not at.exception
    assert at.selectbox(key="session").value == ("tm-anna", "s1")
    caption = "\n".join(c.value for c in at.caption)
    assert "of 10" in caption and f"of {len(rows)}" not in caption  # anna's strides only
    tables = [d.value for d in at.dataframe if "stride_index" in d.value.columns]
    assert [len(t) for t in tables] == [10]
    shown = "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "subheader")
                      for e in at.get(kind))
    assert "ben" not in shown and "tm-ben" not in shown
    assert "No coaching cues" in "\n".join(s.value for s in at.success)  # not ben's cues


# --- Live and Coach ------------------------------------------------------------------------------
def session_body(station: str, athlete: str, session: str = "s-1") -> dict:
    return {"version": 1, "station": station, "state": "running", "session": session,
            "athlete": athlete, "start_ns": time.time_ns(), "label": "![x](http://x/y.png)"}


@pytest.fixture
def two_stations(broker: Mosquitto, accounts_mode, monkeypatch) -> Mosquitto:
    monkeypatch.setenv("HIPSTRIDE_BROKER", broker.url_for("coach"))
    monkeypatch.setenv("HIPSTRIDE_BROKER_PASSWORD", USERS["coach"])
    return broker


def _publish_both(broker: Mosquitto) -> None:
    publish(broker, [
        (topics.session("tm-ben"), session_body("tm-ben", "ben"), True),
        (topics.session("tm-anna"), session_body("tm-anna", "anna"), True),
        (topics.live("tm-ben"), live("tm-ben", [stride("l", 3, 0.41), stride("r", 3, 0.43)]),
         False),
        (topics.live("tm-anna"), live("tm-anna", [stride("l", 5, 0.97)]), False),
    ])


def test_live_deep_link_to_another_athletes_station_draws_nothing_of_it(two_stations):
    at = as_user("live.py", ANNA, station="tm-ben")
    time.sleep(1.0)  # the page's live client subscribes first
    _publish_both(two_stations)
    run_until(at, lambda a: "tm-ben" in texts(a) and "not running a session" in texts(a),
              "the lock message")
    time.sleep(1.0)  # both stations' live messages are in the feed by now
    at.run()
    assert not at.exception
    assert not at.get("vega_lite_chart")  # no EMG, hip angle or per-stride bars of tm-ben
    page = html_of(at)
    assert "0.41" not in page and "data-stride" not in page
    assert "ben" not in texts(at).replace("tm-ben", "")
    assert not at.selectbox  # not even a picker: the link was to someone else's station

    at = as_user("live.py", ANNA)  # without the link: only anna's own station
    run_until(at, lambda a: bool(a.selectbox), "the picker")
    assert at.selectbox(key="live_station").options == ["tm-anna"]
    run_until(at, lambda a: ">0.97<" in html_of(a), "anna's number")
    assert len(at.get("vega_lite_chart")) == 3
    assert "0.41" not in html_of(at)

    coach = as_user("coach.py", ANNA)
    run_until(coach, lambda a: 'data-station="tm-anna"' in html_of(a), "anna's card")
    assert "tm-ben" not in html_of(coach)


def test_station_pickers_leave_out_stations_busy_with_someone_else(two_stations):
    _publish_both(two_stations)
    for page in ("session.py", "calibration.py", "prone_test.py"):
        at = as_user(page, ANNA)
        assert not at.exception, (page, at.exception)
        options = at.selectbox(key="station").options
        assert "tm-ben" not in options and "tm-anna" in options, (page, options)
        text = "\n".join(m.value for m in at.markdown)
        # the label is shown as text, not as an image
        assert md("![x](http://x/y.png)") in text and "(![x]" not in text


def test_md_shows_text_as_written():
    assert md("![x](http://h/x.png)") == r"\!\[x\]\(http\://h/x.png\)"
    assert md("a\nb") == "a b"
    assert md("- item") == r"\- item" and md("1. first") == r"1\. first"
    assert md(":red[x] $y$ <b>") == r"\:red\[x\] \$y\$ \<b\>"
    assert md("treadmill-1") == "treadmill-1"
