"""docker-compose.yml, the Dockerfile and .env.example, checked without a Docker engine:
services, images, commands (parsed by the real CLI), ports, volumes, health checks, restart
policies, every variable documented, every referenced file present, no secret committed."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from hipstride.cli import build_parser
from hipstride.config import ConfigError
from tests.support.deploy import (
    COMPOSE,
    ENV_EXAMPLE,
    REPO,
    SITE,
    hipstride,
    interpolate,
    load_compose,
    make_site,
    read_env_file,
    referenced_variables,
)

SECRETS = ("MQTT_PIPELINE_PASSWORD", "MQTT_DASHBOARD_PASSWORD", "INFLUXDB_ADMIN_PASSWORD",
           "INFLUXDB_TOKEN")


@pytest.fixture(scope="module")
def compose():
    return load_compose()


def test_services_images_and_one_project_image(compose):
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "pipeline", "dashboard"}
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert services["influxdb"]["image"] == "influxdb:2.7"
    ours = [services["pipeline"], services["dashboard"]]
    assert ours[0]["image"] == ours[1]["image"] == "hipstride:local"
    for service in ours:
        assert service["build"]["context"] == "."
        assert (REPO / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_commands_are_valid_hipstride_command_lines(compose):
    parser, _ = build_parser()
    for name in ("pipeline", "dashboard"):
        command = compose["services"][name]["command"]
        assert command[:2] == ["hipstride", name]
        args = parser.parse_args(command[1:])  # exits (fails the test) on a bad flag
        assert args.command == name


def test_restart_policies_and_health_checks(compose):
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no health check"
        assert {"interval", "timeout", "retries"} <= set(check), name
    services = compose["services"]
    metrics_port = services["pipeline"]["environment"]["HIPSTRIDE_METRICS_PORT"]
    assert f"127.0.0.1:{metrics_port}/health" in " ".join(services["pipeline"]["healthcheck"]
                                                          ["test"])
    dashboard_port = services["dashboard"]["command"][-1]
    assert f"127.0.0.1:{dashboard_port}/_stcore/health" in " ".join(
        services["dashboard"]["healthcheck"]["test"])
    assert services["influxdb"]["healthcheck"]["test"] == ["CMD", "influx", "ping"]
    assert "mosquitto_sub" in services["mosquitto"]["healthcheck"]["test"][1]
    for name in ("pipeline", "dashboard"):
        for dependency in ("mosquitto", "influxdb"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"


def test_ports_expose_only_what_stations_need(compose):
    env = read_env_file(ENV_EXAMPLE)
    services = interpolate(compose["services"], {k: v or "x" for k, v in env.items()})
    assert set(services["mosquitto"]["ports"]) == {"1883:1883", "8883:8883",
                                                   "127.0.0.1:1884:1884"}
    # the services reach the broker on its services' listener, inside the compose network
    for name in ("pipeline", "dashboard"):
        assert services[name]["environment"]["HIPSTRIDE_BROKER"].endswith("@mosquitto:1884")
    assert services["influxdb"]["ports"] == ["127.0.0.1:8086:8086"]
    assert services["dashboard"]["ports"] == ["127.0.0.1:8501:8501"]  # localhost by default
    assert "ports" not in services["pipeline"]


def test_volumes_named_and_bind_sources_exist(compose, tmp_path):
    declared = set(compose["volumes"])
    assert declared == {"mosquitto-data", "influxdb-data", "influxdb-config", "pipeline-state"}
    site = tmp_path / "site"
    make_site(site, ("tm1",))
    (site / "pw").write_text("coach-password-1\n")
    hipstride("admin", "add-coach", "carla", "--athlete", "ana", "--password-file", "pw",
              cwd=site)
    used = set()
    for name, service in compose["services"].items():
        for entry in service.get("volumes", []):
            source, target = entry.split(":")[:2]
            assert target.startswith("/"), (name, entry)
            if source.startswith("./"):
                # repository files, or files `hipstride admin` writes in the deployment
                base = site if source.startswith(SITE) else REPO
                assert (base / source[2:]).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
    assert used == declared
    assert (site / "deploy/site/broker/passwd").is_file()
    assert (site / "deploy/site/broker/acl").is_file()
    assert (site / "deploy/site/broker/services.passwd").is_file()
    assert (site / "deploy/site/broker/services.acl").is_file()
    assert (site / "deploy/site/dashboard/accounts.json").is_file()
    # the dashboard's HIPSTRIDE_ACCOUNTS points into its mounted folder
    dashboard = compose["services"]["dashboard"]
    mount = next(v for v in dashboard["volumes"] if "deploy/site/dashboard" in v)
    assert dashboard["environment"]["HIPSTRIDE_ACCOUNTS"].startswith(mount.split(":")[1])


def test_mosquitto_conf_files_live_in_mounted_folders(compose):
    service = compose["services"]["mosquitto"]
    targets = [v.split(":")[1] for v in service["volumes"]]
    conf = (REPO / "deploy/mosquitto/mosquitto.conf").read_text()
    paths = re.findall(r"^(?:password_file|acl_file|persistence_location|include_dir) (\S+)",
                       conf, re.M)
    assert len(paths) == 6  # two listeners with their own password file and ACL
    for path in paths:
        assert any(path.startswith(t) for t in targets), f"{path} is in no mounted folder"
    assert re.search(r"^per_listener_settings true$", conf, re.M)
    listeners = {m.group(1): m.group(2) for m in re.finditer(
        r"^listener (\d+)\n(.*?)(?=^listener |^# ---)", conf, re.M | re.S)}
    assert set(listeners) == {"1883", "1884"}
    for port, block in listeners.items():
        assert re.search(r"^allow_anonymous false$", block, re.M), port
    # stations: the client id is the station's account; services: their own files
    assert re.search(r"^use_username_as_clientid true$", listeners["1883"], re.M)
    assert "/mosquitto/auth/passwd\n" in listeners["1883"]
    assert "/mosquitto/auth/services.passwd\n" in listeners["1884"]
    tls = (REPO / "deploy/mosquitto/conf.d/tls.conf.example").read_text()
    assert re.search(r"^use_username_as_clientid true$", tls, re.M)
    assert "password_file /mosquitto/auth/passwd\n" in tls
    assert re.search(r"^persistence true$", conf, re.M)
    assert int(re.search(r"^autosave_interval (\d+)$", conf, re.M).group(1)) <= 30
    # 10 minutes of one station's 6 streams x 20 frames/s, for at least 4 stations
    assert int(re.search(r"^max_queued_messages (\d+)$", conf, re.M).group(1)) >= \
        4 * 6 * 20 * 600


def test_every_variable_is_documented_and_used(compose):
    documented = read_env_file(ENV_EXAMPLE)
    assert referenced_variables(repr(compose)) == set(documented)  # comments excluded
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z_]+=", line):
            assert lines[i - 1].startswith("#"), f".env.example: {line} has no comment above"


def test_secrets_are_required_and_never_committed(compose, tmp_path):
    example = read_env_file(ENV_EXAMPLE)
    for key in SECRETS:
        assert example[key] == "", f".env.example must not hold a value for {key}"
    with pytest.raises(KeyError, match="hipstride admin init"):
        interpolate(compose["services"], example)  # compose refuses to start without them
    env = make_site(tmp_path / "site", ())
    services = interpolate(compose["services"], env)
    for key in SECRETS:
        assert len(env[key]) >= 24
    assert services["pipeline"]["environment"]["HIPSTRIDE_STORE_TOKEN"] == env["INFLUXDB_TOKEN"]
    assert (tmp_path / "site/.env").stat().st_mode & 0o077 == 0
    # nothing secret-looking in the files the repository ships for the deployment
    shipped = [COMPOSE, ENV_EXAMPLE, REPO / "Dockerfile", REPO / ".dockerignore",
               *[p for p in (REPO / "deploy").rglob("*") if p.is_file()
                 and "site" not in p.relative_to(REPO / "deploy").parts]]
    for path in shipped:
        text = path.read_text()
        assert "$7$" not in text and "scrypt$" not in text, path
        assert not re.search(r"(PASSWORD|TOKEN)\s*[=:]\s*[A-Za-z0-9_\-]{8,}", text), path
        for value in env.values():
            assert len(value) < 24 or value not in text


def test_git_and_docker_ignore_the_site_secrets():
    for path in (".env", "deploy/site/broker/passwd", "deploy/site/dashboard/accounts.json",
                 "tm1.password"):
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert done.returncode == 0, f"git does not ignore {path}"
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".env", "deploy/site/", ".git"} <= set(ignored)


def test_dockerfile_is_slim_non_root_and_installs_both_components():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'pip install ".[pipeline,dashboard]"' in text
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
        for name in source.split():
            assert (REPO / name).exists(), f"Dockerfile copies missing {name}"


def test_pipeline_accepts_the_compose_environment(compose, tmp_path, monkeypatch):
    from hipstride.pipeline.service.config import load_pipeline_config
    from hipstride.pipeline.store.url import StoreURL

    env = make_site(tmp_path / "site", ())
    environment = interpolate(compose["services"]["pipeline"]["environment"], env)
    for key in list(os.environ):
        if key.startswith("HIPSTRIDE_"):
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, str(value))
    config = load_pipeline_config(None)
    assert config.broker.host == "mosquitto" and config.broker.username == "pipeline"
    assert config.broker_password == env["MQTT_PIPELINE_PASSWORD"]
    store = StoreURL.parse(config.store_url)
    assert (store.host, store.port, store.database, store.org) == (
        "influxdb", 8086, env["INFLUXDB_BUCKET"], env["INFLUXDB_ORG"])
    assert store.token == env["INFLUXDB_TOKEN"]
    assert env["INFLUXDB_TOKEN"] not in repr(config) + repr(store)
    monkeypatch.setenv("HIPSTRIDE_METRICS_PORT", "not-a-port")
    with pytest.raises(ConfigError):
        load_pipeline_config(None)
