"""Only the pipeline may write a station's store confirmation; a station reads only its own.

A real Mosquitto with the ACL written from hipstride/broker_auth.py's rights. A refusal is
shown by the broker itself: a message that never reaches a subscriber entitled to it, checked
after an allowed sentinel from the same publisher has arrived.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hipstride import broker_auth, topics
from tests.support.mosquitto import Mosquitto

USERS = {"pipeline": "p-secret", "tm1": "tm1-secret", "tm2": "tm2-secret"}


class Client:
    def __init__(self, port: int, user: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._ready = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acl-{user}")
        self.c.username_pw_set(user, USERS[user])
        self.c.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.c.on_subscribe = lambda *_a: self._ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def subscribe(self, *filters: str) -> None:
        self._ready.clear()
        self.c.subscribe([(f, 1) for f in filters])
        assert self._ready.wait(10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_store_confirmations_are_written_by_the_pipeline_and_read_by_their_station(tmp_path):
    blocks = {"pipeline": broker_auth.pipeline_rights(),
              **{s: broker_auth.station_rights(s) for s in ("tm1", "tm2")}}
    broker = Mosquitto(tmp_path / "mosquitto", USERS, acl=broker_auth.render_acl(blocks))
    broker.start()
    clients = {u: Client(broker.port, u) for u in USERS}
    try:
        tm1, tm2, pipeline = clients["tm1"], clients["tm2"], clients["pipeline"]
        tm1.subscribe(topics.subscription(topics.STORED))   # every station's, if it could
        tm2.subscribe(topics.stored("tm2"))
        pipeline.publish(topics.stored("tm1"), b"from the pipeline")
        pipeline.publish(topics.stored("tm2"), b"for tm2")
        assert wait_for(lambda: (topics.stored("tm1"), b"from the pipeline") in tm1.received)
        assert wait_for(lambda: (topics.stored("tm2"), b"for tm2") in tm2.received)
        # a station cannot forge a confirmation, neither its own nor another's
        tm2.publish(topics.stored("tm1"), b"forged by tm2")
        tm1.publish(topics.stored("tm1"), b"forged by tm1")
        pipeline.publish(topics.stored("tm1"), b"sentinel")
        assert wait_for(lambda: (topics.stored("tm1"), b"sentinel") in tm1.received)
        time.sleep(0.3)
        payloads = [p for _t, p in tm1.received]
        assert b"forged by tm2" not in payloads and b"forged by tm1" not in payloads
        # and a station reads only its own
        assert {t for t, _p in tm1.received} == {topics.stored("tm1")}
    finally:
        for c in clients.values():
            c.close()
        broker.stop()
