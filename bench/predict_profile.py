"""Where a /predict request's time goes inside the replica, step by step, without HTTP.

Each step of the fast path (api/fast_predict.py) is timed on its own in one interpreter,
over the same Phishing request, with a model trained on Phishing, StandardScaler |
LogisticRegression as in ``make bench``. Steps alternate from round to round so machine
noise hits them alike; each figure is the median over rounds of the mean per call. The
whole app is also called as uvicorn calls it (an ASGI scope, receive and send), so the
steps can be set against the sum. uvicorn's own share (HTTP parsing, the event loop,
the socket) is the bare ASGI baseline of ``make bench``; this script covers what is ours,
and last the CPU the prediction log's thread spends per record beside the requests.

Run: .venv/bin/python bench/predict_profile.py [--calls 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from river import datasets, linear_model, preprocessing
from starlette.middleware import Middleware

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api import responder as responder_module  # noqa: E402
from api.fast_predict import FastPredict, parse_body  # noqa: E402
from api.main import create_app  # noqa: E402
from api.manager import Served  # noqa: E402
from api.predicting import predict_features  # noqa: E402
from api.schemas import MAX_BODY_BYTES  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from bench.bare_asgi import app as bare_app  # noqa: E402
from model_store.snapshot import SnapshotMeta  # noqa: E402
from model_store.specs import ModelSpec  # noqa: E402

NAME = "live"


def trained_model() -> Any:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in itertools.islice(datasets.Phishing(), 1000):
        model.learn_one(x, y)
    return model


def spec(log_predictions: bool) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": NAME,
            "topic": NAME,
            "task": "classification",
            "pipeline": ["preprocessing.StandardScaler", {"linear_model.LogisticRegression": {}}],
            "metrics": ["Accuracy"],
            "delayed_labels": {"log_predictions": log_predictions},
        }
    )


def app_with_model(log_predictions: bool, model: Any, fast_predict: bool = True) -> Any:
    """The replica's app, its manager holding one served version; no lifespan, so the
    prediction log's thread and child never start (submit only queues: it is the request
    path's share that is timed)."""
    settings = ApiSettings(redis_url="redis://127.0.0.1:1/0", kafka_bootstrap_servers="127.0.0.1:1")
    app = create_app(settings, {NAME: spec(log_predictions)}, fast_predict=fast_predict)
    meta = SnapshotMeta(model=NAME, version=12, task="classification", topic=NAME, n_learned=1000)
    served = Served(NAME, 12, meta, model, False, time.time())
    app.state.manager._served = {NAME: served}
    if app.state.prediction_log is not None:
        app.state.prediction_log.max_queued = 10**9
    return app


def request(body: bytes) -> tuple[dict[str, Any], Callable, Callable]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/models/{NAME}/predict",
        "raw_path": f"/models/{NAME}/predict".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(_message: dict[str, Any]) -> None:
        return None

    return scope, receive, send


def inside_stack(model: Any, pending: Any) -> Any:
    """The fast path where it was: a middleware inside FastAPI's entry, Starlette's error
    middleware and the body size limit."""
    app = app_with_model(True, model, fast_predict=False)
    app.state.prediction_log._pending = pending
    app.user_middleware.append(
        Middleware(
            FastPredict,
            manager=app.state.manager,
            responder=app.state.responder,
            predict_key=None,
            max_bytes=MAX_BODY_BYTES,
        )
    )
    return app


def asgi_loop(app: Any, body: bytes, calls: int, pending: Any) -> Callable[[], None]:
    """``calls`` requests through ``app``; the log's queue emptied every 64, as its thread
    does every few milliseconds (a queue left to grow would time the garbage collector)."""
    scope, receive, send = request(body)

    async def many() -> None:
        for i in range(calls):
            await app(dict(scope), receive, send)
            if i & 63 == 0:
                pending.clear()

    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(many())


def steps(body: bytes, calls: int) -> dict[str, Callable[[], None]]:
    model = trained_model()
    logged, unlogged = app_with_model(True, model), app_with_model(False, model)
    served = logged.state.manager.get(NAME)
    features, id_, _ = parse_body(body)
    result = predict_features(model, "classification", features)
    responder = logged.state.responder
    prediction_log = logged.state.prediction_log
    monitor = logged.state.serving_monitor
    fast = FastPredict(
        _no_app, manager=logged.state.manager, responder=responder, predict_key=None, max_bytes=1 << 20
    )
    x = dict(features)
    range_ = range(calls)

    def loop(fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            for _ in range_:
                fn()

        return run

    pending = prediction_log._pending

    def log_many() -> None:
        for i in range_:
            responder.log(served, "id", features, result)
            if i & 63 == 0:
                pending.clear()

    found: dict[str, Callable[[], None]] = {
        "whole app, prediction log on (as uvicorn calls it)": asgi_loop(logged, body, calls, pending),
        "whole app, prediction log off": asgi_loop(unlogged, body, calls, pending),
        "FastPredict alone, log on": asgi_loop(fast, body, calls, pending),
        "bare ASGI app (bench/bare_asgi.py): the loop's own cost": asgi_loop(bare_app, body, calls, pending),
        "FastPredict inside FastAPI's middleware, as before": asgi_loop(
            inside_stack(model, pending), body, calls, pending
        ),
        "the pydantic route (fast path off)": asgi_loop(logged.through_stack, body, calls, pending),
        "orjson.loads of the body": loop(lambda: orjson.loads(body)),
        "parse_body (orjson.loads + checks)": loop(lambda: parse_body(body)),
        "River predict_proba_one": loop(lambda: model.predict_proba_one(x)),
        "predict_features (clean, predict_proba_one, argmax)": loop(
            lambda: predict_features(served.model, served.meta.task, features)
        ),
        "uuid.uuid4().hex": loop(lambda: uuid.uuid4().hex),
        "responder.new_id() (random prefix + counter)": loop(responder.new_id),
        "log record + submit": log_many,
        "monitor.observe": loop(lambda: monitor.observe(served, (features,), 0.0001)),
        "orjson.dumps of the answer": loop(
            lambda: orjson.dumps(
                {"model": NAME, "version": 12, "id": "0" * 32, **result}, option=responder_module.JSON_OPTS
            )
        ),
    }
    return found


def log_thread_cost(rate: float = 20_000, seconds: float = 3.0) -> float:
    """CPU microseconds per record of the prediction log's thread in the replica (serialise,
    write into the pipe), read from /proc for that thread alone, with records submitted at
    ``rate`` like a busy replica's. Its child process gets an address where no Kafka
    listens: it takes the batches all the same, and its own cost is bench/log_producers.py's."""
    from api.prediction_log import PredictionLog

    log = PredictionLog("127.0.0.1:9", {})
    log.start()
    try:
        time.sleep(1.0)  # the child is up
        x, _ = next(iter(datasets.Phishing()))
        stat = Path(f"/proc/self/task/{log._thread.native_id}/stat")

        def cpu() -> float:
            fields = stat.read_text().rpartition(")")[2].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        n, before, started = 0, cpu(), time.monotonic()
        while time.monotonic() - started < seconds:
            for _ in range(100):
                record = {"id": "0" * 32, "model": NAME, "version": 12, "features": x, "ts": time.time()}
                log.submit(f"{NAME}.predictions", "0" * 32, record | {"prediction": True})
            n += 100
            while time.monotonic() - started < n / rate:
                time.sleep(0.0005)
        time.sleep(0.05)
        return (cpu() - before) / n * 1e6
    finally:
        log.stop(0.5)


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the fast path handed a well-formed request on")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    x, _ = next(iter(datasets.Phishing()))
    body = orjson.dumps({"features": x})
    found = steps(body, args.calls)
    for fn in found.values():  # warm up
        fn()
    timings: dict[str, list[float]] = {k: [] for k in found}
    for i in range(args.rounds):
        order = list(found.items())
        for key, fn in order if i % 2 == 0 else reversed(order):
            started = time.perf_counter()
            fn()
            timings[key].append((time.perf_counter() - started) / args.calls)
    print(f"{'step':55s} {'us/call':>8s}  (min-max over {args.rounds} rounds)")
    for key, values in timings.items():
        med = statistics.median(values) * 1e6
        print(f"{key:55s} {med:8.2f}  ({min(values) * 1e6:.2f}-{max(values) * 1e6:.2f})")
    thread = [log_thread_cost() for _ in range(3)]
    spread = f"{min(thread):.2f}-{max(thread):.2f}"
    print(f"{'prediction log thread, per record, 20,000/s':55s} {statistics.median(thread):8.2f}  ({spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
