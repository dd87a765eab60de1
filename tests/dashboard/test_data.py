"""The dashboard's data layer against a real SQLite store filled through the Store API."""

from __future__ import annotations

import csv
import io
import math

import pytest

from hipstride.dashboard import data
from hipstride.pipeline.engine.schema import CUES, STRIDE_COLUMNS


def test_sessions_athletes_and_labels(filled_store) -> None:
    sessions = data.load_sessions(filled_store.url)
    assert {s.session for s in sessions} == {"anna-1", "anna-2", "ben-1"}
    assert data.athletes(sessions) == ["anna", "ben"]
    anna = data.sessions_for(sessions, "anna")
    assert [s.session for s in anna] == ["anna-2", "anna-1"]  # newest first
    assert len(data.sessions_for(sessions, data.ALL_ATHLETES)) == 3
    label = data.session_label(anna[0])
    assert "treadmill-1" in label and "anna" in label and "1 min 00 s" in label
    assert "open" in data.session_label(sessions[-1])  # ben-1 has no end yet


def test_strides_round_trip_and_csv_export(filled_store) -> None:
    rows = data.load_strides(filled_store.url, "treadmill-1", "anna-1")
    assert len(rows) == len(filled_store.rows["anna-1"]) > 60
    table = data.strides_table(rows)
    assert tuple(table.columns) == STRIDE_COLUMNS
    text = data.strides_csv(rows).decode()
    reader = csv.reader(io.StringIO(text))
    assert tuple(next(reader)) == STRIDE_COLUMNS
    body = list(reader)
    assert len(body) == len(rows)
    first = dict(zip(STRIDE_COLUMNS, body[0], strict=True))
    engine_first = min(filled_store.rows["anna-1"], key=lambda r: r["stride_start_s"])
    assert first["side"] == engine_first["side"]
    assert float(first["glute_ham_ratio"]) == pytest.approx(engine_first["glute_ham_ratio"],
                                                            abs=1e-4)
    assert "nan" not in text.lower()


def test_summary_headline_and_findings_match_the_profile(filled_store) -> None:
    healthy = data.load_strides(filled_store.url, "treadmill-1", "anna-1")
    weak = data.load_strides(filled_store.url, "treadmill-1", "anna-2")
    assert data.normalization(healthy) == "mvc"
    heads = {h.metric: h for h in data.headline(data.summary(healthy))}
    assert list(heads) == list(data.HEADLINE_METRICS)
    assert set(heads["glute_ham_ratio"].sides) == {"l", "r"}
    assert 140 < heads["cadence_spm"].sides["l"] < 200
    assert heads["glute_ham_ratio"].text("l") not in ("", "—")
    ratio_healthy = heads["glute_ham_ratio"].sides["l"]
    ratio_weak = {h.metric: h for h in data.headline(data.summary(weak))}[
        "glute_ham_ratio"].sides["l"]
    assert ratio_weak < ratio_healthy  # the hamstring-dominant runner drives less from glutes
    words = data.findings(weak, data.load_cues(filled_store.url, "treadmill-1", "anna-2"))
    assert any("hamstring" in line for line in words)
    assert all("Traceback" not in line for line in words)


def test_per_stride_and_cue_frames(filled_store) -> None:
    rows = data.load_strides(filled_store.url, "treadmill-1", "anna-2")
    frame = data.per_stride_frame(rows, "glute_ham_ratio")
    assert set(frame["side"]) == {"Left", "Right"}
    assert frame["trend"].notna().sum() > 0.8 * len(frame)
    assert data.time_scale(data.session_end_s(rows)) == (1.0, "Session time (s)")
    cues = data.load_cues(filled_store.url, "treadmill-1", "anna-2")
    assert cues, "the hamstring-dominant run raises cues"
    periods = data.cue_periods_frame(cues, data.session_end_s(rows))
    assert len(periods) and (periods["end"] >= periods["start"]).all()
    assert all(any(c.startswith(words) for words in CUES.values()) for c in periods["cue"])


def test_compare_and_progress(filled_store) -> None:
    a = data.summary(data.load_strides(filled_store.url, "treadmill-1", "anna-2"))
    b = data.summary(data.load_strides(filled_store.url, "treadmill-1", "anna-1"))
    table = data.compare_table(a, b)
    ratio = table[(table["key"] == "glute_ham_ratio") & (table["side"] == "Left")].iloc[0]
    assert ratio["change"] == pytest.approx(ratio["a"] - ratio["b"])
    assert ratio["change"] < 0
    sessions = [filled_store.sessions[s] for s in ("anna-1", "anna-2")]
    progress = data.progress_frame(
        [(m, data.load_strides(filled_store.url, m.station, m.session)) for m in sessions])
    cadence = progress[(progress["metric"] == "cadence_spm") & (progress["side"] == "Left")]
    assert len(cadence) == 2 and list(cadence["week"]) == ["2026-W02", "2026-W03"]
    assert (progress["strides"] > 0).all()


def test_empty_session_and_pure_helpers_on_no_rows(filled_store) -> None:
    rows = data.load_strides(filled_store.url, "treadmill-2", "ben-1")
    assert rows == []
    assert data.strides_csv(rows).decode().strip() == ",".join(STRIDE_COLUMNS)
    assert data.per_stride_frame(rows, "glute_ham_ratio").empty
    assert math.isnan(data.session_end_s(rows))
    assert data.findings(rows, [])[0].startswith("No valid running strides")
    assert all(h.text("l") == "—" for h in data.headline(data.summary(rows)))
    assert data.progress_frame([(filled_store.sessions["ben-1"], rows)]).empty


def test_problems_are_plain_words(tmp_path) -> None:
    with pytest.raises(data.DataProblem, match="No store is configured"):
        data.load_sessions(None)
    with pytest.raises(data.DataProblem, match="not valid"):
        data.load_sessions("postgres://x/y")
    with pytest.raises(data.DataProblem, match="There is no store at") as missing:
        data.load_sessions(f"sqlite:///{tmp_path}/nothing.db")
    assert not (tmp_path / "nothing.db").exists()  # the dashboard never creates a store
    assert "hipstride demo" in missing.value.hint


def test_unreachable_influx_is_a_retryable_problem() -> None:
    from tests.support.mosquitto import closed_port

    with closed_port() as port, pytest.raises(data.DataProblem) as problem:
        data.load_sessions(f"influx://reader:secret@127.0.0.1:{port}/hipstride")
    assert problem.value.retry and "cannot be reached" in problem.value.title
    assert "secret" not in str(problem.value)
