"""What a worker does with an error no retry fixes: it stops, so nothing is committed past it.

Offsets of ``camlog.frames`` and of the view topics are only ever committed behind work that is
stored (``acks.AckBook``, manual acks after each batch). A store that is merely unavailable is
waited for (``store.cluster.patiently``); anything else — a bug, a schema the code does not
match — ends the process at once, before Faust could ack or commit anything more, and the
restarted worker (systemd, Kubernetes, ``camlog demo``) resumes from the committed offsets.
Crash-only: the same path as a SIGKILL, which the exactly-once tests already exercise.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable

from pipeline.telemetry import get_logger

__all__ = ["EXIT_UNRECOVERABLE", "KAFKA_TRANSIENT", "Fatal", "stop_worker"]

#: Exit status of a worker stopped by an unrecoverable error (EX_SOFTWARE).
EXIT_UNRECOVERABLE = 70

#: What a component calls with an unrecoverable error; injected so tests can record it.
Fatal = Callable[[BaseException, str], None]

_log = get_logger("camlog.worker")


def _kafka_errors() -> tuple[type[BaseException], ...]:
    from aiokafka.errors import KafkaError

    return (KafkaError, TimeoutError, ConnectionError)


#: Errors of a produce that mean "Kafka is not answering now": retried until it answers.
KAFKA_TRANSIENT = _kafka_errors()


def stop_worker(exc: BaseException, where: str) -> None:
    """Log ``exc`` with its traceback and end the process now (no ack, no commit, no cleanup)."""
    detail = "".join(traceback.format_exception(exc))[-4000:]
    _log.critical("unrecoverable error; the worker stops and resumes from committed offsets",
                  extra={"where": where, "error": repr(exc)[:500], "traceback": detail})
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_UNRECOVERABLE)
