"""``camlog replay``: export, rebuild, verify or time-travel the event log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import CliError
from pipeline.kafka import topics

__all__ = ["register"]


def _add_selection(p: argparse.ArgumentParser, topic_required: bool = False) -> None:
    p.add_argument("--topic", action="append", default=[], required=topic_required,
                   help="topic to read (repeatable; default: the topic of each --type)")
    p.add_argument("--type", action="append", default=[], dest="types",
                   help="event type, e.g. FrameChunk (repeatable)")
    p.add_argument("--from", dest="start", help="start time, ISO-8601 UTC or epoch seconds")
    p.add_argument("--to", dest="end", help="end time (exclusive), ISO-8601 UTC or epoch seconds")
    p.add_argument("--stream", action="append", default=[], help="stream id (repeatable)")
    p.add_argument("--slack", type=float, default=60.0,
                   help="seconds of timestamp disorder to tolerate at the range edges (default 60)")


def selection_from(args: argparse.Namespace, default_topics: tuple[str, ...] = ()):
    """Build a :class:`Selection` from the common flags."""
    from pipeline.replay.select import Selection, event_type_named
    from pipeline.replay.timespec import parse_time

    types = [event_type_named(t) for t in args.types]
    topics = list(dict.fromkeys(args.topic or [t.topic for t in types] or default_topics))
    start = parse_time(args.start) if args.start else None
    end = parse_time(args.end) if args.end else None
    if args.slack < 0:
        raise CliError("--slack must be >= 0")
    return Selection(tuple(topics), start, end, frozenset(args.stream),
                     frozenset(t.name for t in types), int(args.slack * 1_000_000))


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.replay.export import export, output_format

    out = Path(args.out)
    output_format(out)  # fail on a bad name before touching Kafka
    if not out.parent.exists():
        raise CliError(f"folder {out.parent} does not exist")
    res = export(settings, selection_from(args), out, args.codec, progress=not args.quiet)
    if res.skipped:
        print(f"skipped {res.skipped} messages that are not camlog events of the topic's type")
    print(f"wrote {res.events} events to {res.path}")
    return 0


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.replay.rebuild import rebuild

    sel = selection_from(args, default_topics=(topics.FRAMES,))
    res = rebuild(settings, sel, args.into, progress=not args.quiet, replace=args.replace)
    print(f"rebuilt {res.keyspace}: {res.chunks} chunks, {res.sessions} session changes, "
          f"{res.dead_letters} dead letters, {res.playback_events} playback events -> "
          f"{res.segments} segments in {res.seconds:.1f}s")
    return 0


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.dcs is not None:
        return _verify_dcs(args, settings)
    from pipeline.replay.verify import verify

    diffs = verify(settings, args.against, args.stream)
    for d in diffs:
        print(d)
    if diffs:
        print(f"{len(diffs)} differences between {settings.keyspace} (live) and {args.against}",
              file=sys.stderr)
        return 1
    print(f"no differences between {settings.keyspace} (live) and {args.against}")
    return 0


def _verify_dcs(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.replay.verify import verify_dcs

    dcs = [d.strip() for d in args.dcs.split(",")]
    res = verify_dcs(settings, dcs, args.stream)
    for d in res.differences:
        print(d)
    between = f"{dcs[0]} and {dcs[1]}"
    if res.differences:
        print(f"{len(res.differences)} differences in {settings.keyspace} between {between}",
              file=sys.stderr)
        return 1
    read = ", ".join(f"{t} {n}" for t, n in sorted(res.rows.items()))
    print(f"no differences between {between} ({settings.keyspace}; rows read: {read or 'none'})")
    return 0


def _as_of(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.replay.asof import as_of
    from pipeline.replay.timespec import format_time, parse_time

    t = parse_time(args.time)
    snap = as_of(settings, args.stream, t)
    doc = {"stream_id": snap.stream_id, "as_of": format_time(t), "events": snap.events,
           "device_state": snap.device_columns(), "live_manifest": snap.manifest_row()}
    print(json.dumps(doc, indent=1, sort_keys=True, default=str))
    print(snap.playlist(), end="")
    return 0


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``export``, ``rebuild``, ``verify`` and ``as-of``."""
    sub = parser.add_subparsers(dest="replay_command", metavar="ACTION", required=True)
    p = sub.add_parser("export", help="write a selection of the log to .avro or .jsonl")
    _add_selection(p)
    p.add_argument("--out", required=True, help="FILE.avro (one event type) or FILE.jsonl")
    p.add_argument("--codec", choices=["null", "deflate"], default="null",
                   help="Avro block codec (default null)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_export)

    p = sub.add_parser("rebuild",
                       help="run the segmenter and views over a selection into a keyspace")
    p.add_argument("--from", dest="start", help="start time, ISO-8601 UTC or epoch seconds")
    p.add_argument("--to", dest="end", help="end time (exclusive)")
    p.add_argument("--stream", action="append", default=[], help="stream id (repeatable)")
    p.add_argument("--slack", type=float, default=60.0, help=argparse.SUPPRESS)
    p.add_argument("--into", required=True, metavar="KEYSPACE",
                   help="keyspace to build into (created from topology/; never the live one)")
    p.add_argument("--replace", action="store_true",
                   help="drop KEYSPACE first if it exists (it must not be the live one)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=_rebuild, topic=[], types=[])

    p = sub.add_parser("verify",
                       help="compare the live keyspace with a rebuilt one, or DC with DC "
                            "(exit 1 if any differ)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--against", metavar="KEYSPACE", help="the rebuilt keyspace")
    what.add_argument("--dcs", metavar="DC1,DC2",
                      help="two data centres: the live keyspace as each holds it (LOCAL_ONE)")
    p.add_argument("--stream", action="append", default=[],
                   help="stream id (repeatable; default: all rebuilt, or all in either DC)")
    p.set_defaults(func=_verify)

    p = sub.add_parser("as-of", help="a stream's device state and live manifest at a moment")
    p.add_argument("time", help="ISO-8601 UTC or epoch seconds")
    p.add_argument("--stream", required=True)
    p.set_defaults(func=_as_of)
