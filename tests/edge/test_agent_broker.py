"""The edge agent against a real Mosquitto: exact counts, outages, restarts, bad settings."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from hipstride.streams import EMG_CHANNELS_DEFAULT, IMU_SEGMENTS
from tests.conftest import USERS
from tests.support.mosquitto import MOSQUITTO, Mosquitto, free_port
from tests.support.witness import Witness

STREAMS = {"emg": 2000.0, **{f"imu_{s}": 200.0 for s in IMU_SEGMENTS}}


def agent_command(broker, spool, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1",
            "--broker", broker.url_for("edge-tm1"), "--source", "sim", "--spool", str(spool),
            *extra]


def agent_env(password: str = USERS["edge-tm1"]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIPSTRIDE_")}
    env["HIPSTRIDE_BROKER_PASSWORD"] = password
    return env


def start_agent(broker, spool, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(agent_command(broker, spool, *extra), env=agent_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def witness(mosquitto):
    w = Witness(mosquitto.port, "witness", USERS["witness"], "tm1")
    yield w
    w.close()


def assert_contiguous(witness: Witness, stream: str) -> list:
    frames = sorted({(s.epoch, s.seq): s for s in witness.frames[stream]}.values(),
                    key=lambda s: s.seq)
    assert len({s.epoch for s in frames}) == 1, f"{stream}: epoch changed"
    seqs = [s.seq for s in frames]
    missing = set(range(len(seqs))) - set(seqs)
    assert seqs == list(range(len(seqs))), f"{stream}: sequence gaps {missing}"
    return frames


def test_ten_seconds_of_the_full_sensor_set_arrive_exactly(mosquitto, witness, tmp_path):
    proc = subprocess.run(agent_command(mosquitto, tmp_path / "spool.sqlite", "--duration", "10",
                                        "--seed", "3"),
                          env=agent_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    expected = {name: int(10 * rate) for name, rate in STREAMS.items()}
    assert witness.wait_for(lambda w: all(w.samples(s) == n for s, n in expected.items()), 10), (
        {s: witness.samples(s) for s in STREAMS}, expected)
    for stream, rate in STREAMS.items():
        frames = assert_contiguous(witness, stream)
        assert {f.n_channels for f in frames} == {6}
        assert {f.rate_hz for f in frames} == {rate}
        for a, b in itertools.pairwise(frames):
            assert b.t0_ns - a.t0_ns == pytest.approx(a.n_samples * 1e9 / rate, abs=1e6)
        assert all(f.n_samples == round(rate * 0.05) for f in frames[:-1])


def test_broker_outage_and_agent_sigkill_lose_no_frame(mosquitto, witness, tmp_path):
    spool = tmp_path / "spool.sqlite"
    agent = start_agent(mosquitto, spool, "--duration", "40", "--seed", "5")
    try:
        assert witness.wait_for(lambda w: w.samples("emg") >= 4000, 15)
        mosquitto.stop()                 # broker down for 5 s: the agent spools
        time.sleep(5)
        mosquitto.start()
        assert witness.wait_for(lambda w: w.samples("emg") >= 24000, 30)
        agent.send_signal(signal.SIGKILL)  # no chance to flush or drain
        agent.wait(10)
    finally:
        agent.kill()
    restarted = start_agent(mosquitto, spool, "--duration", "4", "--seed", "6")
    _out, err = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, err
    with sqlite3.connect(spool) as db:
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
        left = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        unacked = db.execute("SELECT COUNT(*) FROM frames WHERE acked_s IS NULL").fetchone()[0]
    # no pipeline runs here, so no store ever confirmed a frame: the spool keeps every one
    # (the broker acknowledged them all), to be sent again until a store has them
    assert left == sum(produced.values()) and unacked == 0
    assert witness.wait_for(
        lambda w: all(len({(s.epoch, s.seq) for s in w.frames[n]}) == produced[n]
                      for n in STREAMS), 20)
    for stream in STREAMS:
        frames = assert_contiguous(witness, stream)
        assert len(frames) == produced[stream]
    assert witness.status and witness.status[-1]["state"] == "offline"
    final = [s for s in witness.status if s["state"] == "online"][-1]
    assert final["store"]["state"] == "no pipeline confirming"
    assert final["spool"]["frames"] == sum(final["streams"][n]["unconfirmed_frames"]
                                           for n in STREAMS) > 0


def test_without_store_confirmation_a_puback_empties_the_spool(mosquitto, witness, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[store]\nrequire_confirmation = false\n")
    spool = tmp_path / "spool.sqlite"
    proc = subprocess.run(agent_command(mosquitto, spool, "--config", str(config),
                                        "--duration", "3"),
                          env=agent_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(spool) as db:
        produced = dict(db.execute("SELECT stream, next_seq FROM streams"))
        left = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
    assert left == 0 and sum(produced.values()) > 0
    assert witness.wait_for(
        lambda w: all(len({(s.epoch, s.seq) for s in w.frames[n]}) == produced[n]
                      for n in STREAMS), 20)
    final = [s for s in witness.status if s["state"] == "online"][-1]
    assert final["store"] == {"confirmation": "off", "state": "off"}


def test_mosquitto_sub_sees_the_documented_topics_and_retained_messages(mosquitto, tmp_path):
    proc = subprocess.run(agent_command(mosquitto, tmp_path / "s.sqlite", "--duration", "3"),
                          env=agent_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    sub = subprocess.run(
        [MOSQUITTO.replace("sbin/mosquitto", "bin/mosquitto_sub"), "-h", "127.0.0.1", "-p",
         str(mosquitto.port), "-u", "witness", "-P", USERS["witness"], "-t", "hipstride/v1/#",
         "--retained-only", "-W", "3", "-v"],
        capture_output=True, text=True, timeout=20)
    retained = dict(line.split(" ", 1) for line in sub.stdout.splitlines() if line)
    assert set(retained) == {f"hipstride/v1/tm1/streams/{s}" for s in STREAMS} | {
        "hipstride/v1/tm1/status"}
    emg = json.loads(retained["hipstride/v1/tm1/streams/emg"])
    assert emg["rate_hz"] == 2000.0 and emg["version"] == 1
    assert [c["name"] for c in emg["channels"]] == list(EMG_CHANNELS_DEFAULT)
    assert {c["unit"] for c in emg["channels"]} == {"mV"}
    status = json.loads(retained["hipstride/v1/tm1/status"])
    assert status["state"] == "offline" and status["station"] == "tm1"


def test_live_frames_and_status_are_visible_to_mosquitto_sub(mosquitto, tmp_path):
    agent = start_agent(mosquitto, tmp_path / "s.sqlite", "--duration", "8")
    try:
        sub = subprocess.run(
            [MOSQUITTO.replace("sbin/mosquitto", "bin/mosquitto_sub"), "-h", "127.0.0.1", "-p",
             str(mosquitto.port), "-u", "witness", "-P", USERS["witness"], "-t",
             "hipstride/v1/tm1/#", "-F", "%t %r", "-C", "200", "-W", "8"],
            capture_output=True, text=True, timeout=20)
    finally:
        agent.terminate()
        agent.wait(30)
    seen = {line.split(" ")[0] for line in sub.stdout.splitlines()}
    assert {f"hipstride/v1/tm1/frames/{s}" for s in STREAMS} <= seen
    assert "hipstride/v1/tm1/status" in seen


def test_killed_agent_leaves_an_offline_last_will(mosquitto, witness, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("[broker]\nkeepalive_s = 5\n")
    agent = start_agent(mosquitto, tmp_path / "s.sqlite", "--config", str(config))
    assert witness.wait_for(lambda w: any(s["state"] == "online" for s in w.status), 15)
    agent.send_signal(signal.SIGKILL)
    agent.wait(10)
    assert witness.wait_for(lambda w: w.status[-1]["state"] == "offline", 15)
    assert witness.status[-1]["reason"] == "connection lost"


def test_bad_configuration_exits_2_naming_the_field(mosquitto, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text('frame_ms = "fast"\n')
    proc = subprocess.run(agent_command(mosquitto, tmp_path / "s.sqlite", "--config",
                                        str(config)),
                          env=agent_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "frame_ms: expected a number" in proc.stderr


def test_unreachable_broker_exits_4_saying_what_to_check(tmp_path):
    port = free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
         f"mqtt://127.0.0.1:{port}", "--spool", str(tmp_path / "s.sqlite"), "--duration", "1"],
        env=agent_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 4
    assert f"cannot reach the MQTT broker at mqtt://127.0.0.1:{port}" in proc.stderr
    assert "--offline-ok" in proc.stderr


def test_rejected_password_exits_3_without_leaking_it(mosquitto, tmp_path):
    proc = subprocess.run(agent_command(mosquitto, tmp_path / "s.sqlite", "--duration", "1"),
                          env=agent_env("wrong-password"), capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 3
    assert "rejected the credentials" in proc.stderr
    assert "wrong-password" not in proc.stderr + proc.stdout


def test_offline_ok_spools_until_the_broker_appears(mosquitto, witness, tmp_path):
    mosquitto.stop()
    agent = start_agent(mosquitto, tmp_path / "s.sqlite", "--offline-ok", "--duration", "12")
    time.sleep(4)
    mosquitto.start()
    _out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert witness.wait_for(lambda w: w.samples("emg") == 24000, 20), witness.samples("emg")
    assert_contiguous(witness, "emg")


def test_tls_with_password_delivers_every_frame(tmp_path):
    broker = Mosquitto(tmp_path / "tls-broker", USERS, tls=True)
    broker.start()
    try:
        witness = Witness(broker.port, "witness", USERS["witness"], "tm1")
        config = tmp_path / "edge.toml"
        config.write_text(f'[broker]\nca_file = "{broker.ca_file}"\n')
        proc = subprocess.run(
            [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
             f"mqtts://edge-tm1@127.0.0.1:{broker.tls_port}", "--config", str(config),
             "--spool", str(tmp_path / "s.sqlite"), "--duration", "3", "--speed", "0"],
            env=agent_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert witness.wait_for(lambda w: w.samples("emg") == 6000, 10)
        witness.close()
    finally:
        broker.stop()


def test_tls_with_an_unknown_ca_is_refused_clearly(tmp_path):
    broker = Mosquitto(tmp_path / "tls-broker", USERS, tls=True)
    broker.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "hipstride.cli", "edge", "--station", "tm1", "--broker",
             f"mqtts://edge-tm1@127.0.0.1:{broker.tls_port}", "--spool",
             str(tmp_path / "s.sqlite"), "--duration", "1"],
            env=agent_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 4
        assert "certificate" in proc.stderr.lower()
    finally:
        broker.stop()


def test_a_full_spool_drops_the_oldest_and_says_so(mosquitto, witness, tmp_path):
    mosquitto.stop()
    config = tmp_path / "edge.toml"
    config.write_text("[spool]\ncapacity_mb = 1\n")
    agent = start_agent(mosquitto, tmp_path / "s.sqlite", "--config", str(config),
                        "--offline-ok", "--speed", "0", "--duration", "60")
    time.sleep(6)   # 60 s of data (~4.7 MB) into a 1 MB spool while the broker is down
    mosquitto.start()
    _, err = agent.communicate(timeout=90)
    assert agent.returncode == 0, err
    assert "evicted" in err
    assert witness.wait_for(lambda w: w.status and w.status[-1]["state"] == "offline", 20)
    final = [s for s in witness.status if s["state"] == "online"][-1]
    evicted = final["spool"]["evicted_frames"]
    assert evicted > 0
    received = {n: {(s.epoch, s.seq) for s in witness.frames[n]} for n in STREAMS}
    total_next = {n: final["streams"][n]["next_seq"] for n in STREAMS}
    lost = sum(total_next[n] - len(received[n]) for n in STREAMS)
    assert lost == evicted == sum(final["streams"][n]["evicted_frames"] for n in STREAMS)
    for n in STREAMS:  # what was dropped is the oldest: the received frames are the newest
        seqs = sorted(s for _, s in received[n])
        assert seqs == list(range(total_next[n] - len(seqs), total_next[n]))


HARDWARE_TOML = """
station = "tm1"
source = "hardware"
[hardware.emg]
chip = "ads1299"
drdy_gpio = { chip = "/dev/gpiochip0", line = 25 }
rate_hz = 2000
channels = { 1 = "glute_max_l", 2 = "glute_max_r", 3 = "biceps_femoris_l", 4 = "biceps_femoris_r" }
[[hardware.imu]]
segment = "pelvis"
chip = "mpu6500"
address = 0x68
"""


def test_emulated_hardware_streams_through_the_agent(mosquitto, witness, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text(HARDWARE_TOML)
    proc = subprocess.run(
        [sys.executable, "-m", "hipstride.cli", "edge", "--config", str(config), "--emulate",
         "--broker", mosquitto.url_for("edge-tm1"), "--spool", str(tmp_path / "s.sqlite"),
         "--duration", "4"], env=agent_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert witness.wait_for(lambda w: w.status and w.status[-1]["state"] == "offline", 10)
    emg = assert_contiguous(witness, "emg")
    imu = assert_contiguous(witness, "imu_pelvis")
    assert {f.n_channels for f in emg} == {4} and {f.n_channels for f in imu} == {6}
    final = [s for s in witness.status if s["state"] == "online"][-1]
    assert final["streams"]["emg"]["next_seq"] == len(emg)
    description = witness.descriptions["emg"]
    assert description["dtype"] == "int32" and description["sensor"].lower() == "ads1299"


def test_status_names_an_electrode_that_falls_off(mosquitto, witness, tmp_path):
    config = tmp_path / "edge.toml"
    config.write_text("status_interval_s = 0.5\n[[sim.dropouts]]\nchannel = \"glute_max_r\"\n"
                      "start_s = 2.0\nend_s = 30.0\nmode = \"flat\"\n")
    proc = subprocess.run(agent_command(mosquitto, tmp_path / "s.sqlite", "--config",
                                        str(config), "--duration", "6"),
                          env=agent_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    online = [s for s in witness.status if s["state"] == "online"]
    early = [p for s in online if s["streams"]["emg"]["samples"] < 3000 for p in s["problems"]]
    late = online[-1]["problems"]
    assert not any(p["channel"] == "glute_max_r" for p in early)
    flagged = [p for p in late if p["channel"] == "glute_max_r"]
    assert [p["problem"] for p in flagged] == ["flat"]
    assert "electrode" in flagged[0]["message"]
    assert not any(p["channel"] == "glute_max_l" for p in late)
    assert abs(online[-1]["streams"]["emg"]["rate_hz_measured"] - 2000) < 100
