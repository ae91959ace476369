"""Nothing secret reaches the logs of the trainer or a replica."""

import httpx

from stream.publish import publish
from tests.helpers.processes import SIGNING_KEY, Env, wait_until, write_spec


def test_keys_never_appear_in_logs(env: Env, store, port):
    name = env.key_prefix
    write_spec(env.models_dir, name=name, topic=name)
    admin_key = "admin-secret-never-logged"
    env.start("trainer", "-v", "train", "--model", name, STREAMLEARN_ADMIN_KEY=admin_key)
    env.start_api(port, STREAMLEARN_ADMIN_KEY=admin_key)
    publish(
        [{"features": {"a": float(i)}, "label": i % 2 == 0} for i in range(150)],
        name,
        env.kafka,
        progress=False,
    )
    wait_until(lambda: (m := store.fetch_latest(name)) and m[0].n_learned == 150, timeout=60, what="learning")
    wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, timeout=30)
    logs = env.log("trainer") + env.log(f"api-{port}")
    assert "v1" in logs or "serving" in logs  # the logs are real and non-empty
    assert SIGNING_KEY not in logs
    assert admin_key not in logs
