"""The HipStride dashboard: a Streamlit multipage app (``hipstride dashboard`` runs it).

``streamlit run dashboard/app.py`` with ``HIPSTRIDE_STORE`` set to a store URL. The pages are
scripts in ``pages/``; this file only sets the page up and lays out the navigation.
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="HipStride", page_icon=":material/directions_run:",
                   layout="wide")

navigation = st.navigation({
    "Treadmill": [
        st.Page(PAGES / "live.py", title="Live", icon=":material/monitor_heart:"),
        st.Page(PAGES / "coach.py", title="Coach view", icon=":material/groups:"),
        st.Page(PAGES / "session.py", title="Session control", icon=":material/play_circle:"),
    ],
    "Tests": [
        st.Page(PAGES / "calibration.py", title="Calibration", icon=":material/tune:"),
        st.Page(PAGES / "prone_test.py", title="Prone hip extension test",
                icon=":material/airline_seat_flat:"),
    ],
    "History": [
        # The default until the live page works (it arrives with the pipeline service).
        st.Page(PAGES / "review.py", title="Review", icon=":material/insights:", default=True),
    ],
})
navigation.run()
