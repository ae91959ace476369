"""`streamlearn publish`, called by stream/commands.py (wiring only)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model_store.records import SourceError
from model_store.settings import Settings
from model_store.specs import ModelSpec
from stream.publish import dataset_events, dataset_size, file_events, publish
from stream.replay_delayed import ApiUnavailable, replay_delayed


def publish_command(args: argparse.Namespace, settings: Settings, spec: ModelSpec) -> int:
    total = None
    try:
        if args.dataset:
            events, total = dataset_events(args.dataset), dataset_size(args.dataset)
        else:
            events = file_events(Path(args.file), args.label_column)
        if args.delayed_labels:
            predicted, labels = replay_delayed(
                events,
                spec.name,
                spec.topic,
                settings.kafka_bootstrap_servers,
                args.api,
                args.label_delay,
                args.rate,
                args.limit,
                client_options=settings.kafka_client_options(),
            )
            print(f"{predicted} predictions from {args.api}, {labels} labels to {spec.topic}")
            return 0
        sent = publish(
            events,
            spec.topic,
            settings.kafka_bootstrap_servers,
            args.rate,
            args.limit,
            total,
            partitions=spec.partitions,
            client_options=settings.kafka_client_options(),
        )
    except (SourceError, ApiUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {sent} events to {spec.topic}")
    return 0
