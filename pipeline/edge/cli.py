"""``camlog edge``: render the nginx edge's config and run nginx in the foreground.

nginx runs unprivileged (as ``nobody`` when started by root) with its own prefix, temp and
cache folders under ``<state dir>/edge``. The JWKS is read from ``--jwks`` or fetched from an
origin at start, then re-fetched every ``JWKS_REFRESH_S`` (its max-age): a changed key set is
re-rendered and nginx reloaded (SIGHUP), which is how key rotation reaches the edge.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import Settings
from pipeline.errors import CliError

__all__ = ["JWKS_REFRESH_S", "fetch_jwks", "prepare", "register", "run"]

log = logging.getLogger("camlog.edge")
JWKS_REFRESH_S = 300.0
_MAX_JWKS_BYTES = 64 << 10


def register(parser: argparse.ArgumentParser) -> None:
    """Add the edge arguments."""
    parser.add_argument("--addr", help="host:port to listen on (default CAMLOG_EDGE_ADDR)")
    parser.add_argument("--origin", action="append", metavar="HOST:PORT",
                        help="playback origin "
                             "(repeatable; default CAMLOG_EDGE_ORIGINS or playback)")
    parser.add_argument("--jwks", type=Path, help="JWKS file (default: fetched from an origin)")
    parser.add_argument("--prefix", type=Path, help="nginx prefix (default <state dir>/edge)")
    parser.add_argument("--workers", type=int, default=2, help="nginx worker processes (default 2)")
    parser.add_argument("--wait", type=float, default=60.0,
                        help="seconds to wait for an origin's JWKS at start (default 60)")
    parser.set_defaults(func=run)


def fetch_jwks(origins: Sequence[str], timeout_s: float = 2.0) -> dict[str, Any] | None:
    """The JWKS of the first origin that answers, or None when none does."""
    for origin in origins:
        try:
            with urllib.request.urlopen(f"http://{origin}/.well-known/jwks.json",
                                        timeout=timeout_s) as r:
                return json.loads(r.read(_MAX_JWKS_BYTES))
        except (OSError, ValueError) as exc:
            log.info("no JWKS from %s: %s", origin, exc)
    return None


def _owner() -> tuple[int, int] | None:
    """Who nginx runs as: ``nobody`` when we are root (never root itself), else ourselves."""
    if os.geteuid() != 0:
        return None
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


def prepare(settings: Settings, jwks: dict[str, Any], addr: str | None = None,
            origins: Sequence[str] = (), prefix: Path | None = None, workers: int = 2) -> Path:
    """Render the config into the prefix and make its folders; the config's path."""
    from pipeline.edge.config import OPS_EDGE, edge_config, render

    s = settings.replace(**{k: v for k, v in (("edge_addr", addr),
                                              ("edge_origins", tuple(origins))) if v})
    try:
        cfg = edge_config(s, jwks, workers)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    # The njs script is copied into the prefix: nginx (as nobody) may not reach the checkout.
    root = prefix.resolve() if prefix is not None else cfg.prefix
    cfg = dataclasses.replace(cfg, prefix=root, js_dir=root)
    for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache"):
        (cfg.prefix / sub).mkdir(parents=True, exist_ok=True)
    # Verdicts were reached with the previous key set: start without them.
    shutil.rmtree(cfg.prefix / "auth-cache", ignore_errors=True)
    (cfg.prefix / "auth.sock").unlink(missing_ok=True)
    shutil.copyfile(OPS_EDGE / "edge.js", cfg.prefix / "edge.js")
    conf = cfg.prefix / "nginx.conf"
    conf.write_text(render((OPS_EDGE / "nginx.conf.template").read_text(), cfg))
    if (owner := _owner()) is not None:
        for path in [cfg.prefix, *cfg.prefix.rglob("*")]:
            os.chown(path, *owner)
        for parent in cfg.prefix.parents:
            if not parent.stat().st_mode & 0o001:
                raise CliError(f"nginx runs as nobody and cannot enter {parent}: "
                               "chmod o+x it or choose another --prefix")
    return conf


def _drop(owner: tuple[int, int] | None) -> Any:
    if owner is None:
        return None

    def demote() -> None:
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    return demote


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; nginx's exit status is ours."""
    if shutil.which("nginx") is None:
        raise CliError("nginx is not installed (make install: nginx, libnginx-mod-http-js)")
    if not 1 <= args.workers <= 64:
        raise CliError("--workers must be within 1..64")
    origins = tuple(args.origin or ()) or tuple(settings.edge_origins) or (settings.playback_addr,)

    def current_jwks() -> dict[str, Any] | None:
        if args.jwks is not None:
            try:
                return json.loads(args.jwks.read_text())
            except (OSError, ValueError) as exc:
                raise CliError(f"--jwks {args.jwks}: {exc}") from None
        return fetch_jwks(origins)

    deadline = time.monotonic() + args.wait
    while (jwks := current_jwks()) is None:
        if time.monotonic() > deadline:
            raise CliError(f"no origin answered /.well-known/jwks.json: {', '.join(origins)}")
        time.sleep(1.0)
    conf = prepare(settings, jwks, args.addr, origins, args.prefix, args.workers)
    argv = ["nginx", "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"]
    check = subprocess.run([*argv[:-2], "-t", "-q"], capture_output=True, text=True,
                           preexec_fn=_drop(_owner()))
    if check.returncode != 0:
        raise CliError(f"nginx refused {conf}: {check.stderr.strip()[-500:]}")
    proc = subprocess.Popen(argv, preexec_fn=_drop(_owner()))
    stop = {"sig": 0}

    def on_signal(signum: int, frame: object) -> None:
        stop["sig"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"camlog edge on http://{args.addr or settings.edge_addr} -> {', '.join(origins)}",
          flush=True)
    refresh = time.monotonic() + JWKS_REFRESH_S
    try:
        while proc.poll() is None and not stop["sig"]:
            time.sleep(0.2)
            if time.monotonic() > refresh:
                refresh = time.monotonic() + JWKS_REFRESH_S
                fresh = current_jwks()
                if fresh is not None and fresh != jwks:
                    jwks = fresh
                    prepare(settings, jwks, args.addr, origins, args.prefix, args.workers)
                    proc.send_signal(signal.SIGHUP)  # graceful reload with the new keys
                    log.info("edge reloaded with new viewer keys")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # graceful: finish what is in flight
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return 0 if stop["sig"] else proc.returncode
