"""The compose deployment wired end to end without Docker, each part run as the compose file
runs it:

- **mosquitto**: Debian's Mosquitto with deploy/mosquitto/mosquitto.conf and the passwd/ACL
  files written by the real ``hipstride admin init`` / ``add-station tm1`` (see
  tests/support/deploy.py for the exact substitutions: listener port, paths, log file).
- **influxdb**: Debian's InfluxDB 1.6.7 stands in for ``influxdb:2.7`` (the only server
  installable here). What the 2.7 image's ``DOCKER_INFLUXDB_INIT_*`` setup would create is
  created the 1.x way: a database named like the bucket, and the initial user with the token as
  its password (1.x checks USER:TOKEN; 2.x checks the token alone and maps the bucket for
  InfluxQL through its automatic DBRP mapping).
- **pipeline**: the compose ``command`` and ``environment``, interpolated from the generated
  .env, with only host names mapped to loopback (``mosquitto:1883``, ``influxdb:8086``), the
  ``pipeline-state`` volume to a temp folder and the metrics port to a free one.
- **edge agent**: a Pi's configuration, the station's password in the file add-station wrote.

Frames must reach the store; the compose health check must pass; and no secret may appear in
any log, ``--help`` or error output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.deploy import (
    ComposeMosquitto,
    interpolate,
    load_compose,
    make_site,
    station_password,
    to_host,
    volume_map,
)
from tests.support.influxdb import InfluxDB
from tests.support.mosquitto import free_port
from tests.support.pipeline import clean_env, stop_process, wait_until

DURATION_S = 6
STREAMS = ("emg", "imu_pelvis", "imu_thigh_l", "imu_thigh_r", "imu_shank_l", "imu_shank_r")
RATES = {"emg": 2000, **{s: 200 for s in STREAMS[1:]}}


def pipeline_environment(env: dict[str, str], broker_port: int, influx_port: int,
                         metrics_port: int, volumes: dict[str, Path]) -> dict[str, str]:
    service = load_compose()["services"]["pipeline"]
    environment = {k: str(v) for k, v in interpolate(service["environment"], env).items()}
    mapped = {}
    for key, value in environment.items():
        value = value.replace("@mosquitto:1884", f"@127.0.0.1:{broker_port}")
        value = value.replace("@influxdb:8086/", f"@127.0.0.1:{influx_port}/")
        mapped[key] = to_host(value, volumes)
    assert mapped["HIPSTRIDE_METRICS_PORT"] == "9464"
    mapped["HIPSTRIDE_METRICS_PORT"] = str(metrics_port)
    return mapped


def compose_command(service: str) -> list[str]:
    command = load_compose()["services"][service]["command"]
    assert command[0] == "hipstride"
    return [sys.executable, "-m", "hipstride.cli", *command[1:]]


def healthcheck(metrics_port: int) -> subprocess.CompletedProcess:
    test = load_compose()["services"]["pipeline"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    code = test[-1].replace("127.0.0.1:9464", f"127.0.0.1:{metrics_port}")
    return subprocess.run([sys.executable, *test[2:-1], code], capture_output=True, timeout=30)


def stored_samples(influx: InfluxDB, database: str) -> dict[str, int]:
    results = influx.query("SELECT sum(n_samples) FROM frames WHERE station = 'tm1' "
                           "GROUP BY stream", database=database)
    return {s["tags"]["stream"]: int(s["values"][0][1]) for s in results[0].get("series", [])}


def test_compose_wiring_frames_reach_the_store_and_secrets_stay_out_of_logs(tmp_path):
    site = tmp_path / "site"
    env = make_site(site, ("tm1",))
    secrets = {k: env[k] for k in ("MQTT_PIPELINE_PASSWORD", "MQTT_DASHBOARD_PASSWORD",
                                   "INFLUXDB_TOKEN", "INFLUXDB_ADMIN_PASSWORD")}
    secrets["tm1"] = station_password(site, "tm1")
    broker = ComposeMosquitto(tmp_path / "mosquitto", site)
    influx = InfluxDB(tmp_path / "influxdb")
    pipeline: subprocess.Popen | None = None
    logs: list[str] = []
    broker.start()
    influx.start()
    try:
        influx.create_database(env["INFLUXDB_BUCKET"],
                               users={env["INFLUXDB_ADMIN_USER"]: env["INFLUXDB_TOKEN"]})
        volumes = volume_map(load_compose()["services"]["pipeline"], site, tmp_path / "volumes")
        metrics_port = free_port()
        environment = pipeline_environment(env, broker.services_port, influx.port, metrics_port,
                                           volumes)
        assert environment["HIPSTRIDE_STATE_DIR"].startswith(str(tmp_path / "volumes"))
        log_path = tmp_path / "pipeline.log"
        with open(log_path, "w") as log:
            pipeline = subprocess.Popen(compose_command("pipeline"),
                                        env=clean_env(**environment), stdout=log,
                                        stderr=subprocess.STDOUT)
        wait_until(lambda: pipeline.poll() is not None or healthcheck(metrics_port)
                   .returncode == 0, 60, "the compose health check of the pipeline")
        assert pipeline.poll() is None, log_path.read_text()

        edge_config = tmp_path / "edge.toml"  # what a Pi gets (docs/deployment.md)
        edge_config.write_text(
            f'station = "tm1"\nsource = "sim"\n[broker]\n'
            f'url = "mqtt://tm1@127.0.0.1:{broker.port}"\n'
            f'password_file = "{site / "tm1.password"}"\n'
            f'[spool]\npath = "{tmp_path / "spool.sqlite"}"\n')
        edge = subprocess.run(
            [sys.executable, "-m", "hipstride.cli", "--log-level", "DEBUG", "edge", "--config",
             str(edge_config), "--duration", str(DURATION_S), "--seed", "3"],
            env=clean_env(), capture_output=True, text=True, timeout=120)
        logs += [edge.stdout, edge.stderr]
        assert edge.returncode == 0, edge.stderr[-3000:]
        expected = {s: DURATION_S * RATES[s] for s in STREAMS}
        wait_until(lambda: stored_samples(influx, env["INFLUXDB_BUCKET"]) == expected, 60,
                   f"every sample of tm1 in InfluxDB ({expected})")
    finally:
        if pipeline is not None:
            stop_process(pipeline, 30)
        influx.stop()
        broker.stop()
    logs.append((tmp_path / "pipeline.log").read_text())
    logs.append(broker.log())
    for name, secret in secrets.items():
        for text in logs:
            assert secret not in text, f"the {name} secret appears in a log"


def test_secrets_stay_out_of_help_and_error_output(tmp_path):
    """With every secret in the environment, --help and failing runs never print one."""
    site = tmp_path / "site"
    env = make_site(site, ("tm1",))
    broker = ComposeMosquitto(tmp_path / "mosquitto", site)
    broker.start()
    token, password = env["INFLUXDB_TOKEN"], env["MQTT_PIPELINE_PASSWORD"]
    secret_env = clean_env(HIPSTRIDE_BROKER_PASSWORD=password, HIPSTRIDE_STORE_TOKEN=token)
    outputs = []
    try:
        runs = [
            ["pipeline", "--help"], ["edge", "--help"], ["admin", "--help"],
            # the broker refuses this password for tm1: exit 3, says so, without the password
            ["edge", "--station", "tm1", "--broker", f"mqtt://tm1@127.0.0.1:{broker.port}",
             "--duration", "1", "--spool", str(tmp_path / "s.sqlite")],
            # a store URL with the token inline and a bad metrics port: configuration error
            ["pipeline", "--broker", f"mqtt://pipeline@127.0.0.1:{broker.services_port}", "--store",
             f"influx://u:{token}@127.0.0.1:1/db", "--metrics-port", "70000"],
            # an unreachable store with the token from the environment
            ["pipeline", "--broker", f"mqtt://pipeline@127.0.0.1:{broker.services_port}", "--store",
             "influx://hipstride@127.0.0.1:1/hipstride", "--duration", "3", "--state-dir",
             str(tmp_path / "state")],
        ]
        codes = []
        for args in runs:
            done = subprocess.run([sys.executable, "-m", "hipstride.cli", "--log-level",
                                   "DEBUG", *args], env=secret_env, capture_output=True,
                                  text=True, timeout=120, cwd=site)
            codes.append(done.returncode)
            outputs += [done.stdout, done.stderr]
        assert codes[:3] == [0, 0, 0]
        assert codes[3] == 3 and "not authori" in outputs[7].lower(), outputs[7][-2000:]
        assert codes[4] == 2, outputs[9][-2000:]
    finally:
        broker.stop()
    for text in outputs:
        assert token not in text and password not in text
