"""OpenTelemetry traces and metrics, Kafka header propagation and JSON logs for every process."""

from pipeline.telemetry.headers import extract_context, inject_headers
from pipeline.telemetry.logs import get_logger
from pipeline.telemetry.setup import get_meter, get_tracer, setup, shutdown

__all__ = [
           "extract_context",
           "get_logger",
           "get_meter",
           "get_tracer",
           "inject_headers",
           "setup",
           "shutdown",
]
