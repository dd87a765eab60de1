"""Prone hip extension test: guided repetitions per side, then onsets and firing order per
repetition, glute − hamstring lags, lumbar/pelvic compensation and coaching advice.

The advice follows DOMAIN.md and the engine's rules (hip-flexor and quadriceps flexibility
when the pelvis moves; glute bridges, bird dogs and direct glute work when the glutes are
late) and is shown as advice, never as a diagnosis. Earlier tests come from the store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from hipstride.dashboard import auth, data, guide, guided, results, stations
from hipstride.dashboard.safe import md

FLOW_KEY = "prone_flow"
NUMBER_FORMAT = {c: st.column_config.NumberColumn(c, format="%.0f") for c in (
    "Glute max onset (ms)", "Hamstring onset (ms)", "Lower back onset (ms)",
    "Glute − hamstring lag (ms)")} | {c: st.column_config.NumberColumn(c, format="%.1f")
                                     for c in ("Pelvic tilt (°)", "Pelvic rotation (°)",
                                               "Lift (°)")}
EARLIER_SESSIONS = 20  # how many of the athlete's newest sessions to look through


def show_phe(reps: Sequence[Mapping[str, Any]], given_advice: Any = None) -> None:
    """Repetitions, per-side averages and advice."""
    if not reps:
        st.info("No lifts were found. Repeat the test: knee straight, lift the leg about "
                "10–15 cm, hold 2 s.")
        return
    st.markdown("**Every repetition** — onsets in ms relative to the start of the leg's "
                "movement (negative: before it)")
    st.dataframe(results.repetition_table(reps), hide_index=True, width="stretch",
                 column_config=NUMBER_FORMAT)
    summaries = results.phe_side_summaries(reps)
    st.markdown("**Per side (averages)**")
    st.dataframe(results.side_table(summaries), hide_index=True, width="stretch",
                 column_config=NUMBER_FORMAT)
    st.markdown("**Coaching advice** (not a diagnosis)")
    st.markdown("\n".join(f"- {md(a)}" for a in results.phe_advice_for(summaries,
                                                                        given_advice)))
    st.caption(" ".join(results.PHE_NOTES))


def show_result(step: guide.Step, result: Mapping[str, Any]) -> None:
    guided.result_problems(result)
    body = result.get("result") or {}
    reps = [r for r in body.get("repetitions") or () if isinstance(r, Mapping)]
    if step.side:
        reps = [r for r in reps if r.get("side") in (None, step.side)]
    advice = body.get("advice")
    if isinstance(advice, Mapping) and step.side:
        advice = {step.side: advice.get(step.side) or ()}
    show_phe(reps, advice)


def setup() -> None:
    st.markdown("The athlete lies face down. For each side: lift the straight leg about "
                "10–15 cm, hold 2 s, lower, rest — the page counts it out. The thigh IMU "
                "finds when the leg starts to move; the EMG says which muscle switched on "
                "when.")
    left, mid, right = st.columns(3)
    reps = left.number_input("Repetitions per side", 3, 5, 3, key="prone_reps")
    order = mid.selectbox("Sides", ["Right, then left", "Left, then right", "Right only",
                                    "Left only"], key="prone_sides")
    sides = {"Right, then left": ("r", "l"), "Left, then right": ("l", "r"),
             "Right only": ("r",), "Left only": ("l",)}[order]
    right.write("")
    if right.button("Begin the test", type="primary", key="begin_prone",
                    icon=":material/airline_seat_flat:"):
        guided.start(FLOW_KEY, guide.prone_steps(sides=sides, reps=int(reps)))


def earlier_tests(access: auth.Access, athlete: str | None) -> None:
    st.subheader("Earlier tests", anchor=False)
    url = data.store_url()
    try:
        sessions = auth.visible(data.load_sessions(url), access)
    except data.DataProblem as problem:
        st.warning(f"**{problem.title}** {problem.hint}")
        return
    names = data.athletes(sessions)
    if not names:
        st.info("No sessions yet.")
        return
    chosen = st.selectbox("Athlete", names, key="prone_athlete",
                          index=names.index(athlete) if athlete in names else 0)
    mine = data.sessions_for(sessions, chosen)[:EARLIER_SESSIONS]
    try:
        found = [(s, data.load_phe(url, s.station, s.session)) for s in mine]
    except data.DataProblem as problem:
        st.warning(f"**{problem.title}** {problem.hint}")
        return
    found = [(s, reps) for s, reps in found if reps]
    if not found:
        st.info(f"No prone hip extension test of {md(chosen)} is stored yet.")
        return
    by_id = {(s.station, s.session): (s, reps) for s, reps in found}
    sid = st.selectbox("Test", list(by_id), key="prone_session",
                       format_func=lambda k: data.session_label(by_id[k][0], with_athlete=False))
    show_phe(by_id[sid][1])


def main() -> None:
    access = auth.require()
    st.title("Prone hip extension test", anchor=False)
    athlete = None
    picked = stations.connect_and_pick(access)
    if picked is not None:
        cl, station = picked
        state = cl.session_state(station) or {}
        st.markdown(stations.state_line(state, access))
        athlete = state.get("athlete")
        if state.get("state") != "running":
            stations.start_for_test(cl, station, access, "prone test")
        elif not auth.can_see(access, athlete):
            st.info("Only a coach of that athlete (or an admin) can run their test.")
            athlete = None
        else:
            flow = st.session_state.get(FLOW_KEY)
            if flow is None or flow.stage in (guide.IDLE, guide.DONE):
                setup()
            else:
                guided.run_flow(cl, station, state.get("session"), FLOW_KEY, show_result)
    earlier_tests(access, athlete)


main()
