"""The fetcher's pure parts: security settings for librdkafka, batches from messages."""

from __future__ import annotations

from model_store.settings import Settings
from stream import handover
from stream.decoding import BadEvent, LabelOnly
from stream.fetcher import _batches


def test_security_settings_keep_their_meaning_under_librdkafka_names():
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="trainer",
        kafka_sasl_password="s3cret",
        kafka_ssl_cafile="/etc/ssl/ca.pem",
    )
    assert settings.librdkafka_options() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "trainer",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/ssl/ca.pem",
    }
    assert Settings().librdkafka_options() == {}
    # every kafka-python keyword the settings can produce has its librdkafka name
    assert len(settings.librdkafka_options()) == len(settings.kafka_client_options())


class Message:
    def __init__(self, topic, partition, offset, value, error=None):
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, error

    def error(self):
        return self._e

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return None

    def value(self):
        return self._v

    def timestamp(self):
        return (1, 1000 + self._o)


class Consumer:
    def get_watermark_offsets(self, tp, cached=False):
        return (0, {"a": 10, "b": -1}[tp])


def test_messages_are_grouped_by_partition_in_order_and_errors_dropped():
    messages = [
        Message("t", 0, 5, b"x"),
        Message("t", 1, 7, b"y"),
        Message("t", 0, 6, b"z"),
        Message("t", 0, -1, None, error="broker transport failure"),
    ]
    batches = _batches(Consumer(), messages, {("t", 0): "a", ("t", 1): "b"}, {})
    first, second = sorted(batches, key=lambda b: b.partition)
    assert (first.offsets, first.values, first.timestamps, first.highwater) == (
        [5, 6],
        [b"x", b"z"],
        [1005, 1006],
        10,
    )
    assert (second.offsets, second.values, second.highwater) == ([7], [b"y"], None)


def test_event_topics_arrive_decoded_and_the_refusals_survive_the_pipe():
    good = b'{"features": {"a": 1.5, "b": "x"}, "label": true}'
    label_only = b'{"id": "p-1", "label": false}'
    messages = [
        Message("events", 0, 0, good),
        Message("events", 0, 1, b"{not json"),
        Message("events", 0, 2, label_only),
        Message("log", 0, 0, b"anything"),
    ]
    partitions = {("events", 0): "a", ("log", 0): "a"}
    batches = _batches(Consumer(), messages, partitions, {"events": "classification"}, handover.Names())
    events, log = handover.loads(handover.dumps(sorted(batches, key=lambda b: b.topic)))
    assert log.events is None and log.values == [b"anything"]
    assert events.values == [good, b"{not json", label_only]
    decoded, refused, label = events.events
    assert decoded == ({"a": 1.5, "b": "x"}, True)
    assert isinstance(refused, BadEvent) and refused.reason.startswith("not JSON")
    assert isinstance(label, LabelOnly) and (label.id, label.label) == ("p-1", False)
