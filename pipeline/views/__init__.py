"""Pure reducers for camlog's materialized views: live manifest, time index, device state, stats."""
