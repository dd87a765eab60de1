"""Session control: choose or create an athlete, start, mark and stop a station's session.

Everything goes through the control topic (docs/protocol.md, "Control"): the treadmill's Pi
needs no keyboard. The page shows the pipeline's answer to every command, refusals included,
in plain words. Runs inside ``app.py`` or on its own (``AppTest``).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from hipstride import names
from hipstride.dashboard import auth, data, stations
from hipstride.dashboard.safe import md

NEW_ATHLETE = "New athlete…"
NAME_LIMIT = names.ATHLETE.max_len


def check_name(name: str) -> str | None:
    """Why a new athlete name cannot be used, or None."""
    if not name.strip():
        return "Type the athlete's name."
    problem = names.problem(names.ATHLETE, name)
    return md(f"The athlete name {problem}: {names.ATHLETE.text}.") if problem else None


def show_outcome() -> None:
    """The last command's outcome, kept across the rerun that redraws the state."""
    outcome = st.session_state.pop("session_outcome", None)
    if outcome is None:
        return
    ok, text = outcome
    (st.success if ok else st.error)(text, icon=":material/check_circle:" if ok
                                     else ":material/error:")


def start_form(cl: Any, station: str, access: auth.Access, url: str | None) -> None:
    names = stations.athlete_choices(access, url)
    # only someone who sees everyone may add an athlete; coaches get theirs assigned
    # (`hipstride admin add-coach … --athlete`), so they can review them afterwards
    options = names + ([NEW_ATHLETE] if access.everyone else [])
    if not options:
        st.info("No athlete is assigned to you yet: ask the administrator.")
        return
    athlete = st.selectbox("Athlete", options, key="start_athlete",
                           index=None if len(options) > 1 else 0,
                           placeholder="Choose an athlete")
    new_name = ""
    if athlete == NEW_ATHLETE:
        new_name = st.text_input("New athlete's name", key="new_athlete", max_chars=NAME_LIMIT)
    label = st.text_input("Label (optional)", key="start_label", max_chars=200,
                          placeholder="e.g. easy 5k, intervals")
    notes = st.text_area("Notes (optional)", key="start_notes", max_chars=2000)
    if not st.button("Start session", type="primary", icon=":material/play_arrow:",
                     key="start"):
        return
    who = new_name.strip() if athlete == NEW_ATHLETE else athlete
    problem = "Choose an athlete." if not who else (
        check_name(who) if athlete == NEW_ATHLETE else None)
    if problem:
        st.session_state["session_outcome"] = (False, problem)
    else:
        sent = stations.send(cl, station, "start", athlete=who, label=label.strip() or None,
                             notes=notes.strip() or None)
        text = sent.text or f"Session **{md(sent.reply['session'])}** of **{md(who)}** started."
        st.session_state["session_outcome"] = (sent.ok, text)
    st.rerun()


def running_panel(cl: Any, station: str, state: dict[str, Any]) -> None:
    with st.form("mark_form", clear_on_submit=True):
        st.markdown("**Mark a moment**")
        label = st.text_input("What happened", key="mark_label", max_chars=200,
                              placeholder="e.g. felt the hamstring, speed up")
        note = st.text_input("Note (optional)", key="mark_note", max_chars=2000)
        marked = st.form_submit_button("Mark", icon=":material/bookmark_add:")
    if marked:
        if not label.strip():
            st.session_state["session_outcome"] = (False, "Say what happened to mark it.")
        else:
            sent = stations.send(cl, station, "mark", label=label.strip(),
                                 note=note.strip() or None)
            st.session_state["session_outcome"] = (
                sent.ok, sent.text or f"Marked “{md(label.strip())}” "
                                      f"({md(sent.reply['marks'])} marks so far).")
        st.rerun()
    if st.button("Stop session", type="primary", icon=":material/stop:", key="stop"):
        sent = stations.send(cl, station, "stop", session=state.get("session"))
        st.session_state["session_outcome"] = (
            sent.ok, sent.text or f"Session **{md(state.get('session'))}** stopped. It is on "
                                  "the **Review** page.")
        st.rerun()


def main() -> None:
    access = auth.require()
    st.title("Session control", anchor=False)
    picked = stations.connect_and_pick(access)
    if picked is None:
        return
    cl, station = picked
    show_outcome()
    state = cl.session_state(station)
    st.markdown(stations.state_line(state, access))
    running = bool(state and state.get("state") == "running")
    if running and not auth.can_see(access, state.get("athlete")):
        st.info("Only a coach of that athlete (or an admin) can mark or stop it.")
        return
    if running:
        running_panel(cl, station, state)
    else:
        start_form(cl, station, access, data.store_url())


main()
