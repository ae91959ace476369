"""The root of the errors the training side raises on purpose (services that do not start,
a fetcher or checkpoint writer that failed, a rebuild refused, the API unreachable, an
event that cannot be learned): ``except StreamError`` catches those and nothing else."""

from __future__ import annotations


class StreamError(Exception):
    """Raised on purpose by stream; never a bug."""
