"""What the demo adds to amqtt (0.12): one account, and one fix. Imports amqtt.

**One account**, a user name and a password made fresh for every run. Two reasons for it on a
loopback-only broker: other users of the same machine cannot read the (simulated, but still)
athlete data, and amqtt keeps the QoS 1 session of a client with ``clean_session = false``
only when that client is *not* anonymous — the edge agents' and the pipeline's at-least-once
delivery depends on that session.

**The fix**: when a client connects, amqtt 0.12 offers it the retained messages matching
*every* topic filter any client of the broker subscribed to, not just its own — so an edge
agent, subscribed to its control topic only, received the stations' status, stream
descriptions and session states there. :class:`Broker` sends retained messages only for the
client's own subscriptions, as MQTT 3.1.1 (3.3.1.3) says.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker as AmqttBroker
from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class Broker(AmqttBroker):
    """amqtt's broker, sending retained messages only for a client's own subscriptions."""

    async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Session) -> Any:
        subscribers = self._subscriptions.get(subscription[0], [])
        if not any(s.client_id == session.client_id for s, _ in subscribers):
            return None  # another client's filter (see the module docstring)
        return await super()._publish_retained_messages_for_subscription(subscription, session)


class PasswordAuthPlugin(BaseAuthPlugin):
    """Lets in exactly one ``username``/``password`` pair (the plugin's settings)."""

    @dataclass
    class Config:
        username: str = ""
        password: str = ""

    async def authenticate(self, *, session: Session) -> bool:
        given = session.password or ""
        if isinstance(given, bytes):
            given = given.decode("utf-8", "replace")
        ok = (bool(self.config.password) and session.username == self.config.username
              and hmac.compare_digest(given.encode(), self.config.password.encode()))
        if not ok:
            self.context.logger.warning("refused client %r: wrong user name or password",
                                        session.client_id)
        return ok
