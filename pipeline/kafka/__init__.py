"""Kafka in one place: topic names, the Settings → client configuration mapping, and clients.

``topics`` has no dependencies (the event catalog imports it); ``config`` turns a bootstrap list
into librdkafka, aiokafka and Faust settings; ``clients`` builds confluent-kafka/aiokafka clients
from it; ``producer`` is the asyncio face on the idempotent producer.
"""
