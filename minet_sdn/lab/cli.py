"""Command line of the lab: `lab up|down|status FILE` and `exec FILE NODE -- CMD ...`.

add_lab_commands(subparsers) registers them on an argparse subparsers object (the `minet` CLI
calls it); every handler is `func(args) -> exit code`. Errors are one line on stderr, exit 2.
`python -m minet_sdn.lab ...` runs the same commands standalone.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from ..cli.output import OneLineParser, guarded
from . import LabError
from .networks import DEFAULT_MGMT_SUBNET


def _fail(prog: str, exc: BaseException) -> int:
    print(f"{prog}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
    return 2


def cmd_up(args) -> int:
    from .lab import Lab, format_summary
    if getattr(args, "servers", None):         # place the ASes first (minet partition), then bring that up
        from ..topology.partition import placed_copy
        try:
            args.file = placed_copy(args.file, args.servers)
        except ValueError as exc:
            return _fail("minet lab up", exc)
    try:
        summary = Lab(args.file).up(mgmt_subnet=args.mgmt_subnet, bgp_timeout=args.bgp_timeout,
                                    keep_on_failure=args.keep_on_failure, backend=args.backend, image=args.image)
    except LabError as exc:
        return _fail("minet lab up", exc)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def cmd_down(args) -> int:
    from .lab import Lab
    try:
        problems = Lab(args.file).down()
    except LabError as exc:
        return _fail("minet lab down", exc)
    for p in problems:
        print(f"minet lab down: {p}", file=sys.stderr)
    return 1 if problems else 0


def cmd_status(args) -> int:
    from .lab import Lab
    try:
        out = Lab(args.file).status(json=args.json)
    except LabError as exc:
        return _fail("minet lab status", exc)
    print(json.dumps(out, indent=1) if args.json else out)
    return 0


def cmd_exec(args) -> int:
    from .lab import Lab
    argv = list(args.cmd)
    if argv and argv[0] == "--":
        argv = argv[1:]
    try:
        return Lab(args.file).exec(args.node, argv)
    except LabError as exc:
        return _fail("minet exec", exc)


def add_lab_commands(subparsers) -> None:
    """Register `lab up|down|status` and `exec` on an argparse subparsers object."""
    lab = subparsers.add_parser("lab", help="the embedded multi-server lab on this machine",
                                description="Emulate every server of a topology on this machine "
                                            "(namespaces with their own Open vSwitch and sshd).")
    lsub = lab.add_subparsers(dest="lab_cmd", required=True)
    up = lsub.add_parser("up", help="build, provision (over SSH) and start the lab; wait for BGP")
    up.add_argument("file")
    up.add_argument("--mgmt-subnet", default=DEFAULT_MGMT_SUBNET,
                    help=f"IPv4 subnet of the lab's management network (default {DEFAULT_MGMT_SUBNET}: "
                         ".1 is the mgmt namespace, .1+N is server N)")
    up.add_argument("--bgp-timeout", type=float, default=None, metavar="SECONDS",
                    help="how long to wait for every BGP session and route (default 180 + 0.5 per router)")
    up.add_argument("--keep-on-failure", action="store_true",
                    help="keep a half-built lab for inspection instead of removing it")
    up.add_argument("--backend", choices=("netns", "docker"), default="netns",
                    help="how provisioning makes the nodes: netns (named namespaces, default) or docker "
                         "(containers; needs a running docker engine); a lab keeps the one it was built with")
    up.add_argument("--image", help="docker backend: the image (default: minet-provision's, built locally)")
    up.add_argument("--json", action="store_true", help="print the summary as JSON")
    up.add_argument("--servers", type=int, metavar="N", help="place the ASes on N servers first (minet "
                    "partition) and bring up that copy, written beside FILE as STEM-Nservers.yaml")
    up.set_defaults(func=cmd_up)
    down = lsub.add_parser("down", help="remove everything the lab made")
    down.add_argument("file")
    down.set_defaults(func=cmd_down)
    st = lsub.add_parser("status", help="nodes, addresses, links and BGP sessions of the lab")
    st.add_argument("file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=cmd_status)

    ex = subparsers.add_parser("exec", help="run a command in a lab node (mgmt, underlay, a server, a router)",
                               description="Run CMD in a node of the lab: mgmt, underlay, a server "
                                           "(OVS_RUNDIR set), or a router <asn>.<NAME> (vtysh finds it).")
    ex.add_argument("file")
    ex.add_argument("node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    ex.set_defaults(func=cmd_exec)


def main(argv: Optional[List[str]] = None) -> int:
    parser = OneLineParser(prog="python -m minet_sdn.lab")
    sub = parser.add_subparsers(dest="cmd", required=True)
    add_lab_commands(sub)
    args = parser.parse_args(argv)

    def body() -> int:
        try:
            return args.func(args)
        except KeyboardInterrupt:
            return 130
    return guarded(body, "python -m minet_sdn.lab")
