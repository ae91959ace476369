"""The serving side's sub-commands of ``streamlearn``: serve, score.

Found by the shared CLI through an entry point (model_store/cli.py says why); only
argparse is imported here, each handler imports what it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from api.settings import ApiSettings
from model_store.cli import signed_settings
from model_store.records import SourceError
from model_store.store import CheckpointStore


def cmd_serve(args: argparse.Namespace) -> int:
    from api.main import serve

    settings = signed_settings(args, ApiSettings)
    serve(settings, args.host, args.port)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from api.score import score_file

    settings = signed_settings(args)
    store = CheckpointStore.from_settings(settings)
    key = settings.signing_key.get_secret_value().encode()
    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        version, scored, refused = score_file(
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


def register(sub: argparse._SubParsersAction) -> None:
    """Add the serving side's sub-commands to ``streamlearn``."""
    p = sub.add_parser("serve", help="run an API replica")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("score", help="batch-score a CSV/JSONL file with a retained version (JSON lines out)")
    p.add_argument("model")
    p.add_argument("file", help="FILE.csv or FILE.jsonl")
    p.add_argument("--version", type=int, help="version to use (default: the one replicas serve)")
    p.add_argument("--label-column", default="label", help="column ignored if present")
    p.add_argument("--output", "-o", help="write JSON lines here instead of stdout")
    p.set_defaults(func=cmd_score)
