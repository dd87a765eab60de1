"""The agent and the store confirmation (``…/stored``) against a real Mosquitto.

A stand-in for the pipeline's confirmation: a subscriber that receives the agent's frames
and publishes, as the pipeline does, a retained ``…/stored`` message every 0.5 s with the
runs of sequence numbers it "stored" — except a block of emg frames it pretends the broker
lost. The agent must keep exactly those, resend them (only the unconfirmed tail, at most once
per ``confirm_timeout_s``), and empty its spool once they are confirmed.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import topics
from hipstride.frames import decode_frame
from tests.conftest import USERS
from tests.edge.test_agent_broker import STREAMS, agent_command, agent_env
from tests.support.witness import Witness

LOST = range(10, 20)  # emg frames the stand-in never confirms at first


@pytest.fixture
def witness(mosquitto):
    w = Witness(mosquitto.port, "witness", USERS["witness"], "tm1")
    yield w
    w.close()


class FakeConfirmer:
    """Receives tm1's frames; confirms what it got, minus ``LOST`` until ``forgive()``."""

    def __init__(self, port: int) -> None:
        self.received: Counter = Counter()
        self.epoch: int | None = None
        self.lock = threading.Lock()
        self.hide_lost = True
        self.published = 0
        self._stop = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fake-pipeline",
                        clean_session=True)
        c.username_pw_set("witness", USERS["witness"])
        c.on_message = self._on_message
        c.on_connect = lambda cl, *_: cl.subscribe(topics.subscription(topics.FRAMES, "tm1"),
                                                   qos=1)
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        self.thread = threading.Thread(target=self._confirm_loop, daemon=True)
        self.thread.start()

    def _on_message(self, _c, _u, msg) -> None:
        f = decode_frame(msg.payload)
        with self.lock:
            self.epoch = f.epoch
            self.received[(f.stream, f.seq)] += 1

    def runs(self, stream: str) -> list[list[int]]:
        seqs = sorted(s for (st, s) in self.received if st == stream
                      and not (self.hide_lost and stream == "emg" and s in LOST))
        out: list[list[int]] = []
        for s in seqs:
            if out and s == out[-1][1] + 1:
                out[-1][1] = s
            else:
                out.append([s, s])
        return out

    def _confirm_loop(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                if self.epoch is None:
                    continue
                streams = {}
                for stream in STREAMS:
                    runs = self.runs(stream)
                    if runs:
                        streams[stream] = {"epoch": self.epoch, "seq": runs[0][1],
                                           "ranges": runs}
            body = {"version": 1, "station": "tm1", "time_ns": time.time_ns(),
                    "partition": "0/1", "streams": streams}
            self.client.publish(topics.stored("tm1"), json.dumps(body), qos=1, retain=True)
            self.published += 1

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.client.disconnect()
        self.client.loop_stop()


def test_unconfirmed_frames_are_kept_resent_boundedly_and_dropped_once_confirmed(
        mosquitto, witness, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("status_interval_s = 0.5\n[store]\nconfirm_timeout_s = 2\n")
    spool = tmp_path / "spool.sqlite"
    confirmer = FakeConfirmer(mosquitto.port)
    agent = subprocess.Popen(agent_command(mosquitto, spool, "--config", str(config),
                                           "--duration", "10", "--seed", "4"),
                             env=agent_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        # while the lost block is unconfirmed, the spool keeps exactly it (plus the newest
        # frames awaiting the next confirmation) and the agent resends it
        assert witness.wait_for(lambda w: any(
            s["state"] == "online" and s["store"]["resends"] >= 2 for s in w.status), 20), \
            [s.get("store") for s in witness.status][-3:]
        online = [s for s in witness.status if s["state"] == "online"]
        late = online[-1]
        assert late["store"]["state"] == "confirming"
        assert late["streams"]["emg"]["stored_seq"] == LOST[0] - 1
        assert late["streams"]["emg"]["unconfirmed_frames"] >= len(LOST)
        with sqlite3.connect(f"file:{spool}?mode=ro", uri=True) as db:
            kept = {seq for (seq,) in db.execute(
                "SELECT seq FROM frames WHERE stream = 'emg' AND seq < 100")}
        assert set(LOST) <= kept and kept - set(LOST) <= set(range(LOST[-1] + 1, 100))
        confirmer.hide_lost = False      # the "pipeline" has them now (the resend got there)
        _out, err = agent.communicate(timeout=60)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
        confirmer.close()
    assert agent.returncode == 0, err
    assert "resending" in err
    with sqlite3.connect(spool) as db:
        left = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
    assert left == 0, "the agent stopped before the store confirmed everything"
    final = [s for s in witness.status if s["state"] == "online"][-1]
    rounds = final["store"]["resends"]
    # every lost frame was sent again, at least once per resend round it was unconfirmed
    assert all(confirmer.received[("emg", s)] >= 2 for s in LOST)
    # bounded: one round per confirm_timeout_s (2 s) at most, in a 10 s run
    assert 2 <= rounds <= 10 / 2 + 1
    # and each round resends only the unconfirmed tail: the lost block and what the
    # confirmation had not reached yet (about 0.5-1 s of frames of the 6 streams, ~120/s)
    sent = sum(confirmer.received.values())
    distinct = sum(produced.values())
    assert len(confirmer.received) == distinct
    assert sent - distinct == final["store"]["resent_frames"]
    assert final["store"]["resent_frames"] <= rounds * (len(LOST) + 300)
    assert final["streams"]["emg"]["frames_resent"] >= len(LOST) * 2
