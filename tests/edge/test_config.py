import pytest

from hipstride.config import ConfigError
from hipstride.edge.config import load_edge_config


def _toml(tmp_path, text):
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_flags_beat_environment_beat_file(tmp_path, monkeypatch):
    path = _toml(tmp_path, 'station = "file-st"\nsource = "replay"\n'
                           '[broker]\nurl = "mqtt://file-host"\n[spool]\ncapacity_mb = 10\n')
    monkeypatch.setenv("HIPSTRIDE_STATION", "env-st")
    monkeypatch.setenv("HIPSTRIDE_BROKER", "mqtt://env-host:1999")
    config = load_edge_config(path, source="sim")
    assert (config.station, config.broker.host, config.broker.port, config.source) == (
        "env-st", "env-host", 1999, "sim")
    assert config.spool_capacity_bytes == 10_000_000
    assert load_edge_config(path, station="flag-st").station == "flag-st"


def test_password_from_environment_is_not_in_repr(monkeypatch):
    monkeypatch.setenv("HIPSTRIDE_BROKER_PASSWORD", "hunter2")
    config = load_edge_config(None, station="tm1")
    assert config.broker_password == "hunter2" and "hunter2" not in repr(config)


@pytest.mark.parametrize("text, message", [
    ('source = "sim"', "no station id"),
    ('station = "Bad/Id"', "station"),
    ('station = "a"\nsource = "camera"', "source: expected one of"),
    ('station = "a"\nframe_ms = "fifty"', "frame_ms: expected a number"),
    ('station = "a"\n[spool]\ncapacity_mb = -1', r"\[spool\] capacity_mb"),
    ('station = "a"\n[spool]\ncapacity = 5', "unknown setting"),
    ('station = "a"\n[broker]\nurl = "http://x"', "broker URL"),
    ('station = "a"\nstaton = "typo"', "unknown setting"),
])
def test_bad_configuration_names_the_field(tmp_path, monkeypatch, text, message):
    for var in ("STATION", "BROKER", "SOURCE"):
        monkeypatch.delenv(f"HIPSTRIDE_{var}", raising=False)
    with pytest.raises(ConfigError, match=message):
        load_edge_config(_toml(tmp_path, text))
