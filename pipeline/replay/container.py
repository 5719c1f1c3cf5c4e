"""Avro object container files written from already-encoded datums, byte for byte reproducible.

Kafka values are single-object encoded: after the 10-byte header comes exactly the Avro binary
datum a container block holds. Copying those bytes (instead of decoding and re-encoding every
record) keeps export close to the raw consumer rate; any Avro reader (fastavro included) reads
the result with the embedded writer schema.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import zlib
from collections.abc import Mapping
from typing import BinaryIO

__all__ = ["CODECS", "BackgroundFile", "ContainerWriter", "sync_marker"]

MAGIC = b"Obj\x01"
CODECS = ("null", "deflate")


def _long(n: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _bytes(b: bytes) -> bytes:
    return _long(len(b)) + b


def sync_marker(seed: bytes) -> bytes:
    """A 16-byte sync marker derived from ``seed`` (the selection), so reruns are identical."""
    return hashlib.sha256(b"camlog-sync:" + seed).digest()[:16]


class ContainerWriter:
    """Appends encoded datums to an Avro container; blocks are cut by size, deterministically."""

    def __init__(self, fo: BinaryIO, schema_json: str, sync: bytes,
                 metadata: Mapping[str, bytes] | None = None, codec: str = "null",
                 block_bytes: int = 1 << 20):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {CODECS}")
        if len(sync) != 16:
            raise ValueError("sync marker must be 16 bytes")
        self._fo, self._sync, self._codec, self._limit = fo, sync, codec, block_bytes
        self._buf: list[bytes] = []
        self._size = 0
        self.records = 0
        meta = {"avro.schema": schema_json.encode(), "avro.codec": codec.encode(),
                **(metadata or {})}
        head = bytearray(MAGIC)
        head += _long(len(meta))
        for k in sorted(meta):
            head += _bytes(k.encode()) + _bytes(meta[k])
        head += _long(0) + sync
        fo.write(bytes(head))

    def append(self, datum: bytes) -> None:
        """Add one encoded datum (must match the embedded schema)."""
        self._buf.append(datum)
        self._size += len(datum)
        self.records += 1
        if self._size >= self._limit:
            self.flush()

    def flush(self) -> None:
        """Write the pending block, if any."""
        if not self._buf:
            return
        data = b"".join(self._buf)
        if self._codec == "deflate":
            comp = zlib.compressobj(6, zlib.DEFLATED, -15)
            data = comp.compress(data) + comp.flush()
        self._fo.write(_long(len(self._buf)) + _long(len(data)) + data + self._sync)
        self._buf, self._size = [], 0

    def close(self) -> None:
        """Flush the last block (the file object stays open: the caller owns it)."""
        self.flush()


class BackgroundFile:
    """A write-only file whose writes happen on a thread, overlapping disk I/O with consuming."""

    def __init__(self, fo: BinaryIO, depth: int = 8):
        self._fo = fo
        self._q: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            if self._error is None:
                try:
                    self._fo.write(chunk)
                except BaseException as exc:  # reported to the producer side on close
                    self._error = exc

    def write(self, data: bytes) -> None:
        """Queue ``data`` (blocks when ``depth`` chunks are pending)."""
        if self._error is not None:
            raise self._error
        self._q.put(data)

    def close(self) -> None:
        """Wait for pending writes; re-raises a write error. The wrapped file stays open."""
        self._q.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
