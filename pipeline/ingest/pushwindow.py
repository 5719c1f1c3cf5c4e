"""The bounded buffer of one push (pure, injected time): chunks handed to Kafka, not yet acked.

A pushing encoder (ffmpeg) gets no per-frame answer and does not retry, so while Kafka elects
new leaders the bridge keeps reading the body and hands every chunk to the producer at once;
librdkafka's idempotent producer holds them and delivers them in order when a leader answers.
This window bounds how much of that is outstanding, by bytes and by the age of the oldest
unacknowledged chunk. What a push has *accepted* is the contiguous prefix of persisted seqs: a
chunk acknowledged after an earlier one failed is in the log but not counted, so everything the
bridge reports as accepted is persisted and in order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["PushWindow", "WindowExceeded"]


@dataclass(frozen=True)
class WindowExceeded:
    """Why the window is over its bound, in words for the problem body."""

    bound: str  # "bytes" | "seconds"
    detail: str


class PushWindow:
    """Outstanding chunks of one push in seq order; ``accepted`` = the persisted prefix."""

    def __init__(self, max_bytes: int, max_s: float):
        self.max_bytes, self.max_s = max_bytes, max_s
        self._pending: OrderedDict[int, tuple[int, int, float]] = OrderedDict()  # seq -> sizes
        self._done: dict[int, int] = {}  # persisted out of order, waiting for the prefix
        self.pending_bytes = 0
        self.accepted_frames = 0
        self.accepted_seq: int | None = None
        self.failed_seq: int | None = None

    def __len__(self) -> int:
        """Chunks handed to Kafka and not yet settled into the accepted prefix."""
        return len(self._pending)

    def add(self, seq: int, nbytes: int, frames: int, now: float) -> None:
        """Chunk ``seq`` (greater than every earlier one) was handed to Kafka at ``now``."""
        if self._pending and seq <= next(reversed(self._pending)):
            raise ValueError(f"seq {seq} is not after the window's last seq")
        self._pending[seq] = (nbytes, frames, now)
        self.pending_bytes += nbytes

    def persisted(self, seq: int) -> None:
        """Kafka acknowledged ``seq``; the accepted prefix grows past every settled head."""
        if seq not in self._pending or seq == self.failed_seq:
            return
        self._done[seq] = 1
        while self._pending and next(iter(self._pending)) in self._done:
            head, (nbytes, frames, _t) = self._pending.popitem(last=False)
            del self._done[head]
            self.pending_bytes -= nbytes
            self.accepted_frames += frames
            self.accepted_seq = head

    def failed(self, seq: int) -> None:
        """Kafka gave up on ``seq``: nothing from it on can be accepted any more."""
        if seq in self._pending and (self.failed_seq is None or seq < self.failed_seq):
            self.failed_seq = seq

    def oldest_age(self, now: float) -> float:
        """Seconds the oldest outstanding chunk has waited for Kafka (0 when none)."""
        if not self._pending:
            return 0.0
        _b, _f, t = next(iter(self._pending.values()))
        return max(0.0, now - t)

    def exceeded(self, now: float) -> WindowExceeded | None:
        """The bound that is exceeded now, if any."""
        if self.pending_bytes > self.max_bytes:
            return WindowExceeded("bytes", f"{self.pending_bytes} bytes wait for Kafka "
                                           f"(bound {self.max_bytes})")
        age = self.oldest_age(now)
        if age > self.max_s:
            return WindowExceeded("seconds", f"Kafka has not acknowledged seq "
                                             f"{next(iter(self._pending))} for {age:.1f} s "
                                             f"(bound {self.max_s:g} s)")
        return None
