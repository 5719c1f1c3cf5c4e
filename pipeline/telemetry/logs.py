"""Structured JSON log lines with the trace id, and redaction so secrets never reach a log."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

from opentelemetry import trace

__all__ = ["JsonFormatter", "RedactFilter", "configure_logging", "get_logger", "redact"]

# Bearer tokens, token query parameters and anything that looks like one of our signed tokens.
_SECRET_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)((?:token|secret|password)=)[^&\s\"']+"),
    re.compile(r"\bcl[dv]1\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWTs
    # user:password in a URL (camera RTSP URLs), up to the last @ before white space
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^\s@]*@"),
]


def redact(text: str) -> str:
    """Replace anything that looks like a credential with ``[redacted]``."""
    for pat in _SECRET_PATTERNS:
        text = pat.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactFilter(logging.Filter):
    """Scrubs credentials from every record before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message, trace/span ids, extras."""

    _SKIP = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def __init__(self, service: str = ""):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "component": record.name,
            "msg": redact(record.getMessage()),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = f"{ctx.trace_id:032x}"
            out["span_id"] = f"{ctx.span_id:016x}"
        for k, v in vars(record).items():
            if k not in self._SKIP and not k.startswith("_"):
                out[k] = v if isinstance(v, (int, float, bool, type(None))) else redact(str(v))
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, separators=(",", ":"))


def configure_logging(service: str, level: str = "INFO", stream=None) -> None:
    """Route the root logger to JSON lines on stderr (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_camlog", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._camlog = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RedactFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("cassandra", "aiokafka", "faust", "mode", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def get_logger(name: str) -> logging.Logger:
    """A logger whose records pass the redaction filter wherever they are handled."""
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactFilter) for f in log.filters):
        log.addFilter(RedactFilter())
    return log
