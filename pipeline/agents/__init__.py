"""Faust wiring only: agents move events between Kafka, the pure core and the stores."""
