"""Coach view: every live station at a glance, the ones needing attention first.

Silent or offline stations first, then stations with an alert cue or a sensor problem, then
cautions, then the rest; each card names why. Refreshes itself every second from the live feed.
"""

from __future__ import annotations

import contextlib
import time

import streamlit as st
from streamlit.errors import StreamlitAPIException

from hipstride.dashboard import auth, live_html
from hipstride.dashboard.feed import coach_order
from hipstride.dashboard.live_client import live_client_or_warning
from hipstride.dashboard.safe import md

EVERY_S = 1.0


@st.fragment(run_every=EVERY_S)
def stations() -> None:
    client = live_client_or_warning()
    if client is None:
        return
    now_ns = time.time_ns()
    views = [v for v in (client.feed.view(s, now_ns) for s in client.feed.stations(now_ns))
             if v is not None]
    if not views:
        st.info("**No station has sent anything in the last 10 minutes.** Stations appear here "
                "as soon as their agent and the pipeline are running.",
                icon=":material/hourglass_empty:")
        return
    ordered = coach_order(v for v in views if auth.can_see(ACCESS, v.athlete))
    hidden = len(views) - len(ordered)
    needing = sum(1 for v in ordered if v.attention >= 2)
    st.caption(f"{len(ordered)} station{'s' if len(ordered) != 1 else ''}"
               f"{f', {needing} needing attention' if needing else ''}"
               f"{f' ({hidden} with other athletes not shown)' if hidden else ''}")
    if not ordered:
        return
    columns = st.columns(2 if len(ordered) > 1 else 1, gap="medium")
    for i, view in enumerate(ordered):
        with columns[i % len(columns)]:
            st.html(live_html.station_card(view, now_ns))
            # Outside the app's navigation (AppTest, `streamlit run coach.py`) there is no link.
            with contextlib.suppress(StreamlitAPIException):
                st.page_link("views/live.py", label=f"Open {md(view.station)} live",
                             icon=":material/monitor_heart:",
                             query_params={"station": view.station})


ACCESS = auth.require()
st.title("Coach view")
stations()
