#!/usr/bin/env python3
"""The reference the benchmarks beat: the original static multi-server design, on our own lab.

    sudo python3 bench/baseline.py up FILE        # `minet lab up FILE`, then turn it into the baseline
    sudo python3 bench/baseline.py convert FILE   # an existing lab of FILE -> the baseline
    sudo python3 bench/baseline.py flows FILE     # print the static flows of every remote bridge

Used only by benchmarks (bench/versus.py). The lab is built exactly as `minet lab up` builds it
(same emulated servers, underlay, GRE tunnels with BFD, routers, FRR, addresses), then its remote
links are served the way the original mini-Internet's multi-server setup served them:

  * no controller: the controller process is stopped and every remote bridge loses its
    controller target (`del-controller`), with `fail_mode=standalone`;
  * static flows pushed once with `ovs-ofctl add-flows`, per link L with mark M (its DSCP within
    its server pair, 1..63, the tos isolation of our own topology model):
        in_port=L's port, ip/ipv6            -> set DSCP M, out the tunnel      (mark)
        in_port=tunnel, ip/ipv6, DSCP M      -> set DSCP 0, out L's port        (demark)
        in_port=L's port, arp                -> out the tunnel                   (ARP forwarded)
        in_port=tunnel, arp                  -> FLOOD: out of every link port    (ARP flooded)
    everything else dropped;
  * no failure propagation: a router losing its link is seen by the far router only when BGP's
    hold timer expires; an underlay cut is noticed by nobody but BGP.

Every flow carries the cookie 0xba5e... (not the controller's 0x6d6e...), so they are told apart.
`minet lab down FILE` removes a baseline lab like any other.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minet_sdn.lab import paths, printing_progress, system  # noqa: E402
from minet_sdn.lab.lab import Lab  # noqa: E402
from minet_sdn.lab import state as lab_state  # noqa: E402
from minet_sdn.topology import load_topology   # noqa: E402
from minet_sdn.topology.model import TUNNEL_OFPORT, Bridge, Topology   # noqa: E402

BASELINE_COOKIE = 0xBA5E << 48


def static_flows(topo: Topology, bridge: Bridge) -> List[str]:
    """The original design's flows for one remote bridge, as `ovs-ofctl add-flows` lines."""
    tun = TUNNEL_OFPORT
    lines = [f"cookie={BASELINE_COOKIE:#x},priority=0,actions=drop"]
    for lid in bridge.link_ids:
        link = topo.link(lid)
        port, mark, cookie = link.ofport, topo.link_marks[lid], BASELINE_COOKIE | lid
        for proto in ("ip", "ipv6"):
            lines.append(f"cookie={cookie:#x},priority=100,in_port={port},{proto},"
                         f"actions=set_field:{mark}->ip_dscp,output:{tun}")
            lines.append(f"cookie={cookie:#x},priority=100,in_port={tun},{proto},ip_dscp={mark},"
                         f"actions=set_field:0->ip_dscp,output:{port}")
        lines.append(f"cookie={cookie:#x},priority=90,in_port={port},arp,actions=output:{tun}")
    lines.append(f"cookie={BASELINE_COOKIE:#x},priority=90,in_port={tun},arp,actions=FLOOD")
    return lines


def _remote_bridges(topo: Topology) -> List[Bridge]:
    return list(topo.bridges.values())


def convert(topo_path: str) -> Dict[str, int]:
    """Turn the running lab of `topo_path` into the baseline; returns flows per bridge."""
    topo = load_topology(topo_path)
    state = lab_state.LabState.load(topo)
    if state is None:
        raise SystemExit(f"{topo_path}: no lab of instance {topo.name} is up")
    eff = load_topology(state.effective_topology)
    for name in ("controller",):
        rec = state.process(name)
        if rec is not None:
            rec.stop()
            state.drop_process(name)
    state.baseline = True
    state.save()
    out = {}
    for bridge in _remote_bridges(eff):
        sdir = paths.server_dir(topo, bridge.server)
        # standalone, no controller: OvS keeps (and only uses) the flows it is given
        system.ovs_vsctl(sdir, "del-controller", bridge.name, "--", "set", "bridge", bridge.name,
                         "fail_mode=standalone")
        mgmt = f"unix:{os.path.join(sdir, bridge.name)}.mgmt"
        flows = static_flows(eff, bridge)
        with tempfile.NamedTemporaryFile("w", suffix=".flows", delete=False) as fh:
            fh.write("\n".join(flows) + "\n")
        try:
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "del-flows", mgmt], check=True, timeout=30,
                           capture_output=True)
            subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "add-flows", mgmt, fh.name], check=True,
                           timeout=60, capture_output=True)
            # ports the controller may have held down go back up: nobody manages them any more
            for lid in bridge.link_ids:
                subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "mod-port", mgmt, str(eff.link(lid).ofport), "up"],
                               check=False, timeout=10, capture_output=True)
        finally:
            os.unlink(fh.name)
        out[bridge.name] = len(flows)
    return out


def is_baseline(topo_path: str) -> bool:
    state = lab_state.LabState.load(load_topology(topo_path))
    return bool(state and state.baseline)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("verb", choices=["up", "convert", "flows"])
    p.add_argument("topology")
    args = p.parse_args(argv)
    if args.verb == "flows":
        topo = load_topology(args.topology)
        for bridge in _remote_bridges(topo):
            print(f"# {bridge.name} on {bridge.server} (towards {bridge.peer})")
            print("\n".join(static_flows(topo, bridge)))
        return 0
    if os.geteuid() != 0:
        print("baseline.py: needs root", file=sys.stderr)
        return 2
    if args.verb == "up":
        Lab(args.topology, progress=printing_progress()).up()
    flows = convert(args.topology)
    print(f"baseline: {sum(flows.values())} static flows on {len(flows)} remote bridges, no controller, "
          f"fail_mode=standalone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
