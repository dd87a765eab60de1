"""The examples of docs/protocol.md and docs/formats.md against the code: an outsider builds a
client from those pages alone, so their bytes and JSON must be what the code reads and emits.

Every ```json block of both pages is checked (a block no check recognises fails), the hex
frame is decoded, the decoder's documented check order is tried, and the list of rejection
reasons is compared with ``REASONS``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hipstride.edge.agent import Agent, offline_status
from hipstride.edge.config import load_edge_config
from hipstride.edge.sources import make_source
from hipstride.frames import FrameError, decode_frame, encode_frame
from hipstride.pipeline.service.ingest import REASONS
from hipstride.pipeline.service.sessions import parse_command
from hipstride.recording import RecordingWriter, read_recording
from hipstride.streams import StreamDescription

DOCS = Path(__file__).resolve().parents[2] / "docs"
PROTOCOL = (DOCS / "protocol.md").read_text()
FORMATS = (DOCS / "formats.md").read_text()


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def keys(value: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every dict key (lists: their first element), placeholders left out."""
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("…", "..."):
                continue
            out.add(prefix + k)
            out |= keys(v, prefix + k + ".")
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        out |= keys(value[0], prefix)
    return out


@pytest.fixture(scope="module")
def agent_status(tmp_path_factory) -> dict[str, Any]:
    """What a real agent (simulator source, not connected) puts in its status."""
    spool = tmp_path_factory.mktemp("agent") / "spool.sqlite"
    config = load_edge_config(None, station="tm1", source="sim", spool=str(spool),
                              broker="mqtt://127.0.0.1:9")
    source = make_source("sim", config.source_section())
    agent = Agent(config, source)
    try:
        status = agent.status()
    finally:
        agent.spool.close()
        source.close()
    status["problems"] = [{"stream": "emg", "channel": "glute_max_l", "problem": "flat",
                           "message": "…"}]  # the fields of edge.health.Problem, below
    return status


# --- frames ----------------------------------------------------------------------------------
def test_the_documented_hex_frame_decodes_to_the_documented_values():
    (text,) = blocks(PROTOCOL, "hex")
    frame = decode_frame(bytes.fromhex("".join(text.split())), require_finite=True)
    assert (frame.stream, frame.epoch, frame.seq) == ("emg", 7, 3)
    assert frame.t0_ns == 1_795_080_720_000_000_000 and frame.rate_hz == 2000.0
    assert frame.samples.dtype == np.dtype("<i2")
    assert frame.samples.tolist() == [[1, -2], [3, -4]]
    assert "55 bytes" in PROTOCOL and len(bytes.fromhex("".join(text.split()))) == 55


def reason(data: bytes) -> str:
    with pytest.raises(FrameError) as err:
        decode_frame(data, require_finite=True)
    return err.value.reason


def test_the_decoder_checks_in_the_documented_order():
    good = encode_frame("emg", 0, 1_795_080_720_000_000_000, 2000.0,
                        np.zeros((2, 2), dtype="<f4"))
    assert reason(b"\x00\x01\x02\x03") == "inconsistent"  # magic before length
    assert reason(b"") == "inconsistent"
    assert reason(b"HS\x01\x03") == "truncated"
    assert reason(b"HS\x02" + good[3:]) == "unsupported_version"  # before the CRC
    assert reason(good[:-1]) == "truncated"
    assert reason(good + b"\x00") == "oversized"
    assert reason(good[:-4] + bytes(4)) == "checksum"
    nan = encode_frame("emg", 0, 1, 2000.0, np.full((2, 2), np.nan, dtype="<f4"))
    assert reason(nan) == "non_finite"
    text = PROTOCOL[PROTOCOL.index("**Validation**"):PROTOCOL.index("Example: one `emg` frame")]
    assert ('So `b"\\x00\\x01\\x02\\x03"` is `inconsistent`, `b"HS\\x01\\x03"` is '
            '`truncated`') in text


def test_every_rejection_reason_is_documented_and_no_other():
    section = PROTOCOL[PROTOCOL.index("Reasons (`REASONS`"):PROTOCOL.index("**Quarantine.**")]
    documented = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M)
    assert sorted(documented) == sorted(REASONS)
    assert len(documented) == len(set(documented))


# --- JSON examples ---------------------------------------------------------------------------
def parse(block: str) -> dict[str, Any]:
    text = block.strip()
    if text.startswith('"'):  # a fragment: fields added to a message shown above
        text = "{" + text + "}"
    return json.loads(text)


def check_description(body: dict[str, Any]) -> None:
    desc = StreamDescription.from_json(json.dumps(body))
    assert keys(json.loads(desc.to_json())) == keys(body)
    if desc.kind == "imu":
        assert desc.segment and np.allclose(np.asarray(desc.mounting), np.eye(3))
    else:
        assert body["segment"] is None and body["mounting"] is None


def check_status(body: dict[str, Any], status: dict[str, Any]) -> None:
    if body.get("state") == "offline":
        sent = json.loads(offline_status("tm1", "stopped"))
        assert set(body) == set(sent)
        assert "agent" not in sent and "streams" not in sent
        return
    emitted = keys(status)
    documented = keys(body)
    assert documented <= emitted, documented - emitted


def check_ingest(body: dict[str, Any]) -> None:
    assert set(body) == {"version", "station", "time_ns", "rejected", "last",
                         "sequence_missing", "time_jumps"}
    assert set(body["rejected"]) <= set(REASONS)
    last = body["last"]
    size = int(re.match(r"frame of (\d+) bytes", last["message"]).group(1))
    with pytest.raises(FrameError) as err:
        decode_frame(b"HS" + bytes(size - 2))
    assert (err.value.reason, str(err.value)) == (last["reason"], last["message"])


def classify(body: dict[str, Any], status: dict[str, Any]) -> str:
    if "command" in body:
        command = parse_command(json.dumps(body))
        assert command.command == body["command"]
        return "control"
    if "channels" in body and "kind" in body:
        check_description(body)
        return "description"
    if "agent" in body or body.get("state") == "offline" or "store" in body:
        check_status(body, status)
        return "status"
    if "rejected" in body and "sequence_missing" in body:
        check_ingest(body)
        return "ingest"
    if "partition" in body:
        assert set(body) == {"version", "station", "time_ns", "partition", "streams"}
        for stream in body["streams"].values():
            assert stream["seq"] == stream["ranges"][0][1]
        return "stored"
    if "series" in body or "active_cues" in body:
        return "live"
    if "phase" in body and "ok" in body and "result" in body:
        assert body["phase"] in ("standing", "mvc", "prone")
        return "result"
    if body.get("state") in ("running", "idle"):
        return "session"
    raise AssertionError(f"an example no check recognises: {sorted(body)}")


def test_every_json_example_of_the_protocol_matches_the_code(agent_status):
    kinds = [classify(parse(b), agent_status) for b in blocks(PROTOCOL, "json")]
    for kind in ("control", "description", "status", "ingest", "stored", "live", "result",
                 "session"):
        assert kind in kinds, kind
    assert kinds.count("description") == 2  # an IMU and an EMG stream
    assert kinds.count("status") == 3  # online, offline, the 1.1 fields


def test_the_recording_calibration_example_has_the_written_fields(tmp_path):
    (block,) = blocks(FORMATS, "json")
    text = re.sub(r"\[\[\.\.\.\]\]|\[\.\.\.\]|\{\.\.\.\}", "null", block)
    example = json.loads(text)
    path = tmp_path / "c.hsrec"
    writer = RecordingWriter(path)
    writer.write_calibration({"standing": None}, station="tm1", data_ns=1, made_ns=None,
                             settings={"standing_s": 5.0})
    writer.close()
    (written,) = read_recording(path).calibrations
    written.pop("index")  # the reader's own: frames before the record
    assert set(example) == set(written)
    assert example["version"] == written["version"]


def test_the_frame_tables_of_both_pages_agree():
    assert "[a-z][a-z0-9_]{0,63}" in FORMATS and "[a-z][a-z0-9_]{0,63}" in PROTOCOL
    assert "0.01 <= rate <= 100000" in FORMATS and "0.01 ≤ rate ≤ 100 000" in PROTOCOL
    assert "`v_segment = M · v_sensor`" in PROTOCOL and "`v_segment = M · v_sensor`" in FORMATS
