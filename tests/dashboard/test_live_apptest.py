"""The Live and Coach pages with Streamlit's AppTest, fed through a real Mosquitto.

The messages are published the way the pipeline and the edge agent publish them; AppTest runs
each page script once per ``run()`` (fragment bodies included, but not their timed reruns), so
each test runs the page, lets the live client receive, and runs it again.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from streamlit.testing.v1 import AppTest

from hipstride import topics
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.pipeline import USERS, wait_until

PAGES = Path(__file__).resolve().parents[2] / "dashboard" / "views"
TIMEOUT_S = 30


@pytest.fixture
def live_env(broker: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> Mosquitto:
    for name in [k for k in os.environ if k.startswith("HIPSTRIDE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HIPSTRIDE_BROKER", broker.url_for("coach"))
    monkeypatch.setenv("HIPSTRIDE_BROKER_PASSWORD", USERS["coach"])
    return broker


def publish(broker: Mosquitto, messages: list[tuple[str, dict | bytes, bool]]) -> None:
    """Publish as the pipeline account (QoS 1, waits for each acknowledgement)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-live-apptest")
    c.username_pw_set("pipeline", USERS["pipeline"])
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        for topic, body, retain in messages:
            payload = body if isinstance(body, bytes) else json.dumps(body)
            c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def stride(side: str, index: int, ratio: float) -> dict:
    return {"side": side, "stride_index": index, "stride_start_s": 6.0 + index * 0.7,
            "stride_time_s": 0.7, "cadence_spm": 171.4, "peak_hip_extension_deg": 8.4,
            "glute_ham_ratio": ratio, "peak_anterior_tilt_deg": 6.2, "valid": True,
            "normalization": "mvc", "quality": ""}


def live(station: str, strides: list[dict]) -> dict:
    now = time.time_ns()
    return {"version": 1, "station": station, "time_ns": now, "data_time_ns": now,
            "phase": "running", "hip_flexion_deg": {"l": 25.0, "r": 31.0},
            "pelvic_tilt_deg": 5.0, "envelope_mv": {"glute_max_l": 0.05},
            "strides": strides, "rejected": {}, "problems": [], "session": "s-1"}


def html_of(at: AppTest) -> str:
    return "\n".join(str(e.proto.body) for e in at.get("html"))


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("warning", "info", "caption", "markdown")
                     for e in at.get(kind))


def run_until(at: AppTest, predicate, what: str) -> AppTest:
    def again():
        at.run(timeout=TIMEOUT_S)
        assert not at.exception, at.exception
        return predicate(at)
    wait_until(again, TIMEOUT_S, what)
    return at


def test_live_page_shows_a_station_from_the_feed(live_env: Mosquitto) -> None:
    at = AppTest.from_file(str(PAGES / "live.py"), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    run_until(at, lambda a: "No station has sent anything yet" in texts(a)
              and "live feed" not in texts(a), "the live client to connect")
    publish(live_env, [
        (topics.status("tm7"), {"version": 1, "station": "tm7", "state": "online",
                                "time_ns": time.time_ns(), "problems": [
                                    {"stream": "emg", "channel": "biceps_femoris_r",
                                     "problem": "saturated",
                                     "message": "emg/biceps_femoris_r is saturated 4% of the "
                                                "time: poor electrode contact or gain too high"}]},
         True),
        (topics.live("tm7"), b"{broken", False),  # a bad message must not break the page
        (topics.live("tm7"), live("tm7", [stride("l", 3, 0.93), stride("r", 3, 0.41)]), False),
        (topics.cues("tm7"), {"version": 1, "station": "tm7", "time_ns": time.time_ns(),
                              "cue": "hamstring_dominant", "kind": "raise", "side": "r",
                              "level": "alert", "message": "Drive from the glutes (right)",
                              "stride_start_s": 8.1, "channel": None, "evidence": {}}, False),
    ])
    run_until(at, lambda a: "Drive from the glutes" in html_of(a), "the cue on the page")
    page = html_of(at)
    assert at.selectbox(key="live_station").value == "tm7"
    assert ">0.93<" in page and ">0.41<" in page and "8.4°" in page
    assert 'data-stride="l:3"' in page
    assert "biceps_femoris_r" in page and "poor electrode contact" in page
    assert "hs-tile hs-alert" in page  # the right ratio carries the cue's level
    assert len(at.get("vega_lite_chart")) == 3


def test_coach_page_orders_stations_by_attention(live_env: Mosquitto) -> None:
    at = AppTest.from_file(str(PAGES / "coach.py"), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    time.sleep(1.0)  # let the new client subscribe before non-retained messages go out
    publish(live_env, [
        (topics.live("aa-fine"), live("aa-fine", [stride("l", 1, 0.9)]), False),
        (topics.status("zz-gone"), {"version": 1, "station": "zz-gone", "state": "offline",
                                    "reason": "connection lost",
                                    "time_ns": time.time_ns()}, True),
    ])
    run_until(at, lambda a: 'data-station="aa-fine"' in html_of(a)
              and 'data-station="zz-gone"' in html_of(a), "both stations")
    page = html_of(at)
    assert page.index('data-station="zz-gone"') < page.index('data-station="aa-fine"')
    assert "agent has been offline" in page and "connection lost" in page


def test_no_broker_configured_is_a_plain_message(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("HIPSTRIDE_")]:
        monkeypatch.delenv(name)
    for page in ("live.py", "coach.py"):
        at = AppTest.from_file(str(PAGES / page), default_timeout=TIMEOUT_S).run()
        assert not at.exception
        assert "No live feed is configured" in texts(at)
        assert "--broker" in texts(at)


def test_unreachable_broker_is_a_plain_message(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("HIPSTRIDE_")]:
        monkeypatch.delenv(name)
    port = free_port()  # nothing listens there
    monkeypatch.setenv("HIPSTRIDE_BROKER", f"mqtt://127.0.0.1:{port}")
    at = AppTest.from_file(str(PAGES / "live.py"), default_timeout=TIMEOUT_S).run()
    run_until(at, lambda a: "cannot be reached" in texts(a), "the unreachable message")
    assert "Traceback" not in texts(at)


def test_rejected_login_is_a_plain_message(live_env: Mosquitto,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIPSTRIDE_BROKER_PASSWORD", "wrong")
    at = AppTest.from_file(str(PAGES / "coach.py"), default_timeout=TIMEOUT_S).run()
    run_until(at, lambda a: "refused the live feed's login" in texts(a), "the refusal")
    assert "HIPSTRIDE_BROKER_PASSWORD" in texts(at)
