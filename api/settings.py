"""An API replica's settings: the shared ones (model_store.settings) and those only a
replica reads (its keys, its fallback poll of Redis)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from model_store.settings import Settings


class ApiSettings(Settings):
    """Environment ``STREAMLEARN_*`` (over the optional YAML file), as the shared settings."""

    admin_key: SecretStr | None = Field(
        default=None, description="Needed (X-API-Key or Bearer) by rollback, pin, tag and promote"
    )
    predict_key: SecretStr | None = Field(
        default=None, description="When set, prediction endpoints need it (X-API-Key or Bearer)"
    )
    poll_interval_seconds: float = Field(
        default=2.0, gt=0, description="API fallback poll of Redis when a pub/sub message is lost."
    )
