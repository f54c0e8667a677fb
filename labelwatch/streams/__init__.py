"""Kafka side: the Faust app factory, topics, the thin agents and the producer helpers."""
