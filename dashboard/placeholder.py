"""The honest placeholder for pages that need the live pipeline: what they will do, no data."""

from __future__ import annotations

import streamlit as st


def placeholder_page(title: str, what_it_will_do: str) -> None:
    st.title(title)
    st.info(
        "**Arrives with the pipeline service.** This page needs live data from the pipeline, "
        "which is not connected to the dashboard yet. Past sessions are on the **Review** page.",
        icon=":material/construction:",
    )
    st.markdown(f"**What it will do:** {what_it_will_do}")
