"""A GStreamer RTSP server serving a live test pattern, for camlog's RTSP pull tests and bench.

Runs under Debian's ``/usr/bin/python3`` (python3-gi, gir1.2-gst-rtsp-server-1.0), not the venv:
tests start it as a subprocess. It prints ``ready`` once listening and, with ``--frames N``,
sends exactly N video frames to its first client, prints ``sent N`` and exits (so a test knows
what went out). ``--audio`` adds an Opus track (pullers count and skip it); ``--user/--password``
require Basic auth.

    /usr/bin/python3 ops/rtsp/testserver.py --port 8554 --path /cam [--codec h265] [--frames 150]
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_ENCODERS = {
    "h264": ("x264enc tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max={gop} "
             "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1"),
    "h265": ("x265enc tune=zerolatency speed-preset=ultrafast bitrate=600 key-int-max={gop} "
             "! rtph265pay name=pay0 pt=96 config-interval=-1"),
}


def launch_line(args: argparse.Namespace) -> str:
    """The media pipeline: live pattern at ``fps``, encoder, payloader (and Opus audio)."""
    w, h = args.size.split("x")
    frames = f"num-buffers={args.frames}" if args.frames else ""
    video = (f"videotestsrc is-live=true pattern=ball {frames} ! video/x-raw,width={w},height={h},"
             f"framerate={args.fps}/1 ! videoconvert ! identity name=count ! "
             + _ENCODERS[args.codec].format(gop=args.gop))
    audio = (" audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
             "! rtpopuspay name=pay1 pt=97") if args.audio else ""
    return f"( {video}{audio} )"


def main() -> int:
    """Serve until SIGTERM/SIGINT (or, with ``--frames``, until the frames went out)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--path", default="/cam")
    p.add_argument("--codec", choices=sorted(_ENCODERS), default="h264")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--gop", type=int, default=15)
    p.add_argument("--size", default="640x360")
    p.add_argument("--frames", type=int, default=0, help="send this many frames, then exit")
    p.add_argument("--audio", action="store_true")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    args = p.parse_args()

    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(True)
    sent = [0]

    def on_buffer(_pad, info):
        sent[0] += 1
        return Gst.PadProbeReturn.OK

    def on_event(_pad, info):
        if info.get_event().type == Gst.EventType.EOS:
            GLib.timeout_add(1000, loop.quit)  # let the last RTP packets and RTCP go out
        return Gst.PadProbeReturn.OK

    def configure(_factory, media):
        pad = media.get_element().get_by_name("count").get_static_pad("src")
        pad.add_probe(Gst.PadProbeType.BUFFER, on_buffer)
        pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)

    factory.connect("media-configure", configure)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        perms = GstRtspServer.RTSPPermissions()
        perms.add_role("user")
        perms.add_permission_for_role("user", "media.factory.access", True)
        perms.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(perms)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("ready", flush=True)
    loop.run()
    print(f"sent {sent[0]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
