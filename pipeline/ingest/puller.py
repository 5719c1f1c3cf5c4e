"""Pullers: processes that share the cameras of ``camlog.cameras`` through a Kafka consumer group.

Each puller owns some partitions of the compacted registry topic and pulls the cameras in them
(``CameraPull`` each, supervised); on a rebalance, the revoke callback stops the revoked
partitions' pulls (and their sessions end) *before* the group hands them on, so no camera is
pulled by two pullers at once; a puller that dies stops heart-beating and its partitions move to
the others after the group's session timeout. ``PullHost`` is shared with ``camlog pull``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CamlogError
from pipeline.events import decode
from pipeline.events.codec import DecodeError
from pipeline.ingest.bridge import Bridge
from pipeline.ingest.registry import CameraRegistry, CameraSpec
from pipeline.ingest.rtsp import CameraPull, PullOptions
from pipeline.kafka import topics
from pipeline.kafka.config import consumer_config
from pipeline.kafka.producer import EventProducer
from pipeline.telemetry import get_logger, get_meter

__all__ = ["PullHost", "Puller"]

_STOP_S = 10.0  # a pull's own shutdown (flush its chunks, DISCONNECTED) takes at most this
_log = get_logger("camlog.puller")
_meter = get_meter("camlog.puller")
_crashes = _meter.create_counter("camlog.puller.crashes", description="pull tasks that failed")
_bad = _meter.create_counter("camlog.puller.bad_records", description="unreadable CameraConfig")


class PullHost:
    """One producer and bridge shared by every camera this process pulls; tasks supervised."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.producer = EventProducer(settings.kafka, extra={"client.id": "camlog-puller"})
        self.bridge = Bridge(self.producer, idle_timeout_s=settings.idle_timeout_s)
        self.tasks: dict[str, tuple[CameraSpec, asyncio.Task]] = {}
        self.pulls: dict[str, CameraPull] = {}  # the running pull of each camera (its stats)

    async def start(self) -> None:
        """Connect the producer."""
        await self.producer.start()

    def pull(self, spec: CameraSpec) -> None:
        """Start pulling ``spec`` (a running pull of the same camera must be stopped first)."""
        opts = PullOptions.from_settings(self.settings, spec.transport)
        task = asyncio.create_task(self._supervise(spec, opts), name=f"pull-{spec.camera_id}")
        self.tasks[spec.camera_id] = (spec, task)

    async def _supervise(self, spec: CameraSpec, opts: PullOptions) -> None:
        """Run the pull; an unexpected failure is logged, counted and restarted after the cap."""
        while True:
            pull = self.pulls[spec.camera_id] = CameraPull(self.bridge, spec.camera_id,
                                                           spec.url, opts)
            try:
                await pull.run()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug, not a camera problem (those reconnect inside run)
                _crashes.add(1, {"camera": spec.camera_id})
                _log.exception("camera %s: pull failed; restarting in %.0fs", spec.camera_id,
                               opts.backoff_cap_s)
                await asyncio.sleep(opts.backoff_cap_s)

    async def stop(self, camera_id: str) -> None:
        """Stop one pull and wait (bounded) until its session has ended."""
        entry = self.tasks.pop(camera_id, None)
        if entry is None:
            return
        task = entry[1]
        task.cancel()
        await asyncio.wait([task], timeout=_STOP_S)
        self.pulls.pop(camera_id, None)
        _log.info("camera %s: pull stopped", camera_id)

    async def reconcile(self, wanted: dict[str, CameraSpec]) -> None:
        """Pull exactly ``wanted``: stop the others, restart changed ones, start new ones."""
        gone = [c for c, (spec, _) in self.tasks.items() if wanted.get(c) != spec]
        await asyncio.gather(*(self.stop(cid) for cid in gone))
        for cid, spec in wanted.items():
            if cid not in self.tasks:
                _log.info("camera %s: pulling", cid)
                self.pull(spec)

    async def close(self) -> None:
        """Stop every pull, then flush the producer."""
        await self.reconcile({})
        await self.producer.close()


class Puller:
    """A member of the pullers' consumer group on ``camlog.cameras``."""

    def __init__(self, settings: Settings, group: str = "camlog-pullers", name: str = ""):
        self.settings, self.group, self.name = settings, group, name
        self.host = PullHost(settings)
        self.registry = CameraRegistry()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None  # what ended the consumer thread early

    def _consumer_config(self) -> dict[str, Any]:
        session_ms = int(self.settings.puller_session_timeout_s * 1000)
        return consumer_config(self.settings.kafka, self.group, **{
            "client.id": f"camlog-puller-{self.name}" if self.name else "camlog-puller",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": True, "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(500, session_ms // 5),
            "partition.assignment.strategy": "roundrobin",
        })

    async def run(self, stop: asyncio.Event) -> None:
        """Pull the cameras of the partitions this member owns until ``stop`` is set."""
        self._loop = asyncio.get_running_loop()
        await self.host.start()
        thread = threading.Thread(target=self._consume, name="cameras-consumer", daemon=True)
        thread.start()
        try:
            while not stop.is_set() and thread.is_alive():
                await asyncio.wait([asyncio.ensure_future(stop.wait())], timeout=0.5)
        finally:
            self._stop.set()
            await asyncio.to_thread(thread.join, _STOP_S + 5)
            await self.host.close()
        if self._failure is not None:
            raise CamlogError(f"the cameras consumer failed: {self._failure}") from self._failure

    def _call(self, coro: Any) -> None:
        """Run ``coro`` on the loop from the consumer thread and wait for it (bounded)."""
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(_STOP_S * 3)

    async def _apply(self, msgs: list[Any]) -> None:
        for msg in msgs:
            if msg.error():
                if msg.error().code() == -191:  # KafkaError._PARTITION_EOF
                    self.registry.reached_end(msg.partition())
                else:
                    _log.warning("cameras consumer: %s", msg.error())
                continue
            key = (msg.key() or b"").decode(errors="replace")
            spec = None
            if msg.value() is not None:
                try:
                    spec = CameraSpec.from_record(decode("CameraConfig", msg.value()))
                except DecodeError as exc:
                    _bad.add(1)
                    _log.error("camlog.cameras partition %d offset %d unreadable (%s); skipped",
                               msg.partition(), msg.offset(), exc)
                    continue
            self.registry.apply(msg.partition(), msg.offset(), key, spec)
        await self.host.reconcile(self.registry.wanted())

    async def _assigned(self, ends: dict[int, int]) -> None:
        for p, end in ends.items():
            self.registry.assign(p, end)
        _log.info("puller %s: assigned partitions %s", self.name, sorted(self.registry.owned))
        await self.host.reconcile(self.registry.wanted())

    async def _revoked(self, parts: list[int]) -> None:
        for p in parts:
            self.registry.revoke(p)
        await self.host.reconcile(self.registry.wanted())
        _log.info("puller %s: revoked partitions %s", self.name, sorted(parts))

    def _consume(self) -> None:
        """Consumer thread; a failure is kept for ``run`` to raise (after stopping every pull)."""
        try:
            self._consume_until_stopped()
        except BaseException as exc:  # re-raised by run()
            self._failure = exc

    def _consume_until_stopped(self) -> None:
        """Poll, and run the rebalance callbacks to completion on the loop."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(self._consumer_config())

        def on_assign(c: Any, parts: list[Any]) -> None:
            ends = {tp.partition: c.get_watermark_offsets(
                TopicPartition(topics.CAMERAS, tp.partition), timeout=10)[1] for tp in parts}
            self._call(self._assigned(ends))
            c.assign([TopicPartition(topics.CAMERAS, tp.partition, OFFSET_BEGINNING)
                      for tp in parts])

        def on_revoke(c: Any, parts: list[Any]) -> None:
            self._call(self._revoked([tp.partition for tp in parts]))

        consumer.subscribe([topics.CAMERAS], on_assign=on_assign, on_revoke=on_revoke,
                           on_lost=on_revoke)
        try:
            while not self._stop.is_set():
                msgs = consumer.consume(100, 0.5)
                if msgs:
                    self._call(self._apply(msgs))
        finally:
            consumer.close()  # leaves the group (on_revoke runs): the others take over at once
