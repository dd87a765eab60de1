"""The live message between publications: series continuous across messages at ≤ 25 Hz,
stride rows and problems carried once, the active cues in every message, existing keys kept
(pipeline/service/live.py)."""

from __future__ import annotations

import json
import math

import numpy as np

from hipstride.jsonsafe import jsonable
from hipstride.pipeline.engine.cues import CueTracker
from hipstride.pipeline.engine.stream import StreamOutput
from hipstride.pipeline.service.live import LiveState, active_cues, decimate

T0 = 1_700_000_000_000_000_000


def poll(t0_s: float, n: int, *, angles: bool = True, rows: list | None = None) -> StreamOutput:
    """What one engine poll gives: n envelope samples at 100 Hz from t0_s, angles likewise."""
    t = t0_s + np.arange(n) / 100
    snapshot = {"time_s": float(t[-1]) if n else math.nan, "phase": "running",
                "hip_flexion_deg": {"l": 10.0, "r": 12.0}, "pelvic_tilt_deg": 3.0,
                "processed": {"time_s": t, "envelope_mv": {"a": t * 2, "b": -t}}}
    if angles:
        snapshot["angles_deg"] = {"hip_flexion_l_deg": {"time_s": t, "value": t + 100},
                                  "pelvic_tilt_deg": {"time_s": t[: n // 2],
                                                      "value": t[: n // 2] - 100}}
    return StreamOutput(rows=rows or [], snapshot=snapshot)


def test_decimate_keeps_one_sample_per_bin_across_calls():
    t = T0 + np.arange(0, 200) * 10_000_000  # 100 Hz for 2 s
    got, last = [], -(2 ** 62)
    for chunk in np.array_split(t, 7):  # uneven chunks, as polls come
        idx, last = decimate(chunk, last, 25.0)
        got += chunk[idx].tolist()
    assert np.all(np.diff(got) == 40_000_000) and len(got) == 50
    idx, last2 = decimate(t[-3:], last, 25.0)  # the same data again: nothing new
    assert len(idx) == 0 and last2 == last


def test_series_are_continuous_and_existing_keys_unchanged():
    live = LiveState(series_hz=25.0)
    times, env_a, hip, tilt = [], [], [], []
    rows = [{"side": "l", "stride_index": 0}]
    for k in range(10):  # polls of 5 samples (50 ms); a message after every other poll
        live.add(T0, poll(k * 0.05, 5, rows=rows if k == 3 else None),
                 ["a problem"] if k == 4 else [])
        if k % 2:
            body = json.loads(json.dumps(jsonable(live.message("tm1", rejected={"crc": 1},
                                                              session="s1", now_ns=5))))
            assert {"version", "station", "time_ns", "data_time_ns", "phase",
                    "hip_flexion_deg", "pelvic_tilt_deg", "envelope_mv", "strides",
                    "rejected", "problems", "session"} <= set(body)
            assert body["data_time_ns"] == T0 + round((k * 0.05 + 0.04) * 1e9)
            assert body["envelope_mv"]["a"] == (k * 0.05 + 0.04) * 2  # latest, full rate
            assert body["strides"] == (rows if k == 3 else [])
            assert body["problems"] == (["a problem"] if k == 5 else [])
            env = body["series"]["envelope"]
            assert len(env["t_ns"]) == len(env["mv"]["a"]) == len(env["mv"]["b"])
            times += env["t_ns"]
            env_a += env["mv"]["a"]
            ang = body["series"]["angles"]
            hip += list(zip(ang["t_ns"], ang["deg"]["hip_flexion_l_deg"], strict=True))
            tilt += [(t, v) for t, v in zip(ang["t_ns"], ang["deg"]["pelvic_tilt_deg"],
                                            strict=True) if v is not None]
    assert np.all(np.diff(times) == 40_000_000)  # 25 Hz, no gap, no repeat
    assert times[0] == T0 and times[-1] == T0 + 480_000_000
    assert np.allclose(env_a, (np.array(times) - T0) / 1e9 * 2)
    assert [t for t, _ in hip] == times
    assert np.allclose([v for _, v in hip], (np.array(times) - T0) / 1e9 + 100)
    assert tilt and all(abs(v - ((t - T0) / 1e9 - 100)) < 1e-9 for t, v in tilt)


def test_rate_limit_does_not_lock_onto_a_delay():
    """Frames every 50 ms, messages at most every 50 ms on average: one message held back
    (a busy moment) must not hold back every later one by as much."""
    live = LiveState(interval_s=0.05, min_gap_s=0.02)
    delays = []
    for k in range(40):
        ready = k * 0.05 + (0.03 if k == 5 else 0.0)  # the 6th frame is handled 30 ms late
        at = max(ready, live.allowed_at(ready))
        live.spend(at)
        delays.append(at - k * 0.05)
    assert max(delays[8:]) < 1e-9  # back on time within a few frames
    sent = [k * 0.05 + d for k, d in enumerate(delays)]
    assert min(np.diff(sent)) >= 0.02 - 1e-9
    assert len(sent) / (sent[-1] - sent[0] + 0.05) <= 20.0 + 1e-9  # ≤ 20 per second


def test_live_message_carries_the_cues_active_now():
    """A cue raised once on ``…/cues`` is in every live message while it is active (so a
    dashboard that connects later sees it), with the raise's time; gone once cleared."""
    tracker = CueTracker()  # learns a baseline; limited extension (< 5°) is absolute
    live = LiveState()

    def message_after(extension_deg: float, strides: int, start: int) -> tuple[list, dict]:
        events = []
        for k in range(start, start + strides):
            events += tracker.update({"side": "l", "stride_start_s": float(k), "valid": True,
                                      "peak_hip_extension_deg": extension_deg})
        out = poll(start * 1.0, 5)
        out.snapshot["active_cues"] = tracker.active_cues()
        live.add(T0, out, [])
        body = json.loads(json.dumps(jsonable(live.message("tm1", rejected={},
                                                          session="s1", now_ns=5))))
        return events, body

    events, body = message_after(12.0, 12, 0)
    assert events == [] and body["active_cues"] == []
    events, body = message_after(1.0, 10, 12)
    raised = [e for e in events if e.kind == "raise"]
    assert [(e.cue, e.side) for e in raised] == [("limited_hip_extension", "l")]
    assert body["active_cues"] == [{
        "cue": "limited_hip_extension", "side": "l", "channel": None, "level": "alert",
        "message": raised[0].message,
        "since_ns": T0 + round(raised[0].stride_start_s * 1e9)}]
    _, later = message_after(1.0, 1, 22)  # still active: carried again, same since
    assert later["active_cues"] == body["active_cues"]
    events, body = message_after(12.0, 15, 23)
    assert [e.kind for e in events] == ["clear"] and body["active_cues"] == []


def test_active_cues_without_a_raise_time():
    assert active_cues(T0, [{"cue": "asymmetry", "side": None, "channel": None,
                             "level": "caution", "message": "m", "since_s": math.nan}]) == [
        {"cue": "asymmetry", "side": None, "channel": None, "level": "caution",
         "message": "m", "since_ns": None}]
    assert active_cues(T0, None) == []
