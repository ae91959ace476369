"""``streamlearn``: one command for both sides, wiring only.

Each sub-command imports its side lazily, so a serving install (no ``stream``
dependencies) runs ``serve``/``versions``/``rollback`` and a training install
(no FastAPI) runs ``train``/``publish``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from model_store.records import SourceError
from model_store.settings import Settings
from model_store.specs import SpecError, load_specs
from model_store.store import CheckpointStore, VersionNotFound


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "models_dir", None):
        overrides["models_dir"] = Path(args.models_dir)
    return Settings(**overrides)


def _spec(settings: Settings, name: str):
    specs = load_specs(settings.models_dir)
    if name not in specs:
        raise SpecError(f"no model '{name}' in {settings.models_dir}; configured: {sorted(specs)}")
    return specs[name]


def _require_signing_key(settings: Settings) -> None:
    """Loading a pickle runs code: trainer and replicas must share a signing key."""
    if settings.signing_key is None or not settings.signing_key.get_secret_value():
        raise SpecError(
            "STREAMLEARN_SIGNING_KEY is not set: the trainer signs every checkpoint and replicas "
            "refuse unsigned ones; set the same secret on both sides (e.g. `openssl rand -hex 32`)"
        )


def cmd_train(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_signing_key(settings)
    trainer = importlib.import_module("stream.trainer")
    return trainer.run_trainer(_spec(settings, args.model), settings)


def cmd_rebuild(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_signing_key(settings)
    return importlib.import_module("stream.rebuild").rebuild_command(args, settings)


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


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_signing_key(settings)
    importlib.import_module("api.main").serve(settings, args.host, args.port)
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    return importlib.import_module("stream.cli").publish_command(args, _settings(args))


def cmd_demo(args: argparse.Namespace) -> int:
    return importlib.import_module("stream.demo").run_demo(args)


def cmd_train_all(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_signing_key(settings)
    heartbeat = Path(args.heartbeat) if args.heartbeat else None
    return importlib.import_module("stream.train_all").run_all(
        load_specs(settings.models_dir), settings, heartbeat
    )


def cmd_score(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _require_signing_key(settings)
    score = importlib.import_module("api.score")
    store = CheckpointStore.from_settings(settings)
    key = settings.signing_key.get_secret_value().encode()
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        version, scored, refused = score.score_file(
            store, args.model, Path(args.file), out, key, args.version, args.label_column
        )
    except (LookupError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.output:
            out.close()
    print(f"scored {scored} rows with {args.model} v{version}; {refused} refused", file=sys.stderr)
    return 0 if refused == 0 else 1


def _store(args: argparse.Namespace) -> CheckpointStore:
    settings = _settings(args)
    return CheckpointStore.from_settings(settings)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def cmd_status(args: argparse.Namespace) -> int:
    """Every configured model with the trainer that owns it, its epoch, lag and newest checkpoint."""
    settings = _settings(args)
    store = CheckpointStore.from_settings(settings)
    specs = load_specs(settings.models_dir)
    names = [args.model] if args.model else sorted(specs)
    if args.model:
        _spec(settings, args.model)
    print(f"{'model':20} {'owner':32} {'since (UTC)':19} {'epoch':>5} {'lag':>8}  last checkpoint")
    untrained = 0
    for name in names:
        status = store.trainer_status(name)
        latest = store.latest_version(name)
        if status is None:
            untrained += 1
            print(f"{name:20} {'NOBODY TRAINS IT':32} {'-':19} {'-':>5} {'-':>8}  {_version(latest)}")
            continue
        owner = f"{status.host} pid {status.pid}"
        lag = "-" if status.lag is None else str(status.lag)
        since = f"{status.since:%Y-%m-%d %H:%M:%S}"
        at = f" at {status.last_checkpoint_at:%H:%M:%S}" if status.last_checkpoint_at else ""
        print(f"{name:20} {owner:32} {since:19} {status.epoch:>5} {lag:>8}  {_version(latest)}{at}")
    return 1 if untrained else 0


def _version(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def cmd_versions(args: argparse.Namespace) -> int:
    store = _store(args)
    pointer = store.served_pointer(args.model)
    tags, held = store.tags(args.model), store.held(args.model)
    metas = store.list_versions(args.model)
    if not metas:
        print(f"model '{args.model}' has no versions")
        return 1
    if pointer.pinned:
        print(f"pinned to v{pointer.version}: {store.pin_reason(args.model) or 'no reason given'}")
    reset = store.reset_request(args.model)
    if reset is not None:
        print(f"reset to v{reset.version} requested, waiting for the trainer")
    print(f"{'version':>7} {'parent':>6} {'learned':>9}  {'created (UTC)':19}  metrics (rolling)")
    for m in reversed(metas):
        flags = [
            flag
            for flag, on in (
                ("SERVED", m.version == pointer.version),
                ("latest", m.version == pointer.latest),
                ("promoted", m.version == pointer.promoted),
                ("pinned", pointer.pinned and m.version == pointer.version),
                ("held", m.version in held),
            )
            if on
        ]
        if m.version in tags:
            flags.append(f"tag={tags[m.version]}")
        metrics = ", ".join(f"{k}={_fmt(v)} ({_fmt(m.rolling_metrics.get(k))})" for k, v in m.metrics.items())
        print(
            f"{m.version:>7} {m.parent if m.parent is not None else '-':>6} {m.n_learned:>9}  "
            f"{m.created_at:%Y-%m-%d %H:%M:%S}  {metrics}  {' '.join(flags)}"
        )
        if args.reasons and m.version in held:
            print(f"{'':>7} held: {held[m.version]}")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.mode == "pin":
        store.pin(args.model, args.to, reason=args.reason, by="cli")
        print(f"{args.model}: every replica now serves v{args.to} (pinned; `streamlearn unpin` to undo)")
        return 0
    store.request_reset(args.model, args.to, reason=args.reason, by="cli")
    print(
        f"{args.model}: reset to v{args.to} requested; the trainer continues from it, keeping its "
        f"Kafka offsets, and publishes a version with parent {args.to}"
    )
    return 0


def cmd_unpin(args: argparse.Namespace) -> int:
    was = _store(args).unpin(args.model, by="cli")
    pinned = f" (was pinned to v{was})" if was is not None else " (nothing was pinned)"
    print(f"{args.model}: replicas follow the promoted version again{pinned}")
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.remove:
        store.untag(args.model, args.version, by="cli")
        print(f"{args.model}: v{args.version} untagged")
        return 0
    if not args.label:
        print("error: give a LABEL, or --remove", file=sys.stderr)
        return 2
    store.tag(args.model, args.version, args.label, by="cli")
    print(f"{args.model}: v{args.version} tagged '{args.label}' (kept by retention)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamlearn", description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", help="directory of model YAMLs (default: $STREAMLEARN_MODELS_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="learn one model (or all) from Kafka, checkpointing to Redis")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model")
    # --all swaps the handler itself, so cmd_train stays the one-model path.
    which.add_argument(
        "--all",
        dest="func",
        action="store_const",
        const=cmd_train_all,
        help="every model in the models directory, one trainer thread each, in this process",
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

    p = sub.add_parser("serve", help="run an API replica")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

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

    p = sub.add_parser("score", help="batch-score a CSV/JSONL file with a retained version (JSON lines out)")
    p.add_argument("model")
    p.add_argument("file", help="FILE.csv or FILE.jsonl")
    p.add_argument("--version", type=int, help="version to use (default: the one replicas serve)")
    p.add_argument("--label-column", default="label", help="column ignored if present")
    p.add_argument("--output", "-o", help="write JSON lines here instead of stdout")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "status", help="which trainer owns each model (host, pid, since, epoch), its lag and last checkpoint"
    )
    p.add_argument("model", nargs="?", help="one model (default: every configured model)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "versions", help="list a model's retained versions: lineage, metrics, served/pinned/held/tags"
    )
    p.add_argument("model")
    p.add_argument("--reasons", action="store_true", help="also print why held versions were held")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("rollback", help="pin an earlier version on every replica, or reset the trainer to it")
    p.add_argument("model")
    p.add_argument("--to", type=int, required=True, help="version number")
    p.add_argument(
        "--mode",
        choices=["pin", "reset"],
        default="pin",
        help="pin: replicas serve it until unpinned; reset: the trainer continues learning from it",
    )
    p.add_argument("--reason", help="recorded with the change")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("unpin", help="let replicas follow the promoted (newest healthy) version again")
    p.add_argument("model")
    p.set_defaults(func=cmd_unpin)

    p = sub.add_parser("tag", help="label a version (tagged versions survive retention)")
    p.add_argument("model")
    p.add_argument("version", type=int)
    p.add_argument("label", nargs="?")
    p.add_argument("--remove", action="store_true", help="remove the version's label")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("demo", help="start Kafka, Redis, trainers and the API and stream a dataset")
    p.add_argument("--rate", type=float, default=25.0, help="events per second per model")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (SpecError, VersionNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
