"""The HTTP ingest bridge: SDK chunks and MPEG-TS pushes in, durable FrameChunk events out."""

__all__: list[str] = []
