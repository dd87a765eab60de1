import pytest

from hipstride import topics


def test_topics_live_under_one_prefix_per_station():
    assert topics.frames("tm-1", "emg") == "hipstride/v1/tm-1/frames/emg"
    assert topics.stream_description("tm-1", "emg") == "hipstride/v1/tm-1/streams/emg"
    assert topics.status("tm-1") == "hipstride/v1/tm-1/status"
    assert topics.control("tm-1") == "hipstride/v1/tm-1/control"
    for build in (topics.live, topics.cues, topics.status, topics.control):
        assert build("tm-1").startswith(topics.prefix("tm-1") + "/")


@pytest.mark.parametrize("topic", [
    topics.frames("a1", "imu_pelvis"), topics.stream_description("a1", "emg"),
    topics.status("a1"), topics.control("a1"), topics.live("a1"), topics.cues("a1"),
    topics.session("a1")])
def test_parse_inverts_the_builders(topic):
    parsed = topics.parse(topic)
    assert parsed.station == "a1"
    rebuilt = (getattr(topics, {"frames": "frames", "streams": "stream_description"}
                       [parsed.kind])(parsed.station, parsed.stream)
               if parsed.stream else getattr(topics, parsed.kind)(parsed.station))
    assert rebuilt == topic


@pytest.mark.parametrize("bad", ["", "Upper", "has/slash", "plus+", "#", "a" * 33, "-lead"])
def test_station_ids_that_would_break_topics_are_refused(bad):
    with pytest.raises(ValueError, match="station id"):
        topics.prefix(bad)


@pytest.mark.parametrize("bad", ["other/v1/a/status", "hipstride/v1/a/frames",
                                 "hipstride/v1/a/status/extra", "hipstride/v1/a/unknown"])
def test_parse_rejects_foreign_topics(bad):
    with pytest.raises(ValueError):
        topics.parse(bad)


def test_subscriptions_use_single_level_wildcards():
    assert topics.subscription("frames") == "hipstride/v1/+/frames/+"
    assert topics.subscription("status", "tm1") == "hipstride/v1/tm1/status"


def test_session_topic_is_a_per_station_kind():
    assert topics.session("tm-1") == "hipstride/v1/tm-1/session"
    assert topics.parse("hipstride/v1/tm-1/session") == topics.ParsedTopic("tm-1", "session")
    assert topics.subscription("session") == "hipstride/v1/+/session"
    assert topics.subscription(topics.SESSION, "tm-1") == "hipstride/v1/tm-1/session"
    with pytest.raises(ValueError):
        topics.parse("hipstride/v1/tm-1/session/extra")
    with pytest.raises(ValueError, match="station id"):
        topics.session("Bad/Id")


def test_existing_topics_are_unchanged_by_the_session_kind():
    assert topics.KINDS[:6] == ("frames", "streams", "status", "control", "live", "cues")
    assert topics.subscription("control") == "hipstride/v1/+/control"
