"""``streamlearn``: one command for both sides, wiring only.

This module holds the commands on the checkpoint store both sides share (status,
versions, rollback, unpin, tag) and the helpers every command uses. Each side adds its
own (``stream/commands.py``: train, rebuild, publish, demo; ``api/commands.py``: serve,
score) through the ``streamlearn.commands`` entry points of pyproject.toml, so this
shared layer never names either side, and a side's heavy imports happen only when one
of its commands runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import TypeVar

from model_store.leaderboard import ServedColumn, leaderboard
from model_store.settings import Settings
from model_store.specs import ModelSpec, SpecError, load_specs
from model_store.store import CheckpointStore, VersionNotFound

COMMANDS_GROUP = "streamlearn.commands"
"""Entry-point group of the functions ``register(subparsers)`` that add a side's commands."""


S = TypeVar("S", bound=Settings)


def settings_of(args: argparse.Namespace, kind: type[S] = Settings) -> S:
    """The process settings (``kind``: the shared ones, or a side's), with ``--models-dir``
    over the environment."""
    overrides = {}
    if getattr(args, "models_dir", None):
        overrides["models_dir"] = Path(args.models_dir)
    return kind(**overrides)


def spec_of(settings: Settings, name: str) -> ModelSpec:
    """The configured model ``name``; SpecError (exit 2, the same message everywhere) if unknown."""
    specs = load_specs(settings.models_dir)
    if name not in specs:
        raise SpecError(f"no model '{name}' in {settings.models_dir}; configured: {sorted(specs)}")
    return specs[name]


def require_signing_key(settings: Settings) -> None:
    """Loading a pickle runs code: trainer and replicas must share a signing key."""
    if settings.signing_key is None or not settings.signing_key.get_secret_value():
        raise SpecError(
            "STREAMLEARN_SIGNING_KEY is not set: the trainer signs every checkpoint and replicas "
            "refuse unsigned ones; set the same secret on both sides (e.g. `openssl rand -hex 32`)"
        )


def signed_settings(args: argparse.Namespace, kind: type[S] = Settings) -> S:
    """``settings_of`` for a command that writes or loads checkpoints: the signing key is required."""
    settings = settings_of(args, kind)
    require_signing_key(settings)
    return settings


def _store(args: argparse.Namespace) -> CheckpointStore:
    settings = settings_of(args)
    return CheckpointStore.from_settings(settings)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def cmd_status(args: argparse.Namespace) -> int:
    """Every configured model with the trainer that owns it, its epoch, lag and newest checkpoint."""
    settings = settings_of(args)
    store = CheckpointStore.from_settings(settings)
    specs = load_specs(settings.models_dir)
    names = [args.model] if args.model else sorted(specs)
    if args.model:
        spec_of(settings, args.model)
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
    full = [name for name in names if store.memory(name).full]
    memory = store.memory()
    if memory.maxmemory:
        print(f"checkpoint store: {memory}")
    for name in full:
        print(
            f"REDIS FULL: the next checkpoint of {name} does not fit in maxmemory (noeviction); lower its "
            "checkpoint.keep or checkpoint.max_bytes (retention then frees room by itself), unpin or untag "
            "versions, or raise maxmemory"
        )
    return 1 if untrained or full else 0


def _version(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Champion and challengers of the newest version, best first, with the paired test."""
    settings = settings_of(args)
    spec = spec_of(settings, args.model)
    store = CheckpointStore.from_settings(settings)
    latest = store.latest_version(spec.name)
    if latest is None:
        print(f"model '{spec.name}' has no versions")
        return 1
    board = leaderboard(store.meta(spec.name, latest), spec.main_metric)
    main = board.main_metric
    served = any(row.served is not None for row in board.rows)
    print(f"{spec.name} v{board.version}, main metric {main} (better: p < {board.significance:g})")
    head = f"{'':12} {'name':20} {main:>10} {'rolling':>10} {'learned':>9} {'vs champion':>12} {'p':>8}"
    if served:  # delayed labels: on the served requests whose labels joined
        head += f" {'served':>8} {'vs served':>10} {'joined':>7} {'p':>8}"
    print(head)
    for row in board.rows:
        diff = "-" if row.main_difference is None else f"{row.main_difference:+.4f}"
        p = "-" if not row.paired else f"{row.paired['p_value']:.3g}"
        verdict = {True: "BETTER", False: "worse", None: ""}[row.better]
        line = (
            f"{row.role:12} {row.name:20} {_fmt(row.metrics.get(main)):>10} "
            f"{_fmt(row.rolling_metrics.get(main)):>10} {row.n_learned:>9} {diff:>12} {p:>8}"
        )
        if served:
            line += " " + _served_cells(row.served)
        print(line + f" {verdict}".rstrip() + (f"  DISABLED: {row.error}" if row.error else ""))
    return 0


def _served_cells(served: ServedColumn | None) -> str:
    """The served column of one leaderboard row: value, difference to what was served, count, p."""
    if served is None:
        return f"{'-':>8} {'-':>10} {'-':>7} {'-':>8}"
    diff = "-" if served.difference is None else f"{served.difference:+.4f}"
    p = "-" if not served.paired or not served.n else f"{served.paired['p_value']:.3g}"
    verdict = {True: " BETTER", False: " worse", None: ""}[served.better]
    return f"{_fmt(served.value):>8} {diff:>10} {served.n:>7} {p:>8}{verdict}"


def cmd_promote(args: argparse.Namespace) -> int:
    """Ask the trainer to make a challenger the champion."""
    settings = settings_of(args)
    spec = spec_of(settings, args.model)
    store = CheckpointStore.from_settings(settings)
    latest = store.latest_version(spec.name)
    known = sorted(store.meta(spec.name, latest).challengers) if latest is not None else []
    if args.challenger not in known:
        raise SpecError(f"model '{spec.name}' has no challenger '{args.challenger}'; challengers: {known}")
    store.request_promotion(spec.name, args.challenger, reason=args.reason)
    print(f"{spec.name}: the trainer makes {args.challenger} the champion at its next version")
    return 0


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
    print(
        f"{'version':>7} {'parent':>6} {'learned':>9}  {'created (UTC)':19}  {'artefact':>9} {'training':>9}"
        "  metrics (rolling)"
    )
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
        if m.promotion:
            flags.append(f"champion={m.promotion['challenger']} (was {m.promotion.get('former')})")
        metrics = ", ".join(f"{k}={_fmt(v)} ({_fmt(m.rolling_metrics.get(k))})" for k, v in m.metrics.items())
        training = size(m.training_bytes) if m.is_split else "one blob"
        print(
            f"{m.version:>7} {m.parent if m.parent is not None else '-':>6} {m.n_learned:>9}  "
            f"{m.created_at:%Y-%m-%d %H:%M:%S}  {size(m.blob_bytes):>9} {training:>9}  "
            f"{metrics}  {' '.join(flags)}"
        )
        if args.reasons and m.version in held:
            print(f"{'':>7} held: {held[m.version]}")
    total = sum(m.total_bytes for m in metas)
    print(f"retained: {len(metas)} versions, {size(total)} in Redis (artefact and training state)")
    return 0


def size(n: int) -> str:
    """Bytes for people: 812 B, 1.6 kB, 25.0 MB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


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
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            register = entry.load()  # each side's commands (pyproject.toml)
        except ModuleNotFoundError:  # an image holding one side only: its commands are all there is
            continue
        register(sub)

    p = sub.add_parser(
        "status", help="which trainer owns each model (host, pid, since, epoch), its lag and last checkpoint"
    )
    p.add_argument("model", nargs="?", help="one model (default: every configured model)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "leaderboard", help="champion and challengers side by side, with a paired test of each against it"
    )
    p.add_argument("model")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("promote", help="make a challenger the champion (the trainer applies it at once)")
    p.add_argument("model")
    p.add_argument("challenger")
    p.add_argument("--reason", help="recorded with the change")
    p.set_defaults(func=cmd_promote)

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
