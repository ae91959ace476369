"""The training side: consume labeled events from Kafka, learn with River, checkpoint to Redis."""
