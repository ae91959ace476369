"""The root of the errors the shared layer raises on purpose: ``except ModelStoreError``
catches a bad spec, a bad event source, a store refusal, a fenced write or a snapshot
this process cannot load, and nothing else. Each also derives from the builtin it
replaces (ValueError, RuntimeError), so callers written against those keep working."""

from __future__ import annotations


class ModelStoreError(Exception):
    """Raised on purpose by model_store; never a bug."""
