"""The Review page in Streamlit's AppTest: numbers for a filled store, plain messages (never a
traceback) for a missing, empty or unreachable one."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from hipstride.dashboard import data
from tests.support.mosquitto import closed_port

PAGES = Path(data.__file__).parent / "views"
REVIEW = PAGES / "review.py"
TIMEOUT_S = 30


def review(monkeypatch: pytest.MonkeyPatch, url: str | None) -> AppTest:
    if url is None:
        monkeypatch.delenv(data.STORE_ENV, raising=False)
    else:
        monkeypatch.setenv(data.STORE_ENV, url)
    at = AppTest.from_file(str(REVIEW), default_timeout=TIMEOUT_S)
    return at.run()


def _text(at: AppTest) -> str:
    parts = [e.value for e in (*at.error, *at.info, *at.warning, *at.success)]
    return "\n".join(str(p) for p in parts)


def test_filled_store_shows_the_session_summary(monkeypatch, filled_store) -> None:
    at = review(monkeypatch, filled_store.url)
    assert not at.exception
    assert not at.error
    assert at.selectbox(key="athlete").value == data.ALL_ATHLETES
    # newest first: the empty one
    assert at.selectbox(key="session").value == ("treadmill-2", "ben-1")
    assert "no strides" in _text(at)

    at.selectbox(key="athlete").set_value("anna").run()
    assert at.selectbox(key="session").value == ("treadmill-1", "anna-2")
    assert not at.exception
    # per side and headline metric: the summary, then the comparison with deltas
    assert len(at.metric) == 2 * 2 * len(data.HEADLINE_METRICS)
    summary = at.metric[:2 * len(data.HEADLINE_METRICS)]
    assert [m.label for m in summary[:2]] == ["Left ●", "Right ▲"]
    assert all(m.value not in ("", "—") and not m.delta for m in summary), summary
    markdown = "\n".join(m.value for m in at.markdown)
    assert "Glute:hamstring ratio" in markdown and "Drive from the glutes" in markdown
    assert [t.label for t in at.tabs] == ["Per stride", "Gait cycle", "Cues", "Strides table",
                                          "Compare", "Progress", "Report"]
    # compare picks the athlete's previous session, progress has both
    assert at.selectbox(key="compare_with").value == ("treadmill-1", "anna-1")
    assert any("−" in m.delta or "-" in m.delta for m in at.metric if m.delta)

    at.selectbox(key="session").set_value(("treadmill-1", "anna-1")).run()
    assert not at.exception
    assert "There is no other" not in _text(at)


def test_no_store_configured(monkeypatch) -> None:
    at = review(monkeypatch, None)
    assert not at.exception
    assert "No store is configured" in _text(at)


def test_empty_store_says_no_sessions_yet(monkeypatch, empty_store) -> None:
    at = review(monkeypatch, empty_store)
    assert not at.exception
    assert "No sessions yet" in _text(at)


def test_missing_sqlite_file(monkeypatch, tmp_path) -> None:
    at = review(monkeypatch, f"sqlite:///{tmp_path}/typo.db")
    assert not at.exception
    assert "There is no store at" in _text(at)
    assert not (tmp_path / "typo.db").exists()


def test_unreachable_influxdb_offers_a_retry(monkeypatch) -> None:
    with closed_port() as port:
        at = review(monkeypatch, f"influx://reader:secret@127.0.0.1:{port}/hipstride")
        assert not at.exception
        assert "cannot be reached" in _text(at)
        assert "secret" not in _text(at)
        assert [b.label for b in at.button] == ["Try again"]
        at.button[0].click().run()
        assert not at.exception and "cannot be reached" in _text(at)


@pytest.mark.parametrize("page", ["session", "calibration", "prone_test"])
def test_station_pages_without_a_broker_say_how_to_configure_one(monkeypatch, page: str
                                                                 ) -> None:
    monkeypatch.delenv("HIPSTRIDE_BROKER", raising=False)
    at = AppTest.from_file(str(PAGES / f"{page}.py"), default_timeout=TIMEOUT_S).run()
    assert not at.exception
    assert "No broker is configured" in _text(at) and "--broker" in _text(at)
    assert not at.metric  # no invented numbers
