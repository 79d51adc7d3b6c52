"""Open vSwitch through `ovs-vsctl` (which finds its database through OVS_RUNDIR like every OvS tool).

Reading is one `ovs-vsctl --format=json` call listing the four tables we care about; a bridge whose
state already matches the plan is not touched, so a second run makes no OvSDB transaction at all.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import ovsdb
from .plan import OvsBridge, Pairs

VSCTL_TIMEOUT = 30
UNDERLAY_IFACE_KEY = "minet-underlay-iface"
UNDERLAY_ADDR_KEY = "minet-underlay-addr"


class OvsProblem(Exception):
    pass


def detect_datapath() -> str:
    """`system` if the openvswitch kernel module is loaded or loadable, else `netdev` (userspace)."""
    if os.path.isdir("/sys/module/openvswitch"):
        return "system"
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    if os.path.exists(modprobe):
        try:
            res = subprocess.run([modprobe, "--dry-run", "openvswitch"], capture_output=True, timeout=10)
            if res.returncode == 0:
                return "system"
        except (OSError, subprocess.TimeoutExpired):
            pass
    return "netdev"


def vsctl(*args: str, timeout: int = VSCTL_TIMEOUT) -> str:
    cmd = ["ovs-vsctl", f"--timeout={timeout}", *args]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise OvsProblem("ovs-vsctl is not installed (package openvswitch-switch)")
    if res.returncode != 0:
        msg = (res.stderr.strip() or res.stdout.strip()).splitlines()
        raise OvsProblem(f"ovs-vsctl {' '.join(args[:3])}...: {msg[-1] if msg else 'exit %d' % res.returncode}")
    return res.stdout


def reachable() -> Optional[str]:
    """None if the OvS database answers, else why not."""
    try:
        vsctl("--no-wait", "show", timeout=5)
        return None
    except OvsProblem as exc:
        return str(exc)


# ---- reading the database -------------------------------------------------------------------

_atom, _as_list = ovsdb.atom, ovsdb.as_list       # (kept under their old names)


@dataclass
class OvsState:
    bridges: Dict[str, dict]          # by name
    ports: Dict[str, dict]            # by name
    interfaces: Dict[str, dict]       # by name
    controllers: Dict[str, dict]      # by uuid
    _port_by_uuid: Dict[str, dict]
    _iface_by_uuid: Dict[str, dict]

    def bridge_ports(self, bridge: str) -> List[dict]:
        b = self.bridges.get(bridge)
        return [self._port_by_uuid[u] for u in _as_list(b["ports"])] if b else []

    def port_interfaces(self, port: dict) -> List[dict]:
        return [self._iface_by_uuid[u] for u in _as_list(port["interfaces"])]

    def bridge_controllers(self, bridge: str) -> List[dict]:
        b = self.bridges.get(bridge)
        return [self.controllers[u] for u in _as_list(b["controller"])] if b else []


def read_state() -> OvsState:
    out = vsctl("--format=json", "--", "list", "Bridge", "--", "list", "Port", "--", "list", "Interface",
                "--", "list", "Controller")
    tables = []
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        doc = json.loads(line)
        heads = doc["headings"]
        tables.append([{h: _atom(v) for h, v in zip(heads, row)} for row in doc["data"]])
    bridges, ports, ifaces, ctls = tables
    return OvsState(bridges={r["name"]: r for r in bridges}, ports={r["name"]: r for r in ports},
                    interfaces={r["name"]: r for r in ifaces}, controllers={r["_uuid"]: r for r in ctls},
                    _port_by_uuid={r["_uuid"]: r for r in ports}, _iface_by_uuid={r["_uuid"]: r for r in ifaces})


def is_marked(row: dict, marks: Pairs) -> bool:
    ids = row.get("external_ids") or {}
    return all(ids.get(k) == v for k, v in marks)


def our_bridges(state: OvsState, marks: Pairs) -> List[str]:
    return sorted(name for name, row in state.bridges.items() if is_marked(row, marks))


def stale_ports(state: OvsState, bridge: OvsBridge) -> Tuple[str, ...]:
    """Ports on our bridge that are ours (marked) but no longer planned."""
    wanted = {p.name for p in bridge.ports}
    return tuple(sorted(p["name"] for p in state.bridge_ports(bridge.name)
                        if p["name"] not in wanted and is_marked(p, bridge.marks)))


def bridge_diff(state: OvsState, want: OvsBridge) -> List[str]:
    """How the bridge in the database differs from the plan (empty: nothing to do)."""
    row = state.bridges.get(want.name)
    if row is None:
        return [f"bridge {want.name} missing"]
    diffs = []

    def expect(what: str, actual: Any, wanted: Any) -> None:
        if actual != wanted:
            diffs.append(f"{what}: {actual!r} != {wanted!r}")

    def expect_map(what: str, actual: dict, wanted: Pairs) -> None:
        for k, v in wanted:
            if (actual or {}).get(k) != v:
                diffs.append(f"{what}:{k}: {(actual or {}).get(k)!r} != {v!r}")

    b = want.name
    expect(f"{b} datapath_type", row["datapath_type"], want.datapath_type)
    expect(f"{b} fail_mode", row["fail_mode"], "secure")
    expect(f"{b} stp_enable", row["stp_enable"], False)
    expect(f"{b} rstp_enable", row["rstp_enable"], False)
    expect(f"{b} protocols", _as_list(row["protocols"]), ["OpenFlow13"])
    expect_map(f"{b} other_config", row["other_config"], want.other_config)
    expect_map(f"{b} external_ids", row["external_ids"], want.marks)
    ctls = state.bridge_controllers(b)
    expect(f"{b} controllers", [(c["target"], c["connection_mode"]) for c in ctls],
           [(want.controller, "out-of-band")])
    for c in ctls:
        expect_map(f"{b} controller external_ids", c["external_ids"], want.marks)
    ports = {p["name"]: p for p in state.bridge_ports(b)}
    stale = stale_ports(state, want)
    if stale:
        diffs.append(f"{b} stale ports {', '.join(stale)}")
    for port in want.ports:
        prow = ports.get(port.name)
        if prow is None:
            diffs.append(f"{b} port {port.name} missing")
            continue
        expect_map(f"port {port.name} external_ids", prow["external_ids"], want.marks)
        ifaces = state.port_interfaces(prow)
        if len(ifaces) != 1:
            diffs.append(f"port {port.name} has {len(ifaces)} interfaces")
            continue
        irow = ifaces[0]
        expect(f"interface {port.name} type", irow["type"], port.type)
        if port.type:
            expect(f"interface {port.name} options", irow["options"], dict(port.options))
            expect(f"interface {port.name} bfd", irow["bfd"], dict(port.bfd))
        expect(f"interface {port.name} ofport_request", _as_list(irow["ofport_request"]), [port.ofport])
        expect_map(f"interface {port.name} external_ids", irow["external_ids"], want.marks)
    return diffs


def bridge_errors(state: OvsState, want: OvsBridge) -> List[str]:
    """Problems OvS reports after a transaction: interface errors, ofports not granted."""
    problems = []
    for prow in state.bridge_ports(want.name):
        for irow in state.port_interfaces(prow):
            if irow.get("error"):
                problems.append(f"{want.name}: interface {irow['name']}: {_as_list(irow['error'])[0]}")
    for port in want.ports:
        irow = state.interfaces.get(port.name)
        if irow is not None and _as_list(irow.get("ofport")) != [port.ofport]:
            problems.append(f"{want.name}: port {port.name} got ofport {irow.get('ofport')!r}, "
                            f"not the requested {port.ofport}")
    return problems


def ensure_bridge(want: OvsBridge) -> Tuple[List[str], bool]:
    """Converge one remote bridge in one transaction. Returns (changes, created)."""
    state = read_state()
    diffs = bridge_diff(state, want)
    if not diffs:
        return [], False
    created = want.name not in state.bridges
    vsctl(*want.vsctl_args(remove_ports=stale_ports(state, want)))
    state = read_state()
    problems = bridge_errors(state, want) + bridge_diff(state, want)
    if problems:
        raise OvsProblem("; ".join(problems))
    return ([f"bridge {want.name} created"] if created else [f"bridge {want.name}: {d}" for d in diffs]), created


def delete_bridge(name: str, marks: Pairs) -> bool:
    """Delete bridge `name` only if it carries our marks."""
    state = read_state()
    row = state.bridges.get(name)
    if row is None or not is_marked(row, marks):
        return False
    vsctl("--if-exists", "del-br", name)
    return True


def interface_type(state: OvsState, ifname: str) -> Optional[str]:
    row = state.interfaces.get(ifname)
    return None if row is None else row["type"]


def underlay_bridge_args(bridge: str, iface: str, cidr: str, marks: Pairs, datapath: str) -> List[str]:
    marks_args = [f"external_ids:{k}={v}" for k, v in marks]
    return ["--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, f"datapath_type={datapath}",
            *marks_args, f"external_ids:{UNDERLAY_IFACE_KEY}={iface}", f"external_ids:{UNDERLAY_ADDR_KEY}={cidr}",
            "--", "--may-exist", "add-port", bridge, iface, "--", "set", "port", iface, *marks_args]

