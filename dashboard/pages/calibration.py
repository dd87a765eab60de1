"""Calibration: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

import streamlit as st

st.title("Calibration")
st.info(
    "**Arrives with the pipeline service.** This page needs live data from the pipeline, "
    "which is not connected to the dashboard yet. Past sessions are on the **Review** page.",
    icon=":material/construction:",
)
st.markdown(
    "**What it will do:** Guided standing calibration and maximal-contraction (MVC) trials "
    "per muscle, with countdowns and a check that each effort was good; stored per "
    "athlete and reused."
)
