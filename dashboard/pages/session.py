"""Session control: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

import streamlit as st

st.title("Session control")
st.info(
    "**Arrives with the pipeline service.** This page needs live data from the pipeline, "
    "which is not connected to the dashboard yet. Past sessions are on the **Review** page.",
    icon=":material/construction:",
)
st.markdown(
    "**What it will do:** Choose or create an athlete; start, stop and mark a session; add "
    "notes. The treadmill's Pi needs no keyboard."
)
