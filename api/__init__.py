"""The serving side: stateless FastAPI replicas that predict with the newest (or pinned) checkpoint.

Never imports ``stream``; needs no Kafka consumer and no trainer code.
"""
