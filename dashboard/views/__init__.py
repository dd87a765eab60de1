"""The dashboard's pages: one Streamlit script each, put together by ``app.py``."""
