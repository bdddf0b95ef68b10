"""Kafka plumbing with public client APIs only: topics, producers, the embedded broker."""
