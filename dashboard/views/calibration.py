"""Calibration: guided standing calibration and maximal voluntary contractions (MVC).

Each step counts down, sends ``calibrate start``/``stop`` to the station's running session,
and shows the pipeline's verdict (``…/results``) with "repeat" when the effort was not good.
The pipeline stores the calibration per athlete and reuses it; the athlete's last one is
shown below. Runs inside ``app.py`` or on its own (``AppTest``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from hipstride.dashboard import auth, data, guide, guided, results, stations
from hipstride.dashboard.safe import md

FLOW_KEY = "calibration_flow"
#: The muscles of DOMAIN.md, when the station has not described its EMG channels.
DEFAULT_MUSCLES = ("glute_max_l", "glute_max_r", "biceps_femoris_l", "biceps_femoris_r")


def show_result(step: guide.Step, result: Mapping[str, Any]) -> None:
    guided.result_problems(result)
    table = (results.mvc_result_table(result) if step.phase == "mvc"
             else results.standing_result_table(result))
    if not table.empty:
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "Peak (mV)": st.column_config.NumberColumn(format="%.3f"),
            "Moved (°)": st.column_config.NumberColumn(format="%.1f")})


def last_calibration(athlete: str) -> None:
    st.subheader(f"Last calibration of {md(athlete)}", anchor=False)
    try:
        cal = data.load_calibration(data.store_url(), athlete)
    except data.DataProblem as problem:
        st.warning(f"**{problem.title}** {problem.hint}")
        return
    facts = results.calibration_facts(cal)
    if not facts:
        st.info(f"{md(athlete)} has no stored calibration yet. Without MVC trials the "
                "glute:hamstring ratios are relative to each session only.")
        return
    for what, when, details in facts:
        st.markdown(f"- **{what}** — {when}: {md(details)}")
    table = results.mvc_reference_table(cal)
    if not table.empty:
        st.dataframe(table, hide_index=True, column_config={
            "MVC reference (mV)": st.column_config.NumberColumn(format="%.3f")})


def choose_flow(muscles: tuple[str, ...]) -> None:
    standing, mvc = st.tabs(["Standing", "Maximal contractions (MVC)"])
    with standing:
        st.markdown("The athlete stands still for 10 s: this sets zero for every IMU and the "
                    "EMG rest level. Do it with the sensors on, before running.")
        if st.button("Begin standing calibration", type="primary", key="begin_standing",
                     icon=":material/accessibility_new:"):
            guided.start(FLOW_KEY, guide.standing_steps())
    with mvc:
        st.markdown("For each muscle, a maximal isometric contraction against resistance "
                    "(3 × 5 s recommended). The highest 500 ms of each muscle becomes its "
                    "MVC reference.")
        chosen = st.multiselect("Muscles", muscles, default=list(muscles), key="mvc_muscles",
                                format_func=guide.muscle_words)
        trials = st.number_input("Trials per muscle", 1, 5, 3, key="mvc_trials")
        if st.button("Begin MVC trials", type="primary", key="begin_mvc",
                     icon=":material/fitness_center:", disabled=not chosen):
            guided.start(FLOW_KEY, guide.mvc_steps(chosen, trials=int(trials)))


def main() -> None:
    access = auth.require()
    st.title("Calibration", anchor=False)
    picked = stations.connect_and_pick(access)
    if picked is None:
        return
    cl, station = picked
    state = cl.session_state(station) or {}
    st.markdown(stations.state_line(state, access))
    if state.get("state") != "running":
        stations.start_for_test(cl, station, access, "calibration")
        return
    athlete = state.get("athlete")
    if not auth.can_see(access, athlete):
        st.info("Only a coach of that athlete (or an admin) can calibrate them.")
        return
    flow = st.session_state.get(FLOW_KEY)
    if flow is None or flow.stage in (guide.IDLE, guide.DONE):
        if flow is not None and flow.stage == guide.DONE:
            st.success("Calibration steps done. The pipeline stores them for "
                       f"{md(athlete)} and uses them from now on.", icon=":material/done_all:")
        choose_flow(cl.emg_channels(station) or DEFAULT_MUSCLES)
    else:
        guided.run_flow(cl, station, state.get("session"), FLOW_KEY, show_result)
    last_calibration(athlete)


main()
