"""The HipStride dashboard: a Streamlit multipage app (``hipstride dashboard`` runs it).

``streamlit run dashboard/app.py`` with ``HIPSTRIDE_STORE`` set to a store URL. The pages are
scripts in ``views/`` — not ``pages/``: Streamlit serves a ``pages/`` folder next to the entry
script as stand-alone pages, so a deep link would bypass this file and its login. This file
sets the page up, asks for a login when one is configured (:mod:`hipstride.dashboard.auth`)
and lays out the navigation. Nothing — not even the page list — is shown before the login.
"""

from pathlib import Path

import streamlit as st

from hipstride.dashboard import auth

PAGES = Path(__file__).parent / "views"

st.set_page_config(page_title="HipStride", page_icon=":material/directions_run:",
                   layout="wide")
access = auth.current()
if access is None:  # a login is configured and nobody has logged in yet
    # every page's address leads to the login (a deep link works once logged in)
    st.navigation([st.Page(auth.login_page, title="Log in", icon=":material/lock:",
                           default=True)]
                  + [st.Page(auth.login_page, title="Log in", url_path=page.stem)
                     for page in sorted(PAGES.glob("[a-z]*.py"))],
                  position="hidden").run()
    st.stop()
auth.logout_button(access)

navigation = st.navigation({
    "Treadmill": [
        st.Page(PAGES / "live.py", title="Live", icon=":material/monitor_heart:", default=True),
        st.Page(PAGES / "coach.py", title="Coach view", icon=":material/groups:"),
        st.Page(PAGES / "session.py", title="Session control", icon=":material/play_circle:"),
    ],
    "Tests": [
        st.Page(PAGES / "calibration.py", title="Calibration", icon=":material/tune:"),
        st.Page(PAGES / "prone_test.py", title="Prone hip extension test",
                icon=":material/airline_seat_flat:"),
    ],
    "History": [
        st.Page(PAGES / "review.py", title="Review", icon=":material/insights:"),
    ],
})
navigation.run()
