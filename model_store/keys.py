"""Every Redis key and channel name, built in this one place (layout: docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelKeys:
    """Keys of one model under a deployment-wide prefix."""

    prefix: str
    model: str

    def _k(self, suffix: str) -> str:
        return f"{self.prefix}:model:{self.model}:{suffix}"

    @property
    def next_version(self) -> str:
        """Counter INCRed to allocate a version number (never reused)."""
        return self._k("next_version")

    @property
    def versions(self) -> str:
        """Sorted set of retained version numbers (score = version)."""
        return self._k("versions")

    @property
    def latest(self) -> str:
        """Newest published version number."""
        return self._k("latest")

    @property
    def pinned(self) -> str:
        """Version every replica serves instead of latest, when set."""
        return self._k("pinned")

    @property
    def promoted(self) -> str:
        """Newest version the promotion gate let through; served when nothing is pinned."""
        return self._k("promoted")

    @property
    def held(self) -> str:
        """Hash version -> why the promotion gate held it back (recorded, not served)."""
        return self._k("held")

    @property
    def pin_reason(self) -> str:
        """Why the current pin was set (operator's reason or the auto-rollback policy's)."""
        return self._k("pin_reason")

    @property
    def promote_request(self) -> str:
        """A pending promotion for the trainer: JSON {id, challenger, reason, by, requested_at}."""
        return self._k("promote_request")

    @property
    def reset_request(self) -> str:
        """A pending reset for the trainer: JSON {id, version, reason, by, requested_at}."""
        return self._k("reset_request")

    @property
    def audit(self) -> str:
        """Capped stream of pointer changes: pin, unpin, reset, tag, untag, and who asked why."""
        return self._k("audit")

    @property
    def tags(self) -> str:
        """Hash version -> label; tagged versions survive retention."""
        return self._k("tags")

    @property
    def sizes(self) -> str:
        """Hash version -> bytes the version holds (both parts): what the byte budget sums."""
        return self._k("sizes")

    @property
    def channel(self) -> str:
        """Pub/sub channel announcing new versions, pins and resets."""
        return self._k("events")

    @property
    def metrics_stream(self) -> str:
        """Capped stream of metric points for dashboards."""
        return self._k("metrics")

    @property
    def lease(self) -> str:
        """JSON of the trainer that owns the model (owner id, host, pid, since, epoch), with a
        TTL its owner renews; gone when nobody trains the model (model_store/leases.py)."""
        return self._k("lease")

    @property
    def epoch(self) -> str:
        """Fencing epoch: INCRed at every lease grant; a version is written only by the
        trainer whose lease carries the current one."""
        return self._k("epoch")

    def meta(self, version: int) -> str:
        """SnapshotMeta JSON of one version."""
        return self._k(f"v:{version}:meta")

    def blob(self, version: int) -> str:
        """The serving artefact (pickled ``{"model": pipeline}``), all a replica reads; in a
        snapshot written before the split, the whole state."""
        return self._k(f"v:{version}:blob")

    def training(self, version: int) -> str:
        """The training state (pickled metrics, monitors, join state, served scores): read
        by the trainer only; absent in a snapshot written before the split."""
        return self._k(f"v:{version}:training")

    def version_keys(self, version: int) -> tuple[str, str, str]:
        """Every key one version occupies: what retention deletes."""
        return self.meta(version), self.blob(version), self.training(version)


def fleet_members(prefix: str) -> str:
    """Sorted set of live ``train --all`` processes: member id -> the Redis time (ms) its
    membership expires at unless renewed; the models are shared out among the live ones."""
    return f"{prefix}:trainers"


def models_index(prefix: str) -> str:
    """Set of model names that have published at least one version."""
    return f"{prefix}:models"
