"""Live: one station's feedback, readable from the treadmill two metres away.

Fed by the dashboard's live MQTT client (:mod:`hipstride.dashboard.live_client`), never by
polling the store. Two fragments refresh on their own: the numbers, cues and signal problems
twice a second, the rolling charts and per-stride bars once a second. ``?station=NAME`` in the
address picks the station (the coach view links here that way). While the athlete is not
running (a calibration phase, the prone test, the engine's own calibration) the phase and its
countdown replace the cue (:mod:`hipstride.dashboard.live_phase`); the live signals (EMG
envelopes, angles) are numbers from the first message on.
"""

from __future__ import annotations

import json
import time

import streamlit as st

from hipstride.dashboard import auth, charts, live_html
from hipstride.dashboard.feed import StationView
from hipstride.dashboard.live_client import LiveClient, live_client, live_client_or_warning
from hipstride.dashboard.safe import md

NUMBERS_EVERY_S = 0.5
CHARTS_EVERY_S = 1.0
STATION_KEY = "live_station"
SHOWN_KEY = "live_shown"  # the station whose numbers this viewer was allowed to see
SOUND_KEY = "live_sound"
BAR_METRICS = {"glute_ham_ratio": "Glute:hamstring ratio",
               "peak_hip_extension_deg": "Peak hip extension"}


@st.cache_resource(ttl=10, max_entries=64, show_spinner=False)
def _chart_specs(_client: LiveClient, station: str, second: int, bars: str) -> dict:
    """Vega-Lite specs of one station's charts, built at most once a second for all viewers
    (``second`` is the wall-clock second: the cache key that makes them shared)."""
    series = _client.feed.series(station)
    state = _client.feed.state(station)
    rows = list(state.strides) if state is not None else []
    norm = next((r.get("normalization") for r in reversed(rows) if r.get("normalization")),
                "mvc")
    return {"envelope": charts.envelope_chart(series).to_dict(),
            "hip": charts.hip_angle_chart(series).to_dict(),
            "bars": charts.live_stride_bars(rows, bars, normalization=norm).to_dict()}


def _say(view: StationView, mode: str) -> None:
    """Speak (speechSynthesis) or beep (Web Audio) when the set of active cues changes."""
    words = [c.words for c in view.cues]
    key = f"live_spoken_{view.station}"
    if mode == "Off" or not words or st.session_state.get(key) == words:
        st.session_state[key] = words
        return
    st.session_state[key] = words
    text = json.dumps(". ".join(dict.fromkeys(words)))
    if mode == "Speak":
        script = (f"<script>const u=new SpeechSynthesisUtterance({text});"
                  "window.speechSynthesis.cancel();window.speechSynthesis.speak(u);</script>")
    else:
        script = ("<script>const c=new (window.AudioContext||window.webkitAudioContext)();"
                  "const o=c.createOscillator();o.frequency.value=880;o.connect(c.destination);"
                  "o.start();o.stop(c.currentTime+0.25);</script>")
    st.html(script, unsafe_allow_javascript=True)


def _allowed(view: StationView | None) -> bool:
    """Whether this viewer may see the station's live data: its running session is of an
    athlete they may see (an admin: every station, even one without a session)."""
    if ACCESS.everyone:
        return True
    return view is not None and auth.can_see(ACCESS, view.athlete)


def _locked(station: str) -> None:
    # the same words whether the station exists or not: nothing of it is told
    st.info(f"**Station {md(station)}** is not running a session of an athlete you follow.",
            icon=":material/lock:")


def _pick_station(client: LiveClient, now_ns: int) -> str | None:
    stations = [s for s in client.feed.stations(now_ns)
                if _allowed(client.feed.view(s, now_ns))]
    wanted = st.query_params.get("station")
    if wanted and wanted not in stations:
        if not ACCESS.everyone:  # a deep link to a station that is not theirs
            _locked(wanted)
            return None
        stations = sorted({*stations, wanted})
    if not stations:
        st.info("**No station has sent anything yet.** Start a station's agent "
                "(`hipstride edge --station treadmill-1 ...`) and the pipeline "
                "(`hipstride pipeline ...`); it appears here by itself." if ACCESS.everyone
                else "**No station is running a session of an athlete you follow.** It "
                "appears here by itself once one starts.",
                icon=":material/hourglass_empty:")
        return None
    current = st.session_state.get(STATION_KEY)
    if current not in stations:
        st.session_state[STATION_KEY] = wanted if wanted in stations else stations[0]
    station = st.selectbox("Station", stations, key=STATION_KEY)
    if station != wanted:
        st.query_params["station"] = station
    return station


def _signals_note(view: StationView) -> str:
    if view.normalization == "mvc":
        return "EMG envelopes in mV; per-stride ratios normalised to MVC"
    return ("EMG envelopes in mV; per-stride ratios are relative — MVC not yet measured"
            if view.strides_total else "EMG envelopes in mV; hip and pelvis angles once the "
            "standing calibration is done; per-stride numbers once running")


@st.fragment(run_every=NUMBERS_EVERY_S)
def numbers() -> None:
    """Station picker, the feed's health, the cue, signal problems and the big numbers."""
    st.session_state[SHOWN_KEY] = None  # the charts draw only what this run shows
    client = live_client_or_warning()
    if client is None:
        return
    now_ns = time.time_ns()
    station = _pick_station(client, now_ns)
    if station is None:
        return
    view = client.feed.view(station, now_ns)
    if not _allowed(view):  # its session changed since the picker looked
        _locked(station)
        return
    if view is None:
        st.warning(f"**Station {md(station)} has sent nothing yet.** Is its agent running, "
                   "and is this the right station name?", icon=":material/sensors_off:")
        return
    st.session_state[SHOWN_KEY] = station
    # Every run draws the same elements in the same places: a fragment that shifts them
    # leaves the previous run's panels on the page (stale) until it finishes.
    notice = st.empty()
    if view.silence:
        notice.warning(md(view.silence[0].upper() + view.silence[1:]),
                       icon=":material/sensors_off:")
    state = " · ".join(x for x in (
        f"athlete {view.athlete}" if view.athlete else None,
        f"session {view.session}" if view.session else None,
        view.phase, f"{view.strides_total} strides") if x)
    st.caption(md(state))
    phase = view.phase_view
    if phase is not None and phase.running:
        banner = live_html.cue_banner(view.cues)
    elif phase is not None:  # calibrating, standing, prone: no running cue ("keep going")
        banner = live_html.phase_banner(phase)
    else:
        banner = ""
    st.html(banner + live_html.signals_row(view.signals, note=_signals_note(view))
            + live_html.issues_list(view.issues))
    left, right = st.columns(2, gap="large")
    with left:
        st.html(live_html.side_panel(view, "l", now_ns))
    with right:
        st.html(live_html.side_panel(view, "r", now_ns))
    for problem in view.problems[-3:]:
        st.caption(f"Pipeline: {md(problem)}")
    _say(view, st.session_state.get(SOUND_KEY, "Off"))


@st.fragment(run_every=CHARTS_EVERY_S)
def rolling_charts() -> None:
    """EMG envelopes and hip angle over the last 10 s; the last strides as bars."""
    client, _health = live_client()
    station = st.session_state.get(SHOWN_KEY)
    if client is None or not station or client.feed.version(station) < 0:
        return
    if not _allowed(client.feed.view(station, time.time_ns())):  # checked on every run
        return
    bars = st.session_state.get("live_bars", "glute_ham_ratio")
    specs = _chart_specs(client, station, int(time.time()), bars)
    one, two = st.columns(2)
    with one:
        st.markdown("**EMG envelopes** (last 10 s)")
        st.vega_lite_chart(specs["envelope"], width="stretch")
    with two:
        st.markdown("**Hip angle and pelvic tilt** (last 10 s)")
        st.vega_lite_chart(specs["hip"], width="stretch")
    st.markdown(f"**Per stride: {BAR_METRICS[bars].lower()}** (last 20 per side)")
    st.vega_lite_chart(specs["bars"], width="stretch")


ACCESS = auth.require()
st.title("Live")
with st.sidebar:
    st.segmented_control("Cue sound", ["Off", "Speak", "Beep"], default="Off", key=SOUND_KEY,
                         help="Say the cue aloud (or beep) when it changes. Off by default.")
    st.radio("Per-stride bars", list(BAR_METRICS), key="live_bars",
             format_func=BAR_METRICS.get)
numbers()
rolling_charts()
