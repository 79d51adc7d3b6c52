"""`lab status`: the lab's nodes and addresses, its daemons, its links as the controller sees
them, BGP sessions, shaped links, and what is wrong (as text, or a dict for --json)."""
from __future__ import annotations

import dataclasses
import json as jsonlib
import subprocess
from typing import Any, Dict, List, Optional

from ..topology import Topology, names
from . import LabError, paths
from .controller import rest_call
from .convergence import bgp_sessions, configured_routers
from .effective import load
from .places import node_place
from .state import require
from .updown import health


def lab_status(topo_path: str, json: bool = False) -> Any:
    """The lab's nodes, addresses, links and BGP sessions: a dict (json=True) or text."""
    topo = load(topo_path)
    state = require(topo, topo_path)

    def alive(name: str) -> Optional[bool]:
        rec = state.process(name)
        return rec.alive() if rec is not None else None

    controller = dataclasses.asdict(state.controller) if state.controller else {}
    status: Dict[str, Any] = {
        "name": topo.name, "phase": state.phase, "state_dir": paths.state_dir(topo),
        "backend": state.backend,
        "topology": state.topology, "effective_topology": state.effective_topology,
        "mgmt": {"ns": names.mgmt_ns(topo), "ip": state.mgmt.ip, "subnet": state.mgmt_subnet,
                 "controller": {"alive": alive("controller"), **controller},
                 "rest_relay": state.rest_relay},
        "servers": {}, "links": [], "bgp": [], "problems": health(state),
    }
    for name, srv in state.servers.items():
        status["servers"][name] = {
            "ns": srv.ns, "mgmt_ip": srv.mgmt_ip, "underlay_ip": srv.underlay_ip,
            "ssh": srv.ssh, "ovs_dir": srv.dir,
            "ovsdb": alive(f"{name}/ovsdb-server"), "vswitchd": alive(f"{name}/ovs-vswitchd"),
            "sshd": alive(f"{name}/sshd"),
            "routers": [r for r, as_ in topo.routers.items() if as_.server == name]}
    ctrl_links: Dict[int, Dict[str, Any]] = {}
    try:
        code, body = rest_call(topo_path, "GET", "/v1/links", timeout=3)
        if code == 200:
            items = body.get("links", body) if isinstance(body, dict) else body
            ctrl_links = {int(l["id"]): l for l in items if isinstance(l, dict) and "id" in l}
        else:
            status["problems"].append(f"controller answered {code} to GET /v1/links")
    except (LabError, ValueError) as exc:
        status["problems"].append(str(exc))
    for link in topo.links:
        c = ctrl_links.get(link.id, {})
        status["links"].append({
            "id": link.id, "a": link.a.router, "b": link.b.router, "rel": link.rel,
            "servers": list(link.servers()), "remote": link.remote,
            "state": c.get("state"), "tunnel_live": c.get("tunnel_live")})
    if state.provisioned:
        status["bgp"] = [bgp_sessions(topo, r) for r in configured_routers(topo)]
    status["shaping"] = _shaping_rows(topo)
    if json:
        return status
    return _format_status(status)


def _shaping_rows(topo: Topology) -> List[Dict[str, Any]]:
    """Shaped links: configured vs the qdiscs their router ends carry (provision/shaping.py)."""
    from ..provision import shaping
    from ..provision.plan import build_plan

    def read(node: str, ifname: str) -> Optional[List[Dict[str, Any]]]:
        place = node_place(topo, node)
        if place is None:
            return None
        try:
            res = subprocess.run(place.exec_prefix() + ["tc", "-j", "qdisc", "show", "dev", ifname],
                                 capture_output=True, text=True, timeout=10)
            return jsonlib.loads(res.stdout) if res.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None
    return shaping.lab_rows(topo, lambda s: build_plan(topo, s, root=paths.provision_state_dir(topo, s)), read)


def _format_status(st: Dict[str, Any]) -> str:
    out = [f"lab {st['name']}: {st['phase']}  (nodes: {st.get('backend', 'netns')}, state {st['state_dir']})"]
    m = st["mgmt"]
    ctl = m["controller"]
    out.append(f"  mgmt       ns {m['ns']:<14} {m['ip']} ({m['subnet']})  controller "
               f"{'running' if ctl.get('alive') else 'NOT running'} {ctl.get('rest', '')}"
               f"  relay {m.get('rest_relay') or '-'}")
    for name, s in st["servers"].items():
        daemons = ", ".join(f"{d} {'ok' if s[d] else 'DOWN'}" for d in ("ovsdb", "vswitchd", "sshd"))
        out.append(f"  server {name:<6} ns {s['ns']:<14} mgmt {s['mgmt_ip']:<12} underlay "
                   f"{s['underlay_ip']:<12} {daemons}; routers {' '.join(s['routers'])}")
    out.append("  links:")
    for l in st["links"]:
        where = "-".join(l["servers"]) if l["remote"] else f"local {l['servers'][0]}"
        tunnel = "" if l["tunnel_live"] is None else ("  tunnel live" if l["tunnel_live"] else "  tunnel DOWN")
        out.append(f"    {l['id']:>3} {l['a']:<12} {l['b']:<12} {l['rel']:<9} {where:<10} "
                   f"{l['state'] or '?'}{tunnel}")
    if st["bgp"]:
        out.append("  BGP:")
        for r in st["bgp"]:
            if not r["reachable"]:
                out.append(f"    {r['router']:<12} (vtysh does not answer)")
                continue
            sess = "  ".join(f"{s['peer']} AS{s['remote_as']} {s['state']}" for s in r["sessions"])
            miss = f"  missing: {' '.join(r['missing'])}" if r["missing"] else ""
            out.append(f"    {r['router']:<12} {sess}{miss}")
    if st.get("shaping"):
        out.append("  shaped links (configured -> what each end carries):")
        for r in st["shaping"]:
            ends = "; ".join(f"{k} {v}" for k, v in r["ends"].items())
            out.append(f"    {r['link']:<16} {r['configured']:<24} {ends}"
                       + ("" if r["delay_applied"] else "  (delay NOT applied)"))
    for p in st["problems"]:
        out.append(f"  problem: {p}")
    return "\n".join(out)
