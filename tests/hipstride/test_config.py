import pytest

from hipstride.config import BrokerURL, ConfigError, Section, load_toml, read_secret


@pytest.mark.parametrize("url, expected", [
    ("mqtt://localhost", BrokerURL("localhost", 1883)),
    ("mqtts://edge@broker.lan", BrokerURL("broker.lan", 8883, True, "edge")),
    ("mqtt://u:p%40ss@10.0.0.2:1999", BrokerURL("10.0.0.2", 1999, False, "u", "p@ss")),
    ("127.0.0.1:1884", BrokerURL("127.0.0.1", 1884)),
    ("mqtt://[::1]:1884", BrokerURL("::1", 1884)),
])
def test_broker_urls(url, expected):
    assert BrokerURL.parse(url) == expected


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://h:99999", "mqtt://h/path"])
def test_bad_broker_urls_explain_the_expected_form(url):
    with pytest.raises(ConfigError, match="mqtt://"):
        BrokerURL.parse(url)


def test_redacted_urls_never_show_the_password():
    assert "secret" not in BrokerURL.parse("mqtt://u:secret@h").redacted()


def test_section_errors_name_the_field():
    s = Section({"capacity_mb": "lots", "n": 2.5, "flag": 1}, "spool")
    with pytest.raises(ConfigError, match=r"\[spool\] capacity_mb: expected a number"):
        s.number("capacity_mb")
    with pytest.raises(ConfigError, match="whole number"):
        s.number("n", integer=True)
    with pytest.raises(ConfigError, match="true or false"):
        s.boolean("flag")
    with pytest.raises(ConfigError, match="unknown setting"):
        s.unknown_keys({"capacity_mb", "n"})


def test_broken_toml_names_the_file(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text("station = ")
    with pytest.raises(ConfigError, match=r"edge\.toml"):
        load_toml(path)


def test_secrets_come_from_env_or_file(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.delenv("HIPSTRIDE_BROKER_PASSWORD", raising=False)
    assert read_secret("BROKER_PASSWORD", str(secret), "[broker]") == "from-file"
    monkeypatch.setenv("HIPSTRIDE_BROKER_PASSWORD", "from-env")
    assert read_secret("BROKER_PASSWORD", str(secret), "[broker]") == "from-env"
    monkeypatch.delenv("HIPSTRIDE_BROKER_PASSWORD")
    with pytest.raises(ConfigError, match="cannot read password file"):
        read_secret("BROKER_PASSWORD", str(tmp_path / "missing"), "[broker]")
