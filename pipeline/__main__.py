"""``python -m pipeline`` runs the camlog CLI."""

from pipeline.cli import main

raise SystemExit(main())
