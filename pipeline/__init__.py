"""camlog: event-sourced video streaming infrastructure for IoT cameras."""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root: ``schemas/`` and ``topology/`` live beside the package (editable install).
ROOT = Path(__file__).resolve().parent.parent
