"""Parsers of `minet import mini-internet|gml|as-rel ...` and `minet partition ...`.

What they do is in importers/cli.py.
"""
from __future__ import annotations

from ..importers import cli as I


def add_commands(sub) -> None:
    """Register `import` and `partition`. Their failures (ImportProblem, TopologyError, CommandError)
    are UserErrors: the `minet` top level tells them, one line per problem, exit 2."""
    imp = sub.add_parser("import", help="make a topology from a mini-Internet folder, a GML map or AS relationships")
    isub = imp.add_subparsers(dest="import_cmd", required=True, parser_class=sub._parser_class)
    mi = isub.add_parser("mini-internet", help="a mini-Internet configuration folder (AS_config.txt, ...)")
    mi.add_argument("dir")
    g = isub.add_parser("gml", help="a Topology Zoo style GML map (nodes are routers)")
    g.add_argument("file")
    g.add_argument("--asn-attr", default="asn", help="node attribute holding the AS number (default asn)")
    g.add_argument("--single-as", type=I.positive, metavar="N", help="the whole map is one network: AS N")
    g.add_argument("--max-routers-per-as", type=I.positive, metavar="N",
                   help="condense: keep the N best-connected routers of each AS (each AS stays connected)")
    g.add_argument("--rel", default="peer", choices=["peer", "provider", "customer"],
                   help="relationship of edges across ASes without a `rel` attribute (default peer)")
    ar = isub.add_parser("as-rel", help="an AS-level Internet from CAIDA's AS-relationship format (AS1|AS2|-1|...)")
    ar.add_argument("file")
    ar.add_argument("--ases", type=I.positive, default=100, metavar="N", help="how many ASes to keep (default 100)")
    ar.add_argument("--select", default="core", metavar="RULE",
                    help="which: core (largest customer cones, default) | cone:ASN (that AS's cone) | random")
    ar.add_argument("--seed", type=int, default=1, help="seed of --select random (default 1)")
    ar.add_argument("--routers-per-as", type=I.positive, default=1, metavar="N",
                    help="routers per AS, in a ring; adjacencies spread over them (default 1)")
    for cmd, func in ((mi, I.cmd_import_mini_internet), (g, I.cmd_import_gml), (ar, I.cmd_import_as_rel)):
        cmd.add_argument("-o", "--output", metavar="FILE", help="where to write the topology (default stdout)")
        cmd.add_argument("--name", help="instance name (default: from the folder or file name)")
        cmd.add_argument("--servers", type=I.positive, metavar="N",
                         help="spread the ASes over N servers (as `minet partition` does)")
        cmd.set_defaults(func=func)

    part = sub.add_parser("partition", help="assign every AS a server: balanced, few remote links")
    part.add_argument("file")
    part.add_argument("--servers", type=I.positive, required=True, metavar="N")
    part.add_argument("-o", "--output", metavar="FILE", help="write the placed topology here")
    part.add_argument("--seed", type=int, default=1, help="seed of the partitioner and the random baseline")
    part.set_defaults(func=I.cmd_partition)
