"""Grants: a verified token is remembered per stream until min(expiry, ttl) on the given clock."""

from pipeline.playback.grants import Grants


def test_grants_expire_and_stay_bounded():
    t = [100.0]
    g = Grants(max_entries=3, ttl_s=60, now=lambda: t[0])
    assert not g.allowed("tok", "cam-1")
    g.remember("tok", "cam-1", exp=130)
    assert g.allowed("tok", "cam-1") and not g.allowed("tok", "cam-2")
    t[0] = 130
    assert not g.allowed("tok", "cam-1")  # token expiry wins over the ttl
    g.remember("tok2", "cam-1", exp=10_000)
    t[0] = 190
    assert not g.allowed("tok2", "cam-1")  # ttl: re-verified at least once a minute
    for i in range(10):
        g.remember(f"t{i}", "s", exp=10_000)
    assert len(g._until) <= 3
