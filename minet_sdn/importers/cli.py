"""`minet import mini-internet|gml ...` and `minet partition ...`.

Registered on the `minet` parser by `add_commands(subparsers)`. Every written topology is validated
by the topology loader first: a file is written whole or not at all.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any, Dict, Optional

from ..topology import TopologyError, parse_topology
from . import ImportProblem, Imported, to_yaml


class CommandError(Exception):
    """One or more lines for stderr; exit code 2."""


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise CommandError(f"minet: {value!r} is not a positive integer")
    return int(value)


def write_topology(topology: Dict[str, Any], out: Optional[str], source: str) -> str:
    """Validate `topology`, then write it to `out` atomically (stdout when out is None or '-')."""
    text = to_yaml(topology)
    label = os.path.basename(out) if out and out != "-" else source
    try:
        parse_topology(text, label)
    except TopologyError as exc:
        raise CommandError("\n".join(exc.problems)) from None
    if not out or out == "-":
        sys.stdout.write(text)
        return text
    directory = os.path.dirname(os.path.abspath(out))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".minet-", suffix=".yaml", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        raise CommandError(f"{out}: cannot write: {exc.strerror or exc}") from None
    return text


def _summary(topology: Dict[str, Any]) -> str:
    ases = topology.get("ases", {})
    routers = sum(len(a["routers"]) for a in ases.values())
    intra = sum(len(a.get("links", [])) if "links" in a else max(0, len(a["routers"]) - (len(a["routers"]) < 3))
                for a in ases.values())
    ixps = topology.get("ixps", {})
    extra = f", {len(ixps)} IXPs ({sum(len(i.get('members', [])) for i in ixps.values())} members)" if ixps else ""
    return (f"{len(ases)} ASes, {routers} routers, {intra} intra-AS links, "
            f"{len(topology.get('links', []))} inter-AS links{extra}, {len(topology.get('servers', []))} servers")


def _place(imported: Imported, servers: Optional[int]) -> None:
    if servers is None:
        return
    from ..topology.partition import place_dict
    report = place_dict(imported.topology, servers)
    imported.notes.append(report)


def _finish(imported: Imported, out: Optional[str], source: str) -> int:
    write_topology(imported.topology, out, source)
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    where = out if out and out != "-" else "stdout"
    print(f"{source}: imported to {where}: {_summary(imported.topology)}", file=sys.stderr)
    return 0


def cmd_import_mini_internet(args) -> int:
    from .mini_internet import import_folder
    imported = import_folder(args.dir, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.dir.rstrip("/"))


def cmd_import_gml(args) -> int:
    from .gml import import_gml
    imported = import_gml(args.file, asn_attr=args.asn_attr, single_as=args.single_as,
                          max_routers=args.max_routers_per_as, rel=args.rel, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.file)


def cmd_import_as_rel(args) -> int:
    from .as_rel import import_as_rel
    imported = import_as_rel(args.file, ases=args.ases, select=args.select, seed=args.seed,
                             routers_per_as=args.routers_per_as, name=args.name)
    _place(imported, args.servers)
    return _finish(imported, args.output, args.file)


def cmd_partition(args) -> int:
    from ..topology.partition import partition_file
    report, topology = partition_file(args.file, args.servers, seed=args.seed)
    if args.output:
        write_topology(topology, args.output, args.file)
    print(report)
    return 0


def _guard(func):
    def run(args) -> int:
        try:
            return func(args)
        except (ImportProblem, TopologyError) as exc:
            raise CommandError("\n".join(exc.problems)) from None
    return run


def add_commands(sub, error_cls) -> None:
    """Register `import` and `partition`; failures raise `error_cls` (the CLI's one-line usage error)."""

    def wrap(func):
        guarded = _guard(func)

        def run(args) -> int:
            try:
                return guarded(args)
            except CommandError as exc:
                raise error_cls(str(exc)) from None
        return run

    def positive(value: str) -> int:
        try:
            return _positive(value)
        except CommandError as exc:
            raise error_cls(str(exc)) from None

    imp = sub.add_parser("import", help="make a topology from a mini-Internet folder, a GML map or AS relationships")
    isub = imp.add_subparsers(dest="import_cmd", required=True, parser_class=sub._parser_class)
    mi = isub.add_parser("mini-internet", help="a mini-Internet configuration folder (AS_config.txt, ...)")
    mi.add_argument("dir")
    g = isub.add_parser("gml", help="a Topology Zoo style GML map (nodes are routers)")
    g.add_argument("file")
    g.add_argument("--asn-attr", default="asn", help="node attribute holding the AS number (default asn)")
    g.add_argument("--single-as", type=positive, metavar="N", help="the whole map is one network: AS N")
    g.add_argument("--max-routers-per-as", type=positive, metavar="N",
                   help="condense: keep the N best-connected routers of each AS (each AS stays connected)")
    g.add_argument("--rel", default="peer", choices=["peer", "provider", "customer"],
                   help="relationship of edges across ASes without a `rel` attribute (default peer)")
    ar = isub.add_parser("as-rel", help="an AS-level Internet from CAIDA's AS-relationship format (AS1|AS2|-1|...)")
    ar.add_argument("file")
    ar.add_argument("--ases", type=positive, default=100, metavar="N", help="how many ASes to keep (default 100)")
    ar.add_argument("--select", default="core", metavar="RULE",
                    help="which: core (largest customer cones, default) | cone:ASN (that AS's cone) | random")
    ar.add_argument("--seed", type=int, default=1, help="seed of --select random (default 1)")
    ar.add_argument("--routers-per-as", type=positive, default=1, metavar="N",
                    help="routers per AS, in a ring; adjacencies spread over them (default 1)")
    for cmd, func in ((mi, cmd_import_mini_internet), (g, cmd_import_gml), (ar, cmd_import_as_rel)):
        cmd.add_argument("-o", "--output", metavar="FILE", help="where to write the topology (default stdout)")
        cmd.add_argument("--name", help="instance name (default: from the folder or file name)")
        cmd.add_argument("--servers", type=positive, metavar="N",
                         help="spread the ASes over N servers (as `minet partition` does)")
        cmd.set_defaults(func=wrap(func))

    part = sub.add_parser("partition", help="assign every AS a server: balanced, few remote links")
    part.add_argument("file")
    part.add_argument("--servers", type=positive, required=True, metavar="N")
    part.add_argument("-o", "--output", metavar="FILE", help="write the placed topology here")
    part.add_argument("--seed", type=int, default=1, help="seed of the partitioner and the random baseline")
    part.set_defaults(func=wrap(cmd_partition))
