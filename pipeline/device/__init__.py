"""Device side: the upload SDK and simulated cameras."""

from pipeline.device.client import ChunkUploader, UploadStats, packet_frame

__all__ = ["ChunkUploader", "UploadStats", "packet_frame"]
