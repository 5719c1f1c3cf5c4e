"""The playback service: HLS (live and time range), MP4 clips, thumbnails and the web pages.

Modules: ``context`` (the shared request context, app keys and token check: a leaf),
``app`` (composes the routes; token and problem middlewares, access log without queries),
``playlists`` / ``media`` / ``api`` / ``pages`` / ``jwks`` (each declares ``routes(ctx)``),
``hls`` (pure playlist rendering), ``clip`` + ``boxes`` (progressive MP4 from fMP4 sample
tables), ``thumbnail`` (PyAV JPEG), ``cache`` (byte-bounded LRU with request coalescing),
``grants`` (recently verified tokens), ``params`` (untrusted input), ``events`` (PlaybackEvents
to Kafka in the background), ``source`` (the Cassandra reads), ``cli`` (``camlog playback``).

Behind a CDN: segment, init and thumbnail-at-time responses are immutable and carry strong
ETags; live playlists live about half a target duration. Viewer tokens travel in the query
string so plain HLS players work; a CDN should leave ``token`` out of its cache key and check
tokens at the edge (the same HMAC check), or pass requests through for ``*.m3u8`` only.
"""
