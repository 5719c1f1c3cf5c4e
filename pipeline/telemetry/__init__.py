"""OpenTelemetry traces and metrics, Kafka header propagation and JSON logs for every process."""

from pipeline.telemetry.headers import extract_context, inject_headers
from pipeline.telemetry.logs import get_logger
from pipeline.telemetry.setup import get_meter, get_tracer, setup, shutdown

__all__ = ["setup", "shutdown", "get_tracer", "get_meter", "inject_headers", "extract_context",
           "get_logger"]
