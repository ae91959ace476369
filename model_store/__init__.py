"""Versioned River checkpoints in Redis, shared by the trainer and the API.

Also home of the contracts both sides speak: the Kafka event, the snapshot
metadata, the model specs and the settings.
"""
