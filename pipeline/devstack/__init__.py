"""Local dev services: real Kafka (KRaft) and Cassandra, fetched with Maven, run on loopback."""
