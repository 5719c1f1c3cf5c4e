"""Media core (pure): Annex-B parsing, segment cutting and CMAF/fMP4 muxing."""
