"""Configures the tracer and meter providers once per process; exporters chosen by Settings."""

from __future__ import annotations

import os

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from pipeline.config import Settings
from pipeline.telemetry.logs import configure_logging

__all__ = ["get_meter", "get_tracer", "setup", "shutdown"]

_state: dict = {}


def setup(service: str, settings: Settings, metrics_port: int | None = None,
          extra_readers: list[MetricReader] | None = None) -> None:
    """Install providers for ``service`` (e.g. ``camlog-bridge``); call once at process start.

    ``settings.telemetry`` lists exporters: ``console`` (stdout), ``otlp`` (HTTP to
    ``settings.otlp_endpoint``), ``prometheus`` (scrape endpoint on ``metrics_port``).
    """
    if _state:
        return
    configure_logging(service, settings.log_level)
    exporters = {p.strip() for p in settings.telemetry.split(",") if p.strip()} - {"none"}
    resource = Resource.create({
        "service.name": service, "service.namespace": "camlog",
        "deployment.region": settings.region, "process.pid": os.getpid(),
    })
    tp = TracerProvider(resource=resource)
    readers: list[MetricReader] = list(extra_readers or [])
    if "console" in exporters:
        tp.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), 30000))
    if "otlp" in exporters:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = settings.otlp_endpoint.rstrip("/")
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces")))
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{base}/v1/metrics")))
    port = metrics_port if metrics_port is not None else settings.metrics_port
    if "prometheus" in exporters or port:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import start_http_server

        readers.append(PrometheusMetricReader())
        if port:
            start_http_server(port, addr=settings.metrics_host)
    trace.set_tracer_provider(tp)
    mp = MeterProvider(resource=resource, metric_readers=readers)
    metrics.set_meter_provider(mp)
    _state.update(tracer_provider=tp, meter_provider=mp, service=service)


def shutdown() -> None:
    """Flush and stop exporters (call on process exit)."""
    tp, mp = _state.get("tracer_provider"), _state.get("meter_provider")
    if tp:
        tp.shutdown()
    if mp:
        mp.shutdown()


def get_tracer(name: str) -> trace.Tracer:
    """A tracer from the global provider (a no-op one until :func:`setup`)."""
    return trace.get_tracer(name)


def get_meter(name: str) -> metrics.Meter:
    """A meter from the global provider (a no-op one until :func:`setup`)."""
    return metrics.get_meter(name)
