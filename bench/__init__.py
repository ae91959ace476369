"""Benchmarks of the running system (``make bench``) and of the drift monitors (``make bench-drift``).

The service benchmark drives only public surfaces (the ``streamlearn`` CLI, model YAMLs,
Kafka topics, HTTP routes, Prometheus ``/metrics`` and the checkpoint store's API), so
it keeps measuring whatever the trainer and the API become.
"""
