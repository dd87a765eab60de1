"""The dashboard's side of the control contract: one broker connection per dashboard process
(:class:`hipstride.control.ControlClient`), a station picker, and commands sent with their
outcome in plain words. The broker comes from ``HIPSTRIDE_BROKER`` (``hipstride dashboard
--broker``; password in ``HIPSTRIDE_BROKER_PASSWORD``), as for the live pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

from hipstride.config import ConfigError, env
from hipstride.control import ControlClient, build_command
from hipstride.mqtt import BrokerError

from . import data
from .auth import Access, can_see, visible
from .safe import md

__all__ = ["Sent", "athlete_choices", "client", "connect_and_pick", "pick_station", "send",
           "start_for_test", "state_line"]

REPLY_TIMEOUT_S = 10.0
FIRST_NEWS_S = 2.0


@dataclass(frozen=True)
class Sent:
    """What became of a command: ``ok``, the reply (None: none came) and a sentence."""

    ok: bool
    reply: dict[str, Any] | None
    text: str


@st.cache_resource(show_spinner=False)
def _client(url: str, password: str | None) -> ControlClient:
    return ControlClient(url, password=password, name="dashboard").open(timeout_s=5.0)


def client() -> ControlClient:
    """The dashboard's broker connection; :class:`data.DataProblem` when there is none."""
    url = env("BROKER")
    if not url:
        raise data.DataProblem(
            "No broker is configured, so this page cannot talk to the stations.",
            "Start the dashboard with `hipstride dashboard --broker mqtt://HOST:1883` (or set "
            "HIPSTRIDE_BROKER; the password in HIPSTRIDE_BROKER_PASSWORD).")
    try:
        return _client(url, env("BROKER_PASSWORD"))
    except ConfigError as err:
        raise data.DataProblem("The broker address is not valid.", str(err)) from None
    except BrokerError as err:
        raise data.DataProblem(
            "The dashboard cannot reach the MQTT broker, so it cannot talk to the stations.",
            f"{err}. Start the dashboard with `--broker URL` (or set HIPSTRIDE_BROKER) and "
            "HIPSTRIDE_BROKER_PASSWORD.", retry=True) from None


def send(cl: ControlClient, station: str, command: str, **fields: Any) -> Sent:
    """Send one command and wait for the pipeline's reply."""
    what = {"start": "start the session", "stop": "stop the session", "mark": "mark",
            "calibrate": "calibrate"}[command]
    try:
        body = build_command(command, **fields)
    except ValueError as err:  # a name or field against the rules (hipstride/names.py)
        return Sent(False, None, f"Could not {what}: {md(err)}")
    try:
        reply = cl.send(station, body, timeout_s=REPLY_TIMEOUT_S)
    except BrokerError as err:
        return Sent(False, None, f"Could not {what}: {md(err)}")
    if reply is None:
        return Sent(False, None, f"Could not {what}: the pipeline did not answer within "
                                 f"{REPLY_TIMEOUT_S:.0f} s. Is `hipstride pipeline` running "
                                 f"and connected to the same broker?")
    result = reply.get("result") or {}
    if not result.get("ok"):
        return Sent(False, reply, f"The pipeline refused to {what}: "
                                  f"{md(result.get('message') or result.get('reason'))}.")
    return Sent(True, reply, "")


def usable(cl: ControlClient, station: str, access: Access) -> bool:
    """Whether the user may see the station at all: it runs no session, or one of an athlete
    they may see (a station busy with someone else's session is not even listed)."""
    if access.everyone:
        return True
    state = cl.session_state(station) or {}
    return state.get("state") != "running" or can_see(access, state.get("athlete"))


def pick_station(cl: ControlClient, access: Access, *, key: str = "station") -> str | None:
    """A station picker (those heard on the broker that this user may use); None, with a
    note, when there is none."""
    found = cl.stations()
    deadline = time.monotonic() + FIRST_NEWS_S
    while not found and time.monotonic() < deadline:  # a fresh connection: retained news
        time.sleep(0.1)                                # arrives just after subscribing
        found = cl.stations()
    found = [s for s in found if usable(cl, s, access)]
    if not found:
        st.info("**No station has reported yet.** Stations appear here once their agent "
                "(`hipstride edge`) or the pipeline has published to the broker.",
                icon=":material/sensors_off:")
        st.button("Look again", key=f"{key}_again", icon=":material/refresh:")
        return None
    remembered = st.session_state.get("chosen_station")
    index = found.index(remembered) if remembered in found else 0
    # plain ids as options: labels that change with the state would reset the choice
    station = st.selectbox("Station", found, index=index, key=key)
    st.session_state["chosen_station"] = station
    st.caption("The station's agent is online." if cl.online(station) else
               "The station's agent is offline: commands reach the pipeline, but no data "
               "comes in until it reconnects.")
    return station


def connect_and_pick(access: Access) -> tuple[ControlClient, str] | None:
    """The broker connection and the station chosen on the page; None, with the reason shown
    (no broker, or no station yet), when there is none to talk to."""
    try:
        cl = client()
    except data.DataProblem as problem:
        st.error(f"**{problem.title}**\n\n{problem.hint}", icon=":material/error:")
        return None
    station = pick_station(cl, access)
    return None if station is None else (cl, station)


def state_line(state: dict[str, Any] | None, access: Access) -> str:
    """The station's session state in one line."""
    if not state or state.get("state") != "running":
        return "No session is running."
    who = state.get("athlete")
    if not can_see(access, who):
        return "A session of another athlete is running on this station."
    start = data.local_time(int(state["start_ns"])) if state.get("start_ns") else None
    parts = [f"Session **{md(state.get('session'))}** of **{md(who)}** is running"]
    if start is not None:
        parts.append(f"since {start:%H:%M:%S}")
    if state.get("label"):
        parts.append(f"({md(state['label'])})")
    if state.get("phase") not in (None, "running"):
        parts.append(f"— phase **{md(state['phase'])}** active")
    return " ".join(parts) + "."


def athlete_choices(access: Access, url: str | None) -> list[str]:
    """Athletes this user may start a session for: those of past sessions and the accounts'
    assignments (an athlete: only themself)."""
    if access.role == "athlete":
        return sorted(access.athletes or ())
    try:
        names = {s.athlete for s in data.load_sessions(url) if s.athlete}
    except data.DataProblem:
        names = set()  # the store may be new: starting a session creates it
    names |= set(access.athletes or ())
    return sorted(visible(names, access), key=str.lower)


def start_for_test(cl: ControlClient, station: str, access: Access, what: str) -> None:
    """A short form to open a session for a test when none is running (its label: ``what``)."""
    st.info(f"The {what} is recorded as part of a session: start one for the athlete.",
            icon=":material/info:")
    names = athlete_choices(access, data.store_url())
    if not names:
        st.caption("No athlete yet: add one on the **Session control** page.")
        return
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    athlete = left.selectbox("Athlete", names, key="test_athlete")
    if right.button(f"Start a {what} session", key="test_start", icon=":material/play_arrow:"):
        sent = send(cl, station, "start", athlete=athlete, label=what)
        if not sent.ok:
            st.error(sent.text, icon=":material/error:")
        else:
            st.rerun()
