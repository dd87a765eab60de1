"""hipstride/mqtt.py logs every lost connection, refused reconnect and reconnect with its
reason, for every component: shown with a real Mosquitto that is stopped, restarted with the
client's account removed (refused), and restarted again with it back."""

from __future__ import annotations

import logging
import subprocess

from hipstride.config import BrokerURL
from hipstride.mqtt import Connection, make_client
from tests.support.mosquitto import MOSQUITTO_PASSWD, Mosquitto
from tests.support.pipeline import wait_until


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def texts(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


def test_drops_refusals_and_reconnects_are_logged_with_reasons(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto", {"svc": "svc-secret"})
    broker.start()
    logger = logging.getLogger("test.mqtt.connection")
    logger.setLevel(logging.DEBUG)
    records = Records()
    logger.addHandler(records)
    url = BrokerURL.parse(broker.url_for("svc"))
    client = make_client(url, "hipstride-test-log", password="svc-secret", reconnect_max_s=1)
    connection = Connection(client, url, logger=logger)
    try:
        assert connection.open(timeout_s=10)
        assert records.texts(logging.WARNING) == []  # a first connect is not news
        broker.stop()
        wait_until(lambda: records.texts(logging.WARNING), 20, "the drop to be logged")
        lost = records.texts(logging.WARNING)[0]
        assert "hipstride-test-log: lost the connection to" in lost
        assert "connection lost" in lost and "same client id" in lost, lost
        assert "svc-secret" not in lost
        passwd = tmp_path / "mosquitto" / "passwd"
        subprocess.run([MOSQUITTO_PASSWD, "-D", str(passwd), "svc"], check=True)
        broker.start()
        wait_until(lambda: any("reconnect refused" in t for t in
                               records.texts(logging.WARNING)), 20, "the refusal to be logged")
        refused = next(t for t in records.texts(logging.WARNING) if "reconnect refused" in t)
        assert "rejected the credentials" in refused, refused
        broker.stop()
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "svc", "svc-secret"], check=True)
        broker.start()
        wait_until(lambda: any("reconnected to" in t for t in records.texts(logging.WARNING)),
                   30, "the reconnect to be logged")
        back = next(t for t in records.texts(logging.WARNING) if "reconnected to" in t)
        assert "after" in back and "session present: no" in back, back
        assert connection.connected.is_set()
    finally:
        connection.close()
        broker.stop()
        logger.removeHandler(records)
    assert any("closed its connection" in t for t in records.texts(logging.INFO))
