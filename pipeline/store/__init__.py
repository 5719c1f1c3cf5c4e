"""Cassandra access: one module per table family; ``cluster.connect`` makes the session."""
