"""The partition claim's pure parts (pipeline/service/claim.py): the message, who yields, and
which messages count as another process's claim. The broker side is in
tests/deploy/test_client_ids.py."""

from __future__ import annotations

from dataclasses import replace

from hipstride import topics
from hipstride.config import BrokerURL
from hipstride.pipeline.service.claim import Claim, ClaimBody, taken_message, yields_to
from hipstride.pipeline.service.config import Partition, PipelineConfig


def config(partition: str = "1/3") -> PipelineConfig:
    return PipelineConfig(broker=BrokerURL.parse("mqtt://pipeline@localhost:1884"),
                          store_url="sqlite:///x.db", partition=Partition.parse(partition))


def test_claim_round_trips_and_garbage_claims_nothing():
    claim = Claim(config())
    assert claim.topic == topics.pipeline_claim(1, 3) == "_hipstride/v1/pipeline/1-of-3"
    body = claim.body()
    assert ClaimBody.parse(body.to_json()) == body
    assert body.state == "running" and body.partition == "1/3"
    for bad in (b"", b"not json", b"[]", b'{"state": "running"}', b'{"since_ns": "x"}'):
        assert ClaimBody.parse(bad) is None


def test_exactly_one_of_two_processes_yields():
    a = Claim(config()).body()
    b = replace(a, instance="b" * 32, since_ns=a.since_ns + 1)
    assert yields_to(b, a) and not yields_to(a, b)  # the later one yields
    tie = replace(a, instance="z" * 32)
    assert yields_to(tie, a) != yields_to(a, tie)  # same start: the instance id decides


def test_only_a_live_running_claim_of_another_process_is_a_conflict():
    claim = Claim(config())
    other = replace(claim.body(), instance="other", pid=7, host="elsewhere")
    claim.on_message(claim.body().to_json())  # our own heartbeat
    claim.on_message(replace(other, state="released").to_json())
    claim.on_message(other.to_json(), retained=True)  # stale: the start-up check saw it die
    claim.on_message(b"garbage")
    assert claim.conflict() is None
    claim.on_message(other.to_json())
    assert claim.conflict() == other
    assert claim.conflict() is None  # reported once
    text = taken_message("1/3", other)
    assert "partition 1/3" in text and "pid 7 on host elsewhere" in text and "--partition" in text
