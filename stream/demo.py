"""``streamlearn demo``: the whole system on this machine, stopped by Ctrl-C.

Starts Kafka and Redis (local_services), one trainer per configured model and
one API replica as child processes, streams River's Phishing and TrumpApproval
datasets at a visible pace, and prints how prequential accuracy evolves. For each
model that logs its predictions (delayed labels), a second stream asks the API
for predictions and sends their labels a few seconds later, so the dashboard shows
the accuracy of served predictions next to the prequential curves.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson

from model_store.settings import Settings
from model_store.specs import load_specs
from stream.backoff import Backoff
from stream.local_services import CACHE, KafkaServer, RedisServer, free_port
from stream.publish import dataset_events, publish
from stream.replay_delayed import ApiUnavailable, replay_delayed

DATASETS = {"classification": "Phishing", "regression": "TrumpApproval"}
LABEL_DELAY_SECONDS = 3.0


def _get(url: str) -> dict | list | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return orjson.loads(r.read())
    except Exception:
        return None


def _forever(dataset: str) -> Iterator[dict]:
    """Replay a dataset again and again so the demo never runs dry."""
    while True:
        yield from dataset_events(dataset)


def _replay_delayed_forever(
    dataset: str, model: str, topic: str, bootstrap: str, api: str, rate: float, stop: threading.Event
) -> None:
    """Predictions through the API now, labels later; waits (and waits again) while the
    API has no version of the model to serve."""
    backoff = Backoff(first=2.0, longest=5.0)
    while not stop.is_set():
        try:
            replay_delayed(
                _forever(dataset),
                model,
                topic,
                bootstrap,
                api,
                LABEL_DELAY_SECONDS,
                rate,
                stop=stop,
                progress=False,
            )
        except ApiUnavailable:
            backoff.wait(stop)  # no version served yet, or the API restarts


def run_demo(args: argparse.Namespace) -> int:
    settings = Settings()
    specs = load_specs(settings.models_dir)
    work = CACHE / "demo"
    procs: list[subprocess.Popen] = []
    kafka = KafkaServer(work / "kafka", port=free_port())
    redis_ = RedisServer(work / "redis", port=free_port())
    stop = threading.Event()
    publishers: list[threading.Thread] = []
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print("starting Kafka (first run fetches its jars with Maven) ...", flush=True)
        kafka.start()
        redis_.start()
        print(f"Kafka on {kafka.bootstrap}, Redis on {redis_.url}", flush=True)
        env = {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap,
            "STREAMLEARN_REDIS_URL": redis_.url,
            "STREAMLEARN_MODELS_DIR": str(Path(settings.models_dir).resolve()),
            "STREAMLEARN_KEY_PREFIX": f"demo-{int(time.time())}",
            "STREAMLEARN_SIGNING_KEY": os.environ.get("STREAMLEARN_SIGNING_KEY") or secrets.token_hex(32),
        }
        exe = [sys.executable, "-m", "model_store.cli"]
        logs = work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        metrics_urls = []
        for name in specs:
            out = (logs / f"train-{name}.log").open("ab")
            metrics_port = free_port()  # one Prometheus port per trainer
            trainer_env = {
                **env,
                "STREAMLEARN_METRICS_PORT": str(metrics_port),
                "STREAMLEARN_METRICS_HOST": "127.0.0.1",
            }
            metrics_urls.append(f"http://127.0.0.1:{metrics_port}/metrics")
            procs.append(
                subprocess.Popen([*exe, "train", "--model", name], env=trainer_env, stdout=out, stderr=out)
            )
        out = (logs / "api.log").open("ab")
        procs.append(
            subprocess.Popen([*exe, "serve", "--port", str(args.port)], env=env, stdout=out, stderr=out)
        )
        base = f"http://127.0.0.1:{args.port}"
        for spec in specs.values():
            dataset = DATASETS[spec.task]
            t = threading.Thread(
                target=publish,
                args=(_forever(dataset), spec.topic, kafka.bootstrap, args.rate),
                kwargs={"progress": False, "stop": stop},
                daemon=True,
            )
            t.start()
            publishers.append(t)
            print(
                f"streaming River's {dataset} into '{spec.topic}' at {args.rate:g} events/s (looping)",
                flush=True,
            )
            if spec.delayed_labels.log_predictions:
                rate = max(args.rate / 5, 1.0)
                t = threading.Thread(
                    target=_replay_delayed_forever,
                    args=(dataset, spec.name, spec.topic, kafka.bootstrap, base, rate, stop),
                    daemon=True,
                )
                t.start()
                publishers.append(t)
                print(
                    f"and predicting '{spec.name}' through the API at {rate:g}/s, "
                    f"its labels {LABEL_DELAY_SECONDS:g} s later (delayed labels)",
                    flush=True,
                )
        first = next(iter(specs))
        cli_env = {
            k: env[k]
            for k in (
                "STREAMLEARN_REDIS_URL",
                "STREAMLEARN_KEY_PREFIX",
                "STREAMLEARN_SIGNING_KEY",
                "STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS",
                "STREAMLEARN_MODELS_DIR",
            )
        }
        print(
            "\nIn another shell, these point streamlearn at the demo's Redis, key prefix and Kafka\n"
            f"(then e.g. `streamlearn versions {first}`, `streamlearn rollback {first} --to N`):\n"
            + "".join(f"export {k}={shlex.quote(v)}\n" for k, v in cli_env.items()),
            flush=True,
        )
        print(
            f"\nAPI:        {base}/docs\n"
            f"models:     {base}/models\n"
            f"predict:    curl -s -X POST {base}/models/{first}/predict -H 'content-type: application/json' "
            f"-d '{{\"features\": {{...}}}}'\n"
            f"dashboard:  {base}/dashboard\n"
            f"monitors:   {base}/models/{first}/monitors\n"
            f"metrics:    {base}/metrics (API), {', '.join(metrics_urls)} (trainers)\n"
            f"logs:       {logs}\nCtrl-C stops everything.\n",
            flush=True,
        )
        while not stop.wait(3.0):
            for p in procs:
                if p.poll() is not None:
                    print(f"a child process exited ({p.args}); see {logs}", flush=True)
                    return 1
            models = _get(f"{base}/models") or []
            parts = []
            for m in models:
                detail = _get(f"{base}/models/{m['name']}") if m.get("version") else None
                if not detail:
                    parts.append(f"{m['name']}: waiting")
                    continue
                meta = detail["metadata"]
                main = specs[m["name"]].main_metric
                value = meta["metrics"].get(main)
                rolling = meta["rolling_metrics"].get(main)
                part = (
                    f"{m['name']} v{meta['version']}: {meta['n_learned']} learned, "
                    f"{main} {value:.3f} (last {specs[m['name']].rolling_window}: {rolling:.3f})"
                    if value is not None and rolling is not None
                    else f"{m['name']} v{meta['version']}: {meta['n_learned']} learned"
                )
                report = _get(f"{base}/models/{m['name']}/monitors?history=1") or {}
                served = report.get("served")
                if served and served.get("overall") is not None:
                    part += f", served {served['metric']} {served['overall']:.3f} ({served['n']} labelled)"
                parts.append(part)
            print(time.strftime("%H:%M:%S"), " | ".join(parts), flush=True)
        return 0
    finally:
        print("\nstopping ...", flush=True)
        stop.set()
        for t in publishers:
            t.join(timeout=10)
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_.stop()
        kafka.stop()
        print("stopped Kafka, Redis, trainers and the API", flush=True)
