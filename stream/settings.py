"""The trainer's settings: the shared ones (model_store.settings) and those only a trainer,
a fleet or ``streamlearn rebuild`` reads (its lease, its Prometheus endpoint)."""

from __future__ import annotations

from pydantic import Field

from model_store.settings import Settings


class TrainerSettings(Settings):
    """Environment ``STREAMLEARN_*`` (over the optional YAML file), as the shared settings."""

    trainer_lease_seconds: float = Field(
        default=6.0,
        gt=0,
        description="TTL of a trainer's lease on its model: a standby takes over this long after "
        "the owner died or was cut off.",
    )
    trainer_lease_renew_seconds: float | None = Field(
        default=None, gt=0, description="How often the owner renews its lease (default: a third of the TTL)."
    )
    metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="Trainer's Prometheus port; 0 disables it."
    )
    metrics_host: str = Field(
        default="0.0.0.0", description="Address the trainer's Prometheus endpoint listens on."
    )
