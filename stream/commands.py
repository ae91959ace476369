"""The training side's sub-commands of ``streamlearn``: train, rebuild, publish, demo.

Found by the shared CLI through an entry point (model_store/cli.py says why); only
argparse is imported here, each handler imports what it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from model_store.cli import settings_of, signed_settings, spec_of
from model_store.specs import load_specs
from stream.settings import TrainerSettings


def cmd_train(args: argparse.Namespace) -> int:
    from stream.trainer import run_trainer

    settings = signed_settings(args, TrainerSettings)
    return run_trainer(spec_of(settings, args.model), settings)


def cmd_train_all(args: argparse.Namespace) -> int:
    from stream.fleet import run_fleet

    settings = signed_settings(args, TrainerSettings)
    heartbeat = Path(args.heartbeat) if args.heartbeat else None
    return run_fleet(load_specs(settings.models_dir), settings, heartbeat)


def cmd_rebuild(args: argparse.Namespace) -> int:
    from stream.rebuild import rebuild_command

    settings = signed_settings(args, TrainerSettings)
    return rebuild_command(args, settings, spec_of(settings, args.model))


def cmd_publish(args: argparse.Namespace) -> int:
    from stream.cli import publish_command

    settings = settings_of(args)
    return publish_command(args, settings, spec_of(settings, args.model))


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(args)


def _from_offset(value: str) -> int | None:
    """``earliest`` (None: the oldest retained offset) or an offset >= 0."""
    if value == "earliest":
        return None
    try:
        offset = int(value)
    except ValueError:
        offset = -1
    if offset < 0:
        raise argparse.ArgumentTypeError(f"expected 'earliest' or an offset >= 0, got {value!r}")
    return offset


def register(sub: argparse._SubParsersAction) -> None:
    """Add the training side's sub-commands to ``streamlearn``."""
    p = sub.add_parser("train", help="learn one model (or all) from Kafka, checkpointing to Redis")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model")
    # --all swaps the handler itself, so cmd_train stays the one-model path.
    which.add_argument(
        "--all",
        dest="func",
        action="store_const",
        const=cmd_train_all,
        help="this process's share of the models (ceil(M / N) among N train --all processes), "
        "each in a worker process of its own",
    )
    p.add_argument(
        "--heartbeat",
        metavar="FILE",
        help="with --all: file touched every few seconds while every trainer runs (for healthchecks)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "rebuild",
        help="re-learn a model from its topic's retained events with this River and Python (new lineage)",
        description="Re-learn MODEL test-then-train from its topic's retained events, up to the high "
        "watermarks seen at the start, with the River and Python of this install, and publish the "
        "result as a new lineage (parent none, rebuilt_from in its metadata; the old versions stay "
        "until retention). A trainer started afterwards resumes right after the rebuilt events. "
        "Refuses while a trainer runs the model (exit status 75). Runbook: docs/operations.md.",
    )
    p.add_argument("model")
    p.add_argument(
        "--from-offset",
        type=_from_offset,
        default=None,
        metavar="earliest|N",
        help="first offset to re-learn on every partition (default: earliest retained)",
    )
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("publish", help="replay a CSV/JSONL file or a River dataset into a model's topic")
    p.add_argument("--model", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("file", nargs="?", help="FILE.csv or FILE.jsonl")
    src.add_argument("--dataset", help="a River dataset, e.g. Phishing, Bananas, TrumpApproval")
    p.add_argument("--label-column", default="label")
    p.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    p.add_argument("--limit", type=int, help="stop after N events")
    p.add_argument(
        "--delayed-labels",
        action="store_true",
        help="ask the API for each prediction now and publish only the label later (label-only events)",
    )
    p.add_argument("--api", default="http://127.0.0.1:8000", help="API base URL for --delayed-labels")
    p.add_argument("--label-delay", type=float, default=5.0, help="seconds between prediction and label")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("demo", help="start Kafka, Redis, trainers and the API and stream a dataset")
    p.add_argument("--rate", type=float, default=25.0, help="events per second per model")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)
