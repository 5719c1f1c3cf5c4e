"""The one typed settings object: defaults, then ``CAMLOG_*`` environment, then CLI overrides."""

from __future__ import annotations

import dataclasses
import os
import secrets as _secrets
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import ROOT

__all__ = ["ConfigError", "Settings", "coerce", "ensure_dev_secret", "env_setting", "load_settings"]

_ENV_PREFIX = "CAMLOG_"


class ConfigError(ValueError):
    """A setting has a value camlog cannot use; the message names the variable."""


def _parse_replication(raw: str, region: str) -> dict[str, int]:
    """``"dc1:3,dc2:3"`` → ``{"dc1": 3, "dc2": 3}``; empty means one replica in the local DC."""
    if not raw.strip():
        return {region: 1}
    out: dict[str, int] = {}
    for part in raw.split(","):
        dc, _, rf = part.strip().partition(":")
        if not dc or not rf.isdigit() or int(rf) < 1:
            raise ConfigError(f"CAMLOG_REPLICATION: expected 'dc:rf[,dc:rf]', got {raw!r}")
        out[dc] = int(rf)
    return out


def _parse_keys(raw: str) -> dict[str, bytes]:
    """``"k2=secret2,k1=secret1"`` → ordered key ring (first = signing key); a bare value is kid
    ``k0``."""
    ring: dict[str, bytes] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, value = part.partition("=")
        if not sep:
            kid, value = "k0", part
        if not kid.isalnum() or len(value) < 16:
            raise ConfigError("CAMLOG_SECRET: each key needs an alphanumeric id and "
                              ">= 16 characters")
        ring[kid] = value.encode()
    if not ring:
        raise ConfigError("CAMLOG_SECRET is empty")
    return ring


@dataclass(frozen=True)
class Settings:
    """Everything a camlog process needs to know, validated once at start-up."""

    kafka: str = "127.0.0.1:9092"
    cassandra: tuple[str, ...] = ("127.0.0.1:9042",)
    keyspace: str = "camlog"
    state_dir: Path = Path(".camlog")
    region: str = "dc1"
    replication: Mapping[str, int] = field(default_factory=lambda: {"dc1": 1})
    keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    # ES256 viewer-token key files (PEM), first = current signing key, the rest = previous keys
    # that still verify; empty = <state_dir>/viewer-keys/*.pem (``auth.keys``).
    viewer_keys: tuple[str, ...] = ()
    bridge_addr: str = "127.0.0.1:8080"
    playback_addr: str = "127.0.0.1:8081"
    # The nginx edge cache tier (``pipeline.edge``): where it listens, the playback origins it
    # hashes objects over (empty = playback_addr), its on-disk cache and its key zone.
    edge_addr: str = "127.0.0.1:8082"
    edge_origins: tuple[str, ...] = ()
    edge_cache_mb: int = 1024
    edge_keys_mb: int = 16
    segment_target_s: float = 2.0
    segment_max_s: float = 6.0
    # LL-HLS part target: devices send one chunk per part, the segmenter emits parts this long.
    part_target_s: float = 0.5
    live_window: int = 6
    idle_timeout_s: float = 10.0
    retention_days: int = 7
    chunk_max_bytes: int = 1 << 20
    # A push (MPEG-TS over HTTP) holds what Kafka has not acknowledged yet, up to this many
    # bytes and seconds (README, "Failover"): 30 s covers a KRaft failover with default broker
    # timeouts (~12 s) twice over; 32 MiB is 30 s of an 8 Mbit/s 1080p encoder.
    push_buffer_bytes: int = 32 << 20
    push_buffer_s: float = 30.0
    # A device with several bridges (`camlog camera --bridge URL1,URL2`) moves on after its bridge
    # failed every request for this long, and probes home this often to go back.
    failover_s: float = 2.0
    # RTSP pull (README, "Pulling RTSP cameras"): no frame for this long ends a connection;
    # reconnects back off exponentially with jitter from the base up to the cap, forever.
    pull_read_timeout_s: float = 5.0
    pull_backoff_base_s: float = 0.5
    pull_backoff_cap_s: float = 30.0
    # A puller that stops heart-beating loses its cameras to the others after this long.
    puller_session_timeout_s: float = 10.0
    telemetry: str = "none"  # none | console | otlp | prometheus (comma separated)
    otlp_endpoint: str = "http://127.0.0.1:4318"
    metrics_port: int = 0  # Prometheus scrape port; 0 = none
    # The worker's view process (``camlog worker`` runs views in a child): its scrape port.
    views_metrics_port: int = 0
    # Where the scrape endpoint binds: loopback by default; 0.0.0.0 in a pod (ops/k8s/).
    metrics_host: str = "127.0.0.1"
    log_level: str = "INFO"
    # The bridge (``camlog bridge``, flags override): per-stream token bucket (429 above it),
    # how much of camlog.frames it scans at start for stream state, how long it waits for
    # Kafka's ack before answering 503.
    ingest_rate: float = 200.0
    ingest_burst: float = 400.0
    ingest_recover_s: float = 60.0
    ingest_ack_timeout_s: float = 8.0
    # Playback (``camlog playback``, flags override): the byte cache, the longest VOD range and
    # the longest MP4 clip one request may ask for.
    playback_cache_mb: int = 256
    playback_max_range_s: int = 6 * 3600
    playback_max_clip_s: int = 600
    # The worker's Faust consumers: a dead worker's partitions move after the session timeout
    # (Faust's default is 60 s of nobody processing them); heartbeats every 1.5 s leave a busy
    # event loop ample slack; offsets are committed this often; one fetch is at most this big.
    worker_session_timeout_s: float = 15.0
    worker_heartbeat_s: float = 1.5
    worker_commit_interval_s: float = 1.0
    worker_max_fetch_bytes: int = 4 * 1024 * 1024
    # The Avro event catalog (``*.avsc`` + ``history/``): a rolling schema upgrade points a
    # process at the release's folder (docs, "Zero-downtime schema migration").
    schema_dir: Path = ROOT / "schemas"

    @property
    def signing_kid(self) -> str:
        """Key id used to sign new tokens (the first key in the ring)."""
        return next(iter(self.require_keys()))

    def require_keys(self) -> Mapping[str, bytes]:
        """The device-token key ring, or a ConfigError that says how to get one."""
        if not self.keys:
            raise ConfigError(f"no device-token secret: set CAMLOG_SECRET, or run `camlog dev up` "
                              f"to make a development one in {self.state_dir / 'secret'}")
        return self.keys

    @property
    def cassandra_hosts(self) -> list[tuple[str, int]]:
        """Contact points as ``(host, port)`` pairs."""
        out = []
        for cp in self.cassandra:
            host, _, port = cp.rpartition(":")
            out.append((host or cp, int(port) if port.isdigit() else 9042))
        return out

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (used by tests and CLI overrides)."""
        return dataclasses.replace(self, **changes)


#: Each field's declared type, resolved (the annotations are strings under ``from __future__``).
_FIELD_TYPES: dict[str, Any] = typing.get_type_hints(Settings)
#: Fields with their own parser in ``load_settings`` (not one variable = one value).
_PARSED_APART = ("keys", "replication")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def coerce(name: str, raw: str) -> Any:
    """``CAMLOG_<NAME>``'s text as the field's declared type; a ConfigError names the variable."""
    kind = _FIELD_TYPES[name]
    try:
        if kind is bool:
            if raw.strip().lower() not in _TRUE + _FALSE:
                raise ValueError(f"expected one of {_TRUE + _FALSE}, got {raw!r}")
            return raw.strip().lower() in _TRUE
        if kind in (int, float, str, Path):
            return kind(raw)
        if typing.get_origin(kind) is tuple and typing.get_args(kind) == (str, ...):
            return tuple(p.strip() for p in raw.split(",") if p.strip())
    except ValueError as exc:
        raise ConfigError(f"{_ENV_PREFIX}{name.upper()}: {exc}") from None
    raise ConfigError(f"{_ENV_PREFIX}{name.upper()}: no parser for a field of type {kind}")


def env_setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One field from its ``CAMLOG_*`` variable, else its default, for import-time catalogs."""
    raw = (os.environ if env is None else env).get(_ENV_PREFIX + name.upper())
    if raw:
        return coerce(name, raw)
    f = next(f for f in dataclasses.fields(Settings) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


def _dev_secret(state_dir: Path) -> str | None:
    """The development key ``ensure_dev_secret`` left in the state folder, if any (read only)."""
    path = state_dir / "secret"
    return path.read_text().strip() if path.exists() else None


def ensure_dev_secret(settings: Settings) -> Settings:
    """The explicit development step (``camlog dev up``, ``demo``, ``token``): without
    ``CAMLOG_SECRET``, make a random key once in the state folder; settings that hold it."""
    if settings.keys:
        return settings
    path = settings.state_dir / "secret"
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made earlier, or by another process just now
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(f"dev={_secrets.token_urlsafe(32)}")
    return settings.replace(keys=_parse_keys(path.read_text().strip()))


def load_settings(
    env: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build settings from defaults, ``CAMLOG_*`` variables, then explicit overrides (CLI flags)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name in _FIELD_TYPES:
        if name in _PARSED_APART:
            continue
        raw = env.get(_ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = coerce(name, raw)
    values.update({k: v for k, v in overrides.items() if v is not None and k not in ("keys",)})
    state_dir = values["state_dir"] = Path(values.get("state_dir", Settings.state_dir))
    region = values.get("region", Settings.region)
    values["replication"] = _parse_replication(env.get("CAMLOG_REPLICATION", ""), region)
    # No secret is not an error here: only the commands that sign or check device tokens need
    # one (``Settings.require_keys``); loading settings writes nothing (``ensure_dev_secret``).
    raw_secret = env.get("CAMLOG_SECRET") or _dev_secret(state_dir)
    values["keys"] = overrides.get("keys") or (_parse_keys(raw_secret) if raw_secret else {})
    s = Settings(**values)
    _validate(s)
    return s


def _validate(s: Settings) -> None:
    if not 0.2 <= s.segment_target_s <= s.segment_max_s <= 60:
        raise ConfigError("need 0.2 <= CAMLOG_SEGMENT_TARGET_S <= CAMLOG_SEGMENT_MAX_S <= 60")
    if not 0.1 <= s.part_target_s <= min(2.0, s.segment_target_s):
        raise ConfigError("need 0.1 <= CAMLOG_PART_TARGET_S <= min(2, CAMLOG_SEGMENT_TARGET_S)")
    if not 1 <= s.live_window <= 100:
        raise ConfigError("CAMLOG_LIVE_WINDOW must be within 1..100")
    if s.push_buffer_bytes < s.chunk_max_bytes:
        raise ConfigError("CAMLOG_PUSH_BUFFER_BYTES must be >= CAMLOG_CHUNK_MAX_BYTES")
    if not 1.0 <= s.push_buffer_s <= 300.0:
        raise ConfigError("CAMLOG_PUSH_BUFFER_S must be within 1..300")
    if not 0.1 <= s.failover_s <= 60.0:
        raise ConfigError("CAMLOG_FAILOVER_S must be within 0.1..60")
    if not 0.5 <= s.pull_read_timeout_s <= 120:
        raise ConfigError("CAMLOG_PULL_READ_TIMEOUT_S must be within 0.5..120")
    if not 0.01 <= s.pull_backoff_base_s <= s.pull_backoff_cap_s <= 300:
        raise ConfigError("need 0.01 <= CAMLOG_PULL_BACKOFF_BASE_S <= CAMLOG_PULL_BACKOFF_CAP_S "
                          "<= 300")
    if not 6.0 <= s.puller_session_timeout_s <= 300:
        raise ConfigError("CAMLOG_PULLER_SESSION_TIMEOUT_S must be within 6..300 (Kafka's bounds)")
    if s.retention_days < 1:
        raise ConfigError("CAMLOG_RETENTION_DAYS must be >= 1")
    for part in s.telemetry.split(","):
        if part.strip() not in ("none", "console", "otlp", "prometheus", ""):
            raise ConfigError(f"CAMLOG_TELEMETRY: unknown exporter {part!r}")
    if not 1 <= s.edge_cache_mb <= 1 << 20 or not 1 <= s.edge_keys_mb <= 4096:
        raise ConfigError("need 1 <= CAMLOG_EDGE_CACHE_MB <= 2^20 and "
                          "1 <= CAMLOG_EDGE_KEYS_MB <= 4096")
    for addr in (s.edge_addr, *s.edge_origins):
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("CAMLOG_EDGE_ADDR / CAMLOG_EDGE_ORIGINS: want host:port, "
                              f"got {addr!r}")
    if (not 0 < s.ingest_rate <= s.ingest_burst or s.ingest_recover_s < 0
            or s.ingest_ack_timeout_s <= 0):
        raise ConfigError("need 0 < CAMLOG_INGEST_RATE <= CAMLOG_INGEST_BURST, "
                          "CAMLOG_INGEST_RECOVER_S >= 0 and CAMLOG_INGEST_ACK_TIMEOUT_S > 0")
    if min(s.playback_cache_mb, s.playback_max_range_s, s.playback_max_clip_s) < 1:
        raise ConfigError("CAMLOG_PLAYBACK_CACHE_MB / _MAX_RANGE_S / _MAX_CLIP_S must be >= 1")
    if not 0 < 3 * s.worker_heartbeat_s <= s.worker_session_timeout_s:
        raise ConfigError("need 0 < 3 x CAMLOG_WORKER_HEARTBEAT_S <= "
                          "CAMLOG_WORKER_SESSION_TIMEOUT_S")
    if s.worker_commit_interval_s <= 0 or s.worker_max_fetch_bytes < s.chunk_max_bytes:
        raise ConfigError("need CAMLOG_WORKER_COMMIT_INTERVAL_S > 0 and "
                          "CAMLOG_WORKER_MAX_FETCH_BYTES >= CAMLOG_CHUNK_MAX_BYTES")
    if not s.keyspace.replace("_", "").isalnum():
        raise ConfigError("CAMLOG_KEYSPACE must be alphanumeric/underscore")
