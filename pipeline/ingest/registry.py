"""Which cameras a puller should pull, from the partitions of ``camlog.cameras`` it owns (pure).

A puller reads each partition it is assigned from the beginning (the topic is compacted: the
latest ``CameraConfig`` per camera, tombstones for removed ones). A partition's cameras become
wanted only once it has been read up to the end offset seen at assignment, so a camera that was
added and later removed is never started on the way; a revoked partition's cameras stop at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CameraRegistry", "CameraSpec"]


@dataclass(frozen=True)
class CameraSpec:
    """One camera to pull."""

    camera_id: str
    url: str
    transport: str = "TCP"

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> CameraSpec:
        """From a decoded ``CameraConfig``."""
        return cls(rec["camera_id"], rec["url"], rec.get("transport", "TCP"))


class CameraRegistry:
    """Per owned partition: the latest spec of each camera, and whether it is read to its end."""

    def __init__(self) -> None:
        self._cams: dict[int, dict[str, CameraSpec]] = {}
        self._until: dict[int, int] = {}  # partition -> end offset to reach before it counts

    def assign(self, partition: int, end_offset: int) -> None:
        """The partition is ours now; its records up to ``end_offset`` (exclusive) follow."""
        self._cams[partition] = {}
        self._until[partition] = end_offset

    def revoke(self, partition: int) -> None:
        """The partition is no longer ours."""
        self._cams.pop(partition, None)
        self._until.pop(partition, None)

    def apply(self, partition: int, offset: int, key: str, spec: CameraSpec | None) -> None:
        """A record of an owned partition (``spec`` None: a tombstone); others are ignored."""
        cams = self._cams.get(partition)
        if cams is None:
            return
        if spec is None:
            cams.pop(key, None)
        else:
            cams[key] = spec
        if offset + 1 >= self._until[partition]:
            self._until[partition] = 0

    def reached_end(self, partition: int) -> None:
        """The consumer saw the partition's end (compaction may have removed its last offsets)."""
        if partition in self._until:
            self._until[partition] = 0

    @property
    def owned(self) -> set[int]:
        """Partitions currently assigned."""
        return set(self._cams)

    def wanted(self) -> dict[str, CameraSpec]:
        """Cameras to pull now: those of owned partitions that are read to their end."""
        out: dict[str, CameraSpec] = {}
        for p, cams in self._cams.items():
            if self._until[p] == 0:
                out.update(cams)
        return out
