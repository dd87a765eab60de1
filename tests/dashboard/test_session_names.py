"""The session page applies the one name rule (hipstride/names.py) before anything is sent."""

from __future__ import annotations

from hipstride.dashboard import stations
from hipstride.dashboard.views.session import check_name


def test_a_name_against_the_rule_is_refused_with_the_rule() -> None:
    assert check_name("Zoë Müller") is None
    for bad in ("ann\nbob", "ann\\", "x" * 65):
        message = check_name(bad)
        assert message and "athlete name" in message, bad
    assert check_name("   ") == "Type the athlete's name."


class _NeverSent:
    """A control client the refused command must never reach."""

    sent = 0

    def send(self, *_args, **_kwargs):
        self.sent += 1
        raise AssertionError("a refused name reached the broker")


def test_a_bad_name_in_a_command_is_a_message_not_an_exception() -> None:
    client = _NeverSent()
    sent = stations.send(client, "tm1", "start", athlete="ann\nbob")
    assert not sent.ok and sent.reply is None
    assert "athlete name" in sent.text and client.sent == 0
