"""The prediction log's hand-off to its producer process, on the real Kafka."""

from __future__ import annotations

import os
import signal
import time

import orjson

from api.prediction_log import PredictionLog
from stream.local_services import KafkaServer, free_port
from tests.helpers.kafka import read_records
from tests.helpers.processes import wait_until


def test_every_record_reaches_kafka_with_its_key_in_order(kafka: KafkaServer, prefix: str):
    topic = f"{prefix}.predictions"
    records = [
        {"id": f"id-{i}", "model": "m", "version": 1, "features": {"a": i, "b\n": "x\ty"}, "ts": 1.5, "p": i}
        for i in range(300)
    ]
    log = PredictionLog(kafka.bootstrap, {})
    log.start()
    try:
        for record in records:
            log.submit(topic, record["id"], record)
        log.submit(topic, "unserialisable", {"id": object()})
        wait_until(lambda: log.sent == 300, timeout=60, what="records sent")
        assert log.connected and log.dropped == 1
    finally:
        log.stop()
    assert not log._child.alive
    got = [(m.key.decode(), orjson.loads(m.value)) for m in read_records(kafka.bootstrap, topic, 300)]
    assert got == [(r["id"], r) for r in records]


def test_a_prediction_is_logged_as_its_answer_with_the_features_and_time(kafka: KafkaServer, prefix: str):
    topic = f"{prefix}.predictions"
    answers = [
        {
            "model": "m",
            "version": 2,
            "id": f"id-{i}",
            "prediction": i % 2 == 0,
            "proba": {"false": 0.25, "true": 0.75},
        }
        for i in range(20)
    ]
    features = [{"a": i, "b\n": "x\ty\u00e9", "c": None, "d": 1.5e-9} for i in range(20)]
    log = PredictionLog(kafka.bootstrap, {})
    log.start()
    try:
        before = time.time()
        for answer, x in zip(answers, features, strict=True):
            log.submit_prediction(topic, answer["id"], orjson.dumps(answer), x)
        # a lone surrogate, which the route's parser lets by, cannot be serialised: dropped, counted
        log.submit_prediction(topic, "surrogate", orjson.dumps(answers[0]), {"a": "\ud800"})
        after = time.time()
        wait_until(lambda: log.sent == 20, timeout=60, what="records sent")
        assert log.dropped == 1
    finally:
        log.stop()
    got = [(m.key.decode(), orjson.loads(m.value)) for m in read_records(kafka.bootstrap, topic, 20)]
    assert [(key, {**record, "ts": None}) for key, record in got] == [
        (answer["id"], {**answer, "features": x, "ts": None})
        for answer, x in zip(answers, features, strict=True)
    ]
    assert all(before <= record["ts"] <= after for _, record in got)


def test_records_are_dropped_and_counted_while_kafka_is_unreachable():
    log = PredictionLog(f"127.0.0.1:{free_port()}", {}, max_queued=100)
    for i in range(150):  # before the thread runs: the deque holds 100, the rest are refused
        log.submit("t.predictions", str(i), {"i": i})
    assert log.dropped == 50
    log.start()
    try:
        wait_until(lambda: log.dropped == 150, timeout=60, what="drops counted by the producer process")
        assert log.sent == 0 and not log.connected
    finally:
        log.stop()
    assert not log._child.alive


def test_a_producer_process_that_dies_is_replaced(kafka: KafkaServer, prefix: str):
    topic = f"{prefix}.predictions"
    log = PredictionLog(kafka.bootstrap, {})
    log.start()
    try:
        log.submit(topic, "a", {"n": 1})
        wait_until(lambda: log.sent == 1, timeout=60, what="first record sent")
        first = log._child
        os.kill(first.pid, signal.SIGKILL)

        def delivered() -> bool:
            log.submit(topic, "b", {"n": 2})
            return log._child is not first and log.sent > 1

        wait_until(delivered, timeout=60, interval=0.5, what="a new producer process")
    finally:
        log.stop()


def test_readiness_tells_about_kafka_before_the_first_prediction(kafka: KafkaServer):
    log = PredictionLog(kafka.bootstrap, {})
    assert not log.connected
    log.start()
    try:
        wait_until(lambda: log.connected, timeout=60, what="the producer connected with no record logged")
        assert log.sent == 0 and log.dropped == 0
    finally:
        log.stop()
    assert not log._child.alive
