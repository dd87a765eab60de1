"""Runs a guided flow (:mod:`.guide`) on a page: countdowns, prompts, the calibrate commands
at the right moments, and the pipeline's result after each step with "repeat" or "next".

While a step is active the view is a fragment that reruns itself every
:data:`TICK_S`; otherwise it is drawn once. State lives in ``st.session_state[key]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from hipstride.control import ControlClient

from . import guide, stations
from .safe import md

TICK_S = 0.5
ResultView = Callable[[guide.Step, Mapping[str, Any]], None]


def _send_phase(cl: ControlClient, station: str, step: guide.Step, action: str
                ) -> stations.Sent:
    return stations.send(cl, station, "calibrate", action=action, **step.command_fields())


def _advance_clock(cl: ControlClient, station: str, session: str | None,
                   flow: guide.Flow) -> guide.Flow:
    """Apply what time and the pipeline say: send start/stop, pick up a result."""
    now = time.monotonic()
    flow, action = guide.tick(flow, now)
    step = flow.step
    if action == "start" and step is not None:
        sent = _send_phase(cl, station, step, "start")
        flow = guide.started(flow, time.monotonic()) if sent.ok else guide.failed(
            flow, sent.text, now)
    elif action == "stop" and step is not None:
        after = cl.mark()
        sent = _send_phase(cl, station, step, "stop")
        flow = guide.stopped(flow, time.monotonic(), after) if sent.ok else guide.failed(
            flow, sent.text, now)
    if flow.stage == guide.WAITING and step is not None:
        got = cl.wait_for("results", station, flow.after,
                          lambda body: step.accepts(body, session))
        if got is not None:
            flow = guide.got_result(flow, got.body, time.monotonic())
    return flow


def _countdown(flow: guide.Flow) -> None:
    step, elapsed = flow.step, time.monotonic() - flow.since_s
    if step is None:
        return
    if flow.stage == guide.READY:
        left = max(0.0, step.ready_s - elapsed)
        st.markdown(f"### Get ready… {left:.0f}")
        st.caption(md(step.how))
    elif flow.stage == guide.RECORDING:
        _, cue, left = guide.cue_at(step, elapsed)
        st.markdown(f"### {md(cue.text) if cue else 'Done'} … {left:.0f} s")
        st.progress(min(1.0, elapsed / step.duration_s) if step.duration_s else 1.0,
                    text=f"Recording {md(step.title.lower())}")
    elif flow.stage == guide.WAITING:
        st.markdown("### Relax. Waiting for the pipeline's result…")


def _controls(flow: guide.Flow, key: str, show_result: ResultView) -> guide.Flow | None:
    """Buttons for the current stage; returns a new flow when one was pressed."""
    step = flow.step
    now = time.monotonic()
    if flow.stage in (guide.READY, guide.RECORDING, guide.WAITING):
        if st.button("Cancel", key=f"{key}_cancel", icon=":material/close:"):
            return guide.cancel(flow)
        return None
    if flow.stage == guide.RESULT and step is not None and flow.result is not None:
        show_result(step, flow.result)
    if flow.stage in (guide.RESULT, guide.FAILED) and step is not None:
        if flow.stage == guide.FAILED:
            st.error(flow.message, icon=":material/error:")
        ok = flow.stage == guide.RESULT and bool((flow.result or {}).get("ok"))
        left, right = st.columns(2)
        if left.button("Repeat this step", key=f"{key}_repeat", icon=":material/replay:",
                       type="secondary" if ok else "primary"):
            return guide.begin(flow, now)
        nxt = flow.steps[flow.index + 1].title if flow.index + 1 < len(flow.steps) else None
        if right.button(f"Next: {md(nxt)}" if nxt else "Finish", key=f"{key}_next",
                        icon=":material/skip_next:" if nxt else ":material/done_all:",
                        type="primary" if ok else "secondary"):
            return guide.advance(flow, now)
    return None


def _body(cl: ControlClient, station: str, session: str | None, key: str,
          show_result: ResultView) -> None:
    flow: guide.Flow = st.session_state[key]
    known = cl.session_state(station) or {}
    if flow.active and (known.get("state") != "running" or known.get("session") != session):
        # the session ended (or another one, maybe another athlete's, began): no command of
        # this flow may reach it; the whole page reruns and checks the viewer's rights again
        if flow.stage == guide.RECORDING and flow.step is not None:
            _send_phase(cl, station, flow.step, "stop")
        st.session_state[key] = guide.cancel(flow)
        st.rerun()
    was_active = flow.active
    if flow.active:
        flow = _advance_clock(cl, station, session, flow)
        st.session_state[key] = flow
    step = flow.step
    if step is not None:
        st.markdown(f"**Step {flow.index + 1} of {len(flow.steps)}: {md(step.title)}**")
    _countdown(flow)
    pressed = _controls(flow, key, show_result)
    if pressed is not None:
        if flow.stage == guide.RECORDING and pressed.stage == guide.IDLE and step:
            _send_phase(cl, station, step, "stop")  # do not leave the phase open
        st.session_state[key] = pressed
        st.rerun()  # the whole page: the fragment timer starts or stops with the flow
    if was_active != st.session_state[key].active:
        st.rerun()


def run_flow(cl: ControlClient, station: str, session: str | None, key: str,
             show_result: ResultView) -> None:
    """Draw the flow in ``st.session_state[key]`` (a :class:`guide.Flow`), ticking while
    it is active."""
    flow = st.session_state.get(key)
    if flow is None or flow.stage == guide.IDLE:
        return
    if flow.stage == guide.DONE:
        st.success("All steps done.", icon=":material/done_all:")
        return
    if flow.active:
        st.fragment(run_every=TICK_S)(_body)(cl, station, session, key, show_result)
    else:
        _body(cl, station, session, key, show_result)


def start(key: str, steps: list[guide.Step]) -> None:
    """Begin a new flow of ``steps`` (the page reruns to show it)."""
    st.session_state[key] = guide.begin(guide.new_flow(steps), time.monotonic())
    st.rerun()


def result_problems(result: Mapping[str, Any]) -> None:
    """A result's verdict: ok, or its problems in plain words."""
    problems = guide.problems(result)
    if result.get("ok") and not problems:
        st.success("Good effort: the pipeline accepted it.", icon=":material/check_circle:")
    elif result.get("ok"):
        st.warning("Accepted, with remarks:\n\n" + "\n".join(f"- {md(p)}" for p in problems))
    else:
        st.error("**Not usable — please repeat.**\n\n" + "\n".join(f"- {md(p)}"
                                                                  for p in problems),
                 icon=":material/error:")
