"""Process settings: environment (prefix ``STREAMLEARN_``) over an optional YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)


class Settings(BaseSettings):
    """What every process needs to find its services and agree on checkpoints: Kafka, Redis,
    the models' YAML, the key prefix and the signing key. Each side adds its own settings
    (stream.settings.TrainerSettings, api.settings.ApiSettings); the shared commands need
    only these."""

    model_config = SettingsConfigDict(env_prefix="STREAMLEARN_", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinels: str | None = Field(
        default=None,
        description="host:port,host:port of Redis Sentinels: the primary is found (and found again "
        "after a failover) through them; redis_url then gives only db, username, password and TLS",
    )
    redis_sentinel_master: str = Field(
        default="mymaster", description="Name under which the Sentinels monitor the primary"
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="Password of the Sentinels themselves (requirepass in sentinel.conf)"
    )
    models_dir: Path = Path("configs/models")
    key_prefix: str = Field(
        default="streamlearn",
        description="Prefix of every Redis key and channel, so several deployments share a Redis.",
    )
    signing_key: SecretStr | None = None
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="CA bundle to verify the brokers")
    config_file: Path | None = Field(
        default=None, description="Optional YAML file read under the environment."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        yaml_path = env_settings().get("config_file") or init_settings().get("config_file")
        if yaml_path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(yaml_path)))
        return tuple(sources)

    def kafka_client_options(self) -> dict[str, Any]:
        """Security keyword arguments for every kafka-python client (empty for PLAINTEXT)."""
        options: dict[str, Any] = {}
        if self.kafka_security_protocol != "PLAINTEXT":
            options["security_protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            options["ssl_cafile"] = str(self.kafka_ssl_cafile)
        return options

    def librdkafka_options(self) -> dict[str, Any]:
        """The same security settings in librdkafka's names (confluent-kafka's clients)."""
        names = {
            "security_protocol": "security.protocol",
            "sasl_mechanism": "sasl.mechanism",
            "sasl_plain_username": "sasl.username",
            "sasl_plain_password": "sasl.password",
            "ssl_cafile": "ssl.ca.location",
        }
        return {names[k]: v for k, v in self.kafka_client_options().items() if v is not None}
