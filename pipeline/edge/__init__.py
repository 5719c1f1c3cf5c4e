"""The edge cache tier: an nginx + njs cache in front of playback origins (``camlog edge``)."""
