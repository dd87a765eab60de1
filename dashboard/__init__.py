"""The HipStride dashboard: a Streamlit multipage app over the store (``hipstride dashboard``).

``app.py`` is the entry point, ``views/`` holds one script per page, ``data.py`` reads the
store, ``charts.py`` draws. Importing this package loads nothing heavy: Streamlit is imported
by the app and the data layer only, so ``hipstride --help`` works without it.
"""
