"""Prone hip extension test: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

import streamlit as st

st.title("Prone hip extension test")
st.info(
    "**Arrives with the pipeline service.** This page needs live data from the pipeline, "
    "which is not connected to the dashboard yet. Past sessions are on the **Review** page.",
    icon=":material/construction:",
)
st.markdown(
    "**What it will do:** Guided repetitions per side with countdowns, then the firing "
    "order and onsets of glutes, hamstrings and lower back, lumbar/pelvic compensation, "
    "and coaching advice (not a diagnosis)."
)
