"""Parsers of the watch commands: `minet matrix`, `minet measure`, `minet graph`, `minet lg`.

What they do is in watch/cli.py; their bad input (WatchUsage, a UserError) is told by the `minet`
top level: one line, exit 2.
"""
from __future__ import annotations

from ..watch import cli as W


# ---- parsers ------------------------------------------------------------------------------

def add_watch_commands(sub) -> None:
    m = sub.add_parser("matrix", help="which AS reaches which: ping from every AS's host to every other")
    m.add_argument("file")
    m.add_argument("-6", "--ipv6", action="store_true",
                   help="ping the hosts' IPv6 addresses instead of their IPv4 ones (dual-stack topologies)")
    m.add_argument("--json", action="store_true",
                   help='one JSON object per round: {"pairs": [...], "ok", "total", "family"}')
    m.add_argument("--html", metavar="OUT", help="also write a self-contained HTML page")
    m.add_argument("--watch", type=float, metavar="SECONDS", help="repeat every SECONDS and say what changed")
    m.add_argument("--rounds", type=int, metavar="N", help="with --watch: stop after N rounds")
    m.add_argument("--parallel", type=int, default=24,
                   help="source ASes probing at once (default 24; each probe waits on the network, not the CPU)")
    m.add_argument("--no-push", action="store_true", help="do not send the result to the controller's status page")
    m.set_defaults(func=W.cmd_matrix)

    me = sub.add_parser("measure", help="traceroute (or ping) into the mini-Internet from an AS's measurement host")
    me.add_argument("file")
    me.add_argument("dest", help="an IPv4/IPv6 address or a DNS name (host.zuri.group1)")
    me.add_argument("--from", dest="source", required=True, metavar="ASN", help="the AS to measure from")
    me.add_argument("--ping", dest="tool", action="store_const", const="ping", default="traceroute",
                    help="ping instead of traceroute")
    me.add_argument("-c", "--count", type=int, default=3, help="with --ping: how many (1..20)")
    me.add_argument("-m", "--max-hops", type=int, default=30, help="traceroute: at most this many hops (1..64)")
    me.add_argument("-n", "--numeric", action="store_true", help="print addresses only (no DNS names)")
    fam = me.add_mutually_exclusive_group()
    fam.add_argument("-4", dest="ipv4", action="store_true", help="IPv4")
    fam.add_argument("-6", dest="ipv6", action="store_true", help="IPv6")
    me.set_defaults(func=W.cmd_measure)

    g = sub.add_parser("graph", help="draw the topology (Graphviz): servers, ASes, links, link states")
    g.add_argument("file")
    g.add_argument("-o", "--output", required=True, help="OUT.svg, OUT.png, OUT.html or OUT.dot")
    g.add_argument("--routers", action="store_true", help="router-level view (default: one box per AS)")
    g.add_argument("--format", choices=("svg", "png", "html", "dot"), help="default: from the file name")
    g.set_defaults(func=W.cmd_graph)

    lg = sub.add_parser("lg", help="looking glass: a read-only vtysh `show` command on a router")
    lg.add_argument("file")
    lg.add_argument("target", help="an AS number (its first router) or a router <asn>.<NAME>")
    lg.add_argument("command", nargs="+", help="'show bgp summary', 'show ip route', ...")
    lg.add_argument("--router", help="with an AS number: which of its routers (NAME)")
    lg.set_defaults(func=W.cmd_lg)
