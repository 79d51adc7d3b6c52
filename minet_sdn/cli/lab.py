"""Parsers of the lab's commands: `minet lab up|down|status FILE`, `minet exec FILE NODE -- CMD`.

What they do is in lab/cli.py; `python -m minet_sdn.lab ...` runs the same commands standalone
(main() below).
"""
from __future__ import annotations

import argparse
from typing import List, Optional

from ..lab import cli as lab_cli
from ..lab.networks import DEFAULT_MGMT_SUBNET
from .output import OneLineParser, guarded


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
    up.set_defaults(func=lab_cli.cmd_up)
    down = lsub.add_parser("down", help="remove everything the lab made")
    down.add_argument("file")
    down.set_defaults(func=lab_cli.cmd_down)
    st = lsub.add_parser("status", help="nodes, addresses, links and BGP sessions of the lab")
    st.add_argument("file")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=lab_cli.cmd_status)

    ex = subparsers.add_parser("exec", help="run a command in a lab node (mgmt, underlay, a server, a router)",
                               description="Run CMD in a node of the lab: mgmt, underlay, a server "
                                           "(OVS_RUNDIR set), or a router <asn>.<NAME> (vtysh finds it).")
    ex.add_argument("file")
    ex.add_argument("node")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    ex.set_defaults(func=lab_cli.cmd_exec)


def main(argv: Optional[List[str]] = None) -> int:
    """`python -m minet_sdn.lab ...`: the lab's commands without the rest of `minet`."""
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
