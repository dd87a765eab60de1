"""Live: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

import streamlit as st

st.title("Live")
st.info(
    "**Arrives with the pipeline service.** This page needs live data from the pipeline, "
    "which is not connected to the dashboard yet. Past sessions are on the **Review** page.",
    icon=":material/construction:",
)
st.markdown(
    "**What it will do:** A station's live feedback, readable from the treadmill: per side "
    "the glute:hamstring ratio, peak hip extension, pelvic tilt and cadence, the active "
    "cue in plain words, rolling charts and signal quality per channel."
)
