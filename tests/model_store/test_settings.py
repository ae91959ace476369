from model_store.settings import Settings


def test_defaults_follow_the_spec(monkeypatch):
    for var in ("STREAMLEARN_KAFKA_BOOTSTRAP_SERVERS", "STREAMLEARN_REDIS_URL", "STREAMLEARN_MODELS_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert str(s.models_dir) == "configs/models"
    assert s.kafka_client_options() == {}


def test_environment_overrides_the_yaml_file(monkeypatch, tmp_path):
    config = tmp_path / "streamlearn.yaml"
    config.write_text("redis_url: redis://from-yaml:6379/0\nkey_prefix: from-yaml\n")
    monkeypatch.setenv("STREAMLEARN_CONFIG_FILE", str(config))
    monkeypatch.setenv("STREAMLEARN_REDIS_URL", "redis://from-env:6379/0")
    s = Settings()
    assert s.redis_url == "redis://from-env:6379/0"
    assert s.key_prefix == "from-yaml"


def test_kafka_security_settings_reach_the_clients_and_secrets_stay_hidden(monkeypatch):
    monkeypatch.setenv("STREAMLEARN_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMLEARN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("STREAMLEARN_KAFKA_SASL_USERNAME", "trainer")
    monkeypatch.setenv("STREAMLEARN_KAFKA_SASL_PASSWORD", "kafka-pass-123")
    monkeypatch.setenv("STREAMLEARN_SIGNING_KEY", "sign-key-456")
    monkeypatch.setenv("STREAMLEARN_ADMIN_KEY", "admin-key-789")
    s = Settings()
    assert s.kafka_client_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "trainer",
        "sasl_plain_password": "kafka-pass-123",
    }
    assert s.librdkafka_options() == {  # the prediction log's producer (confluent-kafka)
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "trainer",
        "sasl.password": "kafka-pass-123",
    }
    shown = repr(s) + str(s) + s.model_dump_json()
    for secret in ("kafka-pass-123", "sign-key-456", "admin-key-789"):
        assert secret not in shown


def test_kafka_cluster_ids_never_look_like_an_option():
    from stream.local_services import kafka_cluster_id

    ids = [kafka_cluster_id() for _ in range(2000)]  # about 30 would start with '-' by chance
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids) and len(set(ids)) == len(ids)


def test_each_side_reads_its_own_settings_over_the_shared_ones(monkeypatch):
    from api.settings import ApiSettings
    from stream.settings import TrainerSettings

    monkeypatch.setenv("STREAMLEARN_KEY_PREFIX", "shared")
    monkeypatch.setenv("STREAMLEARN_METRICS_PORT", "9200")
    monkeypatch.setenv("STREAMLEARN_POLL_INTERVAL_SECONDS", "0.5")
    trainer, api = TrainerSettings(), ApiSettings()
    assert trainer.key_prefix == api.key_prefix == "shared"
    assert trainer.metrics_port == 9200 and api.poll_interval_seconds == 0.5
    shared = set(Settings.model_fields)
    assert shared < set(TrainerSettings.model_fields) and shared < set(ApiSettings.model_fields)
    # a field one side reads is not the other's, nor the shared layer's
    assert not {"metrics_port", "trainer_lease_seconds"} & (set(ApiSettings.model_fields) | shared)
    assert not {"admin_key", "predict_key", "poll_interval_seconds"} & (
        set(TrainerSettings.model_fields) | shared
    )
