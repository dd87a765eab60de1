"""The live feed's pure logic: messages in (as the pipeline and the edge agent publish them),
per-station state and what the Live and Coach pages show out."""

from __future__ import annotations

import json
import math
from itertools import pairwise

import pytest

from hipstride import topics
from hipstride.dashboard import feed as f
from hipstride.dashboard import live_html

T0 = 1_800_000_000 * 10**9
S = 10**9


def stride(side: str, index: int, *, ratio: float = 1.0, ext: float = 9.0, tilt: float = 6.0,
           cadence: float = 164.0, valid: bool = True, quality: str = "",
           norm: str = "mvc") -> dict:
    return {"side": side, "stride_index": index, "stride_start_s": 5.0 + index * 0.73,
            "stride_time_s": 0.73, "cadence_spm": cadence, "peak_hip_extension_deg": ext,
            "glute_ham_ratio": ratio, "peak_anterior_tilt_deg": tilt, "valid": valid,
            "normalization": norm, "quality": quality}


def live(t_ns: int, strides: list[dict] = (), *, session: str = "s1", hip_l: float = 20.0,
         problems: list[str] = ()) -> bytes:
    """A ``…/live`` message shaped like pipeline/service/runtime.py ``_publish``."""
    return json.dumps({
        "version": 1, "station": "tm1", "time_ns": t_ns, "data_time_ns": t_ns - 50_000_000,
        "phase": "running", "hip_flexion_deg": {"l": hip_l, "r": 30.0}, "pelvic_tilt_deg": 4.0,
        "envelope_mv": {"glute_max_l": 0.02, "biceps_femoris_l": 0.1},
        "strides": list(strides), "rejected": {}, "problems": list(problems),
        "session": session}).encode()


def cue(kind: str, name: str = "hamstring_dominant", side: str | None = "l",
        level: str = "alert", **extra) -> bytes:
    return json.dumps({"version": 1, "station": "tm1", "time_ns": T0, "session": "s1",
                       "cue": name, "kind": kind, "side": side, "level": level,
                       "message": "Drive from the glutes (left)", "stride_start_s": 20.0,
                       "channel": None, "evidence": {}, **extra}).encode()


def status(t_ns: int, problems: list[dict] = (), state: str = "online") -> bytes:
    body = {"version": 1, "station": "tm1", "state": state, "time_ns": t_ns,
            "problems": list(problems)}
    if state == "offline":
        body["reason"] = "connection lost"
    return json.dumps(body).encode()


def test_live_message_gives_latest_stride_numbers_and_trend() -> None:
    feed = f.Feed()
    rows = [stride("l", i, ratio=1.0 + 0.1 * i) for i in range(8)] + [stride("r", 0)]
    assert feed.handle(topics.live("tm1"), live(T0, rows), T0)
    view = feed.view("tm1", T0 + S)
    ratio = view.tiles["l"][0]
    assert ratio.metric == "glute_ham_ratio" and ratio.text == "1.70"
    assert ratio.level == "ok" and ratio.trend_word == "rising"
    assert len(ratio.trend) == 8
    assert [t.metric for t in view.tiles["r"]] == list(f.HEADLINE)
    assert view.tiles["r"][1].text == "9.0°"
    assert view.tiles["r"][3].level == "info"  # cadence has no rule
    assert view.last_stride["l"]["stride_index"] == 7
    assert view.silence is None and view.attention == 0 and view.strides_total == 9


def test_invalid_strides_do_not_become_the_number() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0, ratio=0.9),
                                               stride("l", 1, ratio=5.0, valid=False)]), T0)
    assert feed.view("tm1", T0).tiles["l"][0].text == "0.90"


def test_cue_raise_and_clear_drive_the_banner_and_tile_level() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0, ratio=0.3)]), T0)
    feed.handle(topics.cues("tm1"), cue("raise"), T0)
    view = feed.view("tm1", T0)
    assert [c.words for c in view.cues] == ["Drive from the glutes"]
    assert view.tiles["l"][0].level == "alert" and view.attention == 2
    assert "Drive from the glutes" in live_html.cue_banner(view.cues)
    feed.handle(topics.cues("tm1"), cue("clear"), T0 + S)
    view = feed.view("tm1", T0 + S)
    assert view.cues == ()  # still below the absolute rule (0.6, MVC): caution, not alert
    assert view.tiles["l"][0].level == "caution"
    assert "No cue" in live_html.cue_banner(view.cues)


def test_asymmetry_cue_marks_its_metric_on_both_sides() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0), stride("r", 0)]), T0)
    feed.handle(topics.cues("tm1"), cue("raise", "asymmetry", None, "caution",
                                        evidence={"metric": "peak_hip_extension_deg"}), T0)
    view = feed.view("tm1", T0)
    assert view.tiles["l"][1].level == view.tiles["r"][1].level == "caution"
    assert view.tiles["l"][0].level == "ok"
    assert view.attention == 1


@pytest.mark.parametrize(("metric", "value", "norm", "level"), [
    ("glute_ham_ratio", 0.5, "mvc", "caution"),
    ("glute_ham_ratio", 0.5, "relative", "ok"),  # a relative ratio has no absolute rule
    ("glute_ham_ratio", 0.7, "mvc", "ok"),
    ("peak_hip_extension_deg", 4.0, "mvc", "caution"),
    ("peak_hip_extension_deg", 6.0, "mvc", "ok"),
    ("peak_anterior_tilt_deg", 12.0, "mvc", "caution"),
    ("peak_anterior_tilt_deg", 10.0, "mvc", "ok"),
    ("cadence_spm", 150.0, "mvc", "info"),
    ("cadence_spm", math.nan, "mvc", "none"),
])
def test_metric_levels_follow_the_engine_thresholds(metric, value, norm, level) -> None:
    assert f.metric_level(metric, value, norm)[0] == level


def test_trend_words() -> None:
    assert f.trend_word("glute_ham_ratio", [1.0, 1.0, 1.01, 1.0]) == "steady"
    assert f.trend_word("glute_ham_ratio", [1.0, 1.0, 0.5, 0.5]) == "falling"
    assert f.trend_word("glute_ham_ratio", [1.0, 0.5]) == ""


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("hipstride/v1/tm1/live", b"{not json", "json"),
    ("hipstride/v1/tm1/live", b"[1, 2]", "json"),
    ("hipstride/v1/tm1/live", b'{"version": 2}', "version"),
    ("hipstride/v1/TM 1/live", b"{}", "topic"),
    ("other/thing", b"{}", "topic"),
    ("hipstride/v1/tm1/frames/emg", b"{}", "kind"),
    ("hipstride/v1/tm1/cues", b'{"version": 1, "cue": "x"}', "payload"),
    ("hipstride/v1/tm1/live", b"\xff\xfe", "json"),
])
def test_bad_messages_are_counted_not_raised(topic, payload, reason) -> None:
    feed = f.Feed()
    assert not feed.handle(topic, payload, T0)
    assert feed.rejected[reason] == 1 and feed.last_rejection


def test_odd_fields_do_not_break_the_view() -> None:
    feed = f.Feed()
    body = {"version": 1, "time_ns": "soon", "hip_flexion_deg": [1, 2], "envelope_mv": None,
            "strides": [{"side": "x"}, "junk", {"side": "l", "glute_ham_ratio": "high"}],
            "pelvic_tilt_deg": None, "phase": 3}
    assert feed.handle(topics.live("tm1"), json.dumps(body), T0)
    view = feed.view("tm1", T0)
    assert view.tiles["l"][0].text == "—" and view.tiles["l"][0].level == "none"
    assert view.strides_total == 1


def test_state_is_bounded() -> None:
    feed = f.Feed()
    for i in range(2000):
        t = T0 + i * 100_000_000
        feed.handle(topics.live("tm1"), live(t, [stride("l", i)]), t)
        feed.handle(topics.cues("tm1"), cue("raise" if i % 2 else "clear"), t)
    state = feed.state("tm1")
    assert len(state.strides) == f.MAX_STRIDES and state.strides_total == 2000
    assert len(state.samples) <= f.WINDOW_S * 10 + 1
    assert len(state.events) == f.MAX_EVENTS
    columns = feed.series("tm1")
    assert columns["t_s"][0] >= -f.WINDOW_S and columns["t_s"][-1] == 0
    assert set(columns["envelope_mv"]) == {"glute_max_l", "biceps_femoris_l"}


def test_a_new_session_starts_a_new_trend() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0)], session="a"), T0)
    feed.handle(topics.live("tm1"), live(T0 + S, [stride("l", 0, ratio=0.5)], session="b"),
                T0 + S)
    assert [r["glute_ham_ratio"] for r in feed.state("tm1").strides] == [0.5]


def test_silence_is_said_in_plain_words() -> None:
    feed = f.Feed()
    feed.handle(topics.status("tm1"), status(T0), T0)
    assert "pipeline has sent no live data" in feed.view("tm1", T0).silence
    feed.handle(topics.live("tm1"), live(T0), T0)
    assert feed.view("tm1", T0 + 2 * S).silence is None
    text = feed.view("tm1", T0 + 12 * S).silence
    assert text == "station tm1 has sent nothing for 12 s: is its agent running?"
    feed.handle(topics.status("tm1"), status(T0 + 13 * S, state="offline"), T0 + 13 * S)
    view = feed.view("tm1", T0 + 20 * S)
    assert "offline for 7 s (connection lost)" in view.silence and view.attention == 3


def test_live_from_the_pipeline_stops_while_the_agent_talks() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0), T0)
    feed.handle(topics.status("tm1"), status(T0 + 9 * S), T0 + 9 * S)
    assert "the pipeline has sent no live data for station tm1 for 10 s" in feed.view(
        "tm1", T0 + 10 * S).silence


def test_a_retained_status_keeps_its_own_age() -> None:
    feed = f.Feed()  # a retained status from five minutes ago arrives now
    feed.handle(topics.status("tm1"), status(T0 - 300 * S), T0)
    assert "nothing for 5 min" in feed.view("tm1", T0).silence
    assert feed.stations(T0) == ["tm1"]
    assert feed.stations(T0, forget_after_s=60) == []


def test_channel_problems_are_named() -> None:
    feed = f.Feed()
    problems = [
        {"stream": "emg", "channel": "glute_max_l", "problem": "flat",
         "message": "emg/glute_max_l is flat at 0 mV: electrode off or lead broken? check "
                    "the electrode and its cable"},
        {"stream": "imu_thigh_r", "channel": None, "problem": "silent",
         "message": "imu_thigh_r is silent (no samples for 2.0 s): sensor unplugged?"}]
    feed.handle(topics.status("tm1"), status(T0, problems), T0)
    feed.handle(topics.live("tm1"), live(T0, [
        stride("r", 0, quality="saturated:biceps_femoris_r;missing:glute_max_l")]), T0)
    issues = feed.view("tm1", T0).issues
    assert [(i.where, i.problem, i.source) for i in issues] == [
        ("emg/glute_max_l", "flat", "agent"), ("imu_thigh_r", "silent", "agent"),
        ("biceps_femoris_r", "saturated", "strides")]
    html = live_html.issues_list(issues)
    assert "electrode off" in html and "imu_thigh_r" in html and "saturated" in html
    assert feed.view("tm1", T0).attention == 2


def test_coach_order_puts_attention_first() -> None:
    feed = f.Feed()
    for name in ("a-ok", "b-cue", "c-silent"):
        feed.handle(topics.live(name), live(T0, [stride("l", 0)]), T0)
    feed.handle(topics.live("a-ok"), live(T0 + 9 * S), T0 + 9 * S)
    feed.handle(topics.live("b-cue"), live(T0 + 9 * S), T0 + 9 * S)
    feed.handle(topics.cues("b-cue"), cue("raise"), T0 + 9 * S)
    views = [feed.view(s, T0 + 10 * S) for s in feed.stations(T0 + 10 * S)]
    assert [v.station for v in f.coach_order(views)] == ["c-silent", "b-cue", "a-ok"]
    card = live_html.station_card(f.coach_order(views)[0], T0 + 10 * S)
    assert 'data-station="c-silent"' in card and "is its agent running?" in card


def test_html_escapes_what_comes_off_the_wire() -> None:
    feed = f.Feed()
    feed.handle(topics.status("tm1"), status(T0, [{"stream": "emg", "channel": "<b>x</b>",
                                                    "problem": "flat",
                                                    "message": "<script>alert(1)</script>"}]),
                T0)
    html = live_html.issues_list(feed.view("tm1", T0).issues)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_sparkline_skips_gaps() -> None:
    assert live_html.sparkline([1.0], "#000") == ""
    svg = live_html.sparkline([1.0, math.nan, 2.0, 3.0], "#000")
    assert svg.startswith("<svg") and svg.count(",") == 3


def test_a_caution_cue_or_number_makes_the_card_say_watch_and_why() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0), stride("r", 0)]), T0)
    assert feed.view("tm1", T0).attention == 0
    feed.handle(topics.cues("tm1"), cue("raise", "asymmetry", None, "caution",
                                        message="Even out left and right - caution",
                                        evidence={"metric": "glute_ham_ratio"}), T0)
    view = feed.view("tm1", T0)
    assert view.attention == 1
    assert view.attention_reasons == ("Even out left and right - caution",)
    card = live_html.station_card(view, T0)
    assert 'data-attention="1"' in card and "Watch" in card and "All good" not in card
    assert "Even out left and right" in card
    # No cue, but a number past its cue's absolute rule: "Watch", with the number and rule.
    other = f.Feed()
    other.handle(topics.live("tm1"), live(T0, [stride("l", 0, ratio=0.18),
                                                stride("r", 0, ratio=0.9)]), T0)
    view = other.view("tm1", T0)
    assert view.attention == 1
    assert view.attention_reasons == ("Left glute:hamstring ratio 0.18: below 0.60",)
    assert "below 0.60" in live_html.station_card(view, T0)


def test_coach_order_within_a_level_puts_more_reasons_first() -> None:
    feed = f.Feed()
    for name in ("a-one", "b-two"):
        feed.handle(topics.live(name), live(T0, [stride("l", 0), stride("r", 0)]), T0)
    feed.handle(topics.cues("a-one"), cue("raise"), T0)
    feed.handle(topics.cues("b-two"), cue("raise"), T0)
    feed.handle(topics.cues("b-two"), cue("raise", side="r"), T0)
    views = [feed.view(s, T0) for s in feed.stations(T0)]
    assert [v.attention for v in views] == [2, 2]
    assert [v.station for v in f.coach_order(views)] == ["b-two", "a-one"]


def test_coach_card_has_short_headers_with_the_full_names_as_tooltips() -> None:
    feed = f.Feed()
    feed.handle(topics.live("tm1"), live(T0, [stride("l", 0), stride("r", 0)]), T0)
    card = live_html.station_card(feed.view("tm1", T0), T0)
    headers = [h.split(">", 1)[1].split("<", 1)[0]
               for h in card.split("<th scope='col'")[1:]]
    assert headers == ["G:H ratio", "Hip ext.", "Pelvic tilt", "Cadence"]
    assert 'title="Peak anterior pelvic tilt"' in card
    assert "table-layout:fixed" in card and "width:100%" in card
    assert "G:H ratio = glute:hamstring ratio" in card  # the legend
    assert card.count('class="hs-cell') == 8


STEP_NS = 40_000_000  # the pipeline's series rate: 25 Hz


def hip_deg(t_ns: int) -> float:
    return 20.0 * math.sin(2 * math.pi * 1.4 * t_ns / S)  # a stride-like hip swing


def live_series(k: int, *, points: int = 2, lag: int = 5, active: list | None = None
                ) -> tuple[int, bytes]:
    """Message ``k`` (every ``points`` series steps) with ``series`` as the pipeline builds
    it (pipeline/service/live.py): envelope up to now, angles ``lag`` steps behind."""
    env_t = [T0 + (k * points + i) * STEP_NS for i in range(points)]
    ang_t = [t - lag * STEP_NS for t in env_t if t - lag * STEP_NS >= T0]
    body = json.loads(live(env_t[-1]))
    body["series"] = {
        "envelope": {"t_ns": env_t, "mv": {"glute_max_l": [(t - T0) / S for t in env_t],
                                           "biceps_femoris_l": [0.1] * len(env_t)}},
        "angles": {"t_ns": ang_t, "deg": {"hip_flexion_l_deg": [hip_deg(t) for t in ang_t],
                                          "hip_flexion_r_deg": [-hip_deg(t) for t in ang_t],
                                          "pelvic_tilt_deg": [None] * len(ang_t)}}}
    if active is not None:
        body["active_cues"] = active
    return env_t[-1], json.dumps(body).encode()


def test_series_make_continuous_rolling_charts() -> None:
    feed = f.Feed()
    for k in range(40):  # 3.2 s of data, a message every 80 ms
        t, payload = live_series(k)
        assert feed.handle(topics.live("tm1"), payload, t)
    columns = feed.series("tm1")
    t_s = columns["t_s"]
    assert t_s == sorted(t_s) and t_s[-1] == 0
    hip = [(t, v) for t, v in zip(t_s, columns["hip_l_deg"], strict=True) if v == v]
    env = [(t, v) for t, v in zip(t_s, columns["envelope_mv"]["glute_max_l"], strict=True)
           if v == v]
    # every series point, 25 Hz, no gap or repeat: angles 80 - 5 points, envelope 80
    assert len(hip) == 75 and len(env) == 80
    assert all(abs(b - a - 0.04) < 1e-9 for (a, _), (b, _) in pairwise(hip))
    assert all(abs(b - a - 0.04) < 1e-9 for (a, _), (b, _) in pairwise(env))
    newest_ns = T0 + 79 * STEP_NS
    for t, v in hip:  # the values at their own times, not the message's latest
        assert v == pytest.approx(hip_deg(newest_ns + round(t * S)), abs=1e-6)
    slope_deg = 2 * math.pi * 1.4 * 20.0 * 0.04  # the swing's largest change in one step
    assert max(abs(b - a) for (_, a), (_, b) in pairwise(hip)) <= slope_deg + 1e-6
    assert hip[-1][0] == pytest.approx(-0.2)  # the angles lag the envelope by 5 steps
    assert all(v != v for v in columns["tilt_deg"])  # null in the series: no point


def test_series_rings_are_bounded_to_the_window() -> None:
    feed = f.Feed()
    for k in range(400):  # 32 s
        t, payload = live_series(k)
        feed.handle(topics.live("tm1"), payload, t)
    feed.handle(topics.live("tm1"), live_series(399)[1], t)  # a repeat adds nothing
    state = feed.state("tm1")
    per_window = int(f.WINDOW_S * 25) + 1
    assert len(state.samples) == per_window and len(state.angles) <= per_window
    assert len(state.samples) <= f.MAX_SAMPLES and len(state.angles) <= f.MAX_SAMPLES
    columns = feed.series("tm1")
    assert columns["t_s"][0] >= -f.WINDOW_S and columns["t_s"][-1] == 0
    assert len(columns["t_s"]) == len(state.samples) + len(state.angles)


def test_messages_without_series_still_add_one_point_each() -> None:
    feed = f.Feed()
    for i in range(5):
        t = T0 + i * 100_000_000
        feed.handle(topics.live("tm1"), live(t, hip_l=10.0 + i), t)
    t, payload = live_series(20)  # a newer pipeline takes over: its series go on from there
    feed.handle(topics.live("tm1"), payload, t)
    columns = feed.series("tm1")
    assert [v for v in columns["hip_l_deg"] if v == v][:5] == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert len([v for v in columns["hip_l_deg"] if v == v]) == 5 + 2
    assert columns["envelope_mv"]["biceps_femoris_l"][-1] == 0.1


def test_malformed_series_do_not_lose_the_message() -> None:
    feed = f.Feed()
    body = json.loads(live(T0, [stride("l", 0)]))
    body["series"] = {"envelope": {"t_ns": [T0, "x", T0 + STEP_NS], "mv": {"a": [1.0]}},
                      "angles": "nonsense"}
    assert feed.handle(topics.live("tm1"), json.dumps(body).encode(), T0)
    state = feed.state("tm1")
    assert state.strides_total == 1 and len(state.angles) == 0
    assert state.samples[0][4]["a"] == 1.0 and len(state.samples) == 2


ACTIVE = {"cue": "hamstring_dominant", "side": "l", "channel": None, "level": "alert",
          "message": "Drive from the glutes (left)", "since_ns": T0 - 30 * S}


def test_a_late_viewer_sees_the_cues_already_active() -> None:
    """The raise went out before this dashboard subscribed: the live message brings it."""
    feed = f.Feed()
    t, payload = live_series(0, active=[ACTIVE])
    feed.handle(topics.live("tm1"), payload, t)
    view = feed.view("tm1", t)
    assert [(c.cue, c.side, c.level, c.since_ns) for c in view.cues] == [
        ("hamstring_dominant", "l", "alert", T0 - 30 * S)]
    assert view.cues[0].words == "Drive from the glutes" and view.attention == 2
    assert len(feed.state("tm1").events) == 0  # no event made up
    t, payload = live_series(1, active=[])  # cleared while we did not hear the clear
    feed.handle(topics.live("tm1"), payload, t)
    assert feed.view("tm1", t).cues == ()


def test_cue_events_update_the_list_between_live_messages() -> None:
    feed = f.Feed()
    feed.handle(topics.cues("tm1"), cue("raise", evidence={"count": 11}), T0)
    assert [c.cue for c in feed.view("tm1", T0).cues] == ["hamstring_dominant"]
    t, payload = live_series(0, active=[{**ACTIVE, "since_ns": T0}])
    feed.handle(topics.live("tm1"), payload, t)
    state = feed.state("tm1")
    assert next(iter(state.cues.values()))["evidence"] == {"count": 11}  # the event is kept
    feed.handle(topics.cues("tm1"), cue("clear"), t)
    assert feed.view("tm1", t).cues == ()
    feed.handle(topics.cues("tm1"), cue("raise", name="glutes_late"), t)
    t2, payload = live_series(1)  # an older pipeline: no active_cues, the events decide
    feed.handle(topics.live("tm1"), payload, t2)
    assert [c.cue for c in feed.view("tm1", t2).cues] == ["glutes_late"]


def session_msg(session: str, athlete: str, state: str = "running") -> bytes:
    return json.dumps({"version": 1, "station": "tm1", "state": state, "session": session,
                       "athlete": athlete, "start_ns": T0}).encode()


def test_another_athletes_session_sees_nothing_of_the_one_before() -> None:
    feed = f.Feed()
    feed.handle(topics.session("tm1"), session_msg("s1", "ben"), T0)
    for k in range(10):
        t, payload = live_series(k)
        feed.handle(topics.live("tm1"), payload, t)
    feed.handle(topics.live("tm1"), live(T0 + S, [stride("l", 0)], session="s1"), T0 + S)
    feed.handle(topics.cues("tm1"), cue("raise"), T0 + S)
    before = feed.state("tm1")
    assert before.strides and before.samples and before.cues
    feed.handle(topics.session("tm1"), session_msg("s1b", "anna"), T0 + 2 * S)
    after = feed.state("tm1")
    assert not (after.strides or after.samples or after.angles or after.cues)
    view = feed.view("tm1", T0 + 2 * S)
    assert view.athlete == "anna" and not view.last_stride and not view.cues
    # a late message of ben's session is not shown as anna's
    feed.handle(topics.live("tm1"), live(T0 + 3 * S, [stride("l", 1)], session="s1"), T0 + 3 * S)
    assert not feed.state("tm1").strides
    feed.handle(topics.live("tm1"), live(T0 + 4 * S, [stride("l", 0)], session="s1b"), T0 + 4 * S)
    assert len(feed.state("tm1").strides) == 1
