"""The students' `ovs-vsctl` on one switch: the commands the course teaches, on that switch only.

    python -m minet_sdn.provision.l2ctl --map STATE/l2ovs/switches.json --switch 3.S1 -- show
    ... -- set port 3-FIFA_1 tag=10
    ... -- set port ZURIrouter trunks=10,20,30
    ... -- list-ports br0 | list-br | get port 3-S2 trunks | clear port 3-FIFA_1 tag | list port [P]

Every switch of a server is a bridge of one Open vSwitch instance (docs/layer2.md), so the real
`ovs-vsctl` would show and change every group's switches. This one runs as root on the student's
behalf (the door calls it; `minet exec FILE 3.S1 -- ovs-vsctl ...` is the same), shows the switch
as the mini-Internet does (bridge `br0`, ports named `3-FIFA_1`, `3-S2`, `ZURIrouter`) and accepts
only: show, list-br, br-exists, list-ports, list-ifaces, port-to-br, set/get/clear/add/remove on a
port's tag, trunks or vlan_mode, list port. Every value is checked here, before anything reaches
ovs-vsctl; anything else is refused with one line and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from . import l2switchd

BRIDGE = "br0"          # what students call their switch's bridge, as in the mini-Internet's containers
COLUMNS = ("tag", "trunks", "vlan_mode")
VLAN_MODES = ("access", "trunk", "native-tagged", "native-untagged", "dot1q-tunnel")
_VLAN_LIST = re.compile(r"\[?\s*(\d{1,4}(\s*,\s*\d{1,4})*)?\s*\]?")


class Refused(Exception):
    pass


def _vlans(text: str) -> List[int]:
    if not _VLAN_LIST.fullmatch(text):
        raise Refused(f"{text!r} is not a list of VLAN ids (e.g. 10,20,30)")
    out = [int(v) for v in re.findall(r"\d+", text)]
    if any(not 0 <= v <= 4095 for v in out):
        raise Refused(f"{text!r}: VLAN ids are 0..4095")
    return out


def _value(column: str, text: str) -> str:
    """The checked value of `column`, in ovs-vsctl's syntax."""
    if column == "tag":
        if not re.fullmatch(r"\d{1,4}", text) or int(text) > 4095:
            raise Refused(f"tag {text!r} is not a VLAN id in 0..4095")
        return str(int(text))
    if column == "trunks":
        vl = _vlans(text)
        return "[" + ",".join(str(v) for v in vl) + "]" if vl else "[]"
    if text not in VLAN_MODES:
        raise Refused(f"vlan_mode {text!r} is not one of {', '.join(VLAN_MODES)}")
    return text


class Switch:
    def __init__(self, map_path: str, switch: str):
        try:
            with open(map_path) as fh:
                data = json.load(fh)
            entry = data["switches"][switch]
        except (OSError, ValueError, KeyError):
            raise Refused(f"no switch {switch} here (is the lab provisioned?)") from None
        self.rundir: str = entry["rundir"]
        self.switch = switch
        self.bridge: str = entry["bridge"]
        self.ports: Dict[str, str] = dict(entry["ports"])           # student name -> real name
        self.names: Dict[str, str] = {v: k for k, v in self.ports.items()}

    def real(self, port: str) -> str:
        if port not in self.ports:
            raise Refused(f"no port {port!r} on this switch (ports: {', '.join(sorted(self.ports))})")
        return self.ports[port]

    def vsctl(self, *args: str) -> str:
        return l2switchd.vsctl(self.rundir, *args)

    def port_rows(self) -> Dict[str, dict]:
        from .layer2 import read_db
        _, ports, _ = read_db(self.rundir)
        return {self.names[n]: row for n, row in ports.items() if n in self.names}


def _fmt(value) -> str:
    if value is None or value == [] or value == {}:
        return "[]"
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


def run(sw: Switch, argv: Sequence[str]) -> str:
    """The output of one allowed command; Refused for anything else."""
    args = [a for a in argv if a not in ("--", "--no-wait")]
    if not args:
        raise Refused("no command (allowed: show, list-br, list-ports br0, set/get/clear port PORT tag|trunks|vlan_mode ...)")
    if any(a.startswith("-") for a in args):
        raise Refused(f"option {next(a for a in args if a.startswith('-'))} is not allowed here")
    cmd, rest = args[0], args[1:]

    def bridge_arg(i: int = 0) -> None:
        if len(rest) <= i or rest[i] != BRIDGE:
            raise Refused(f"{cmd}: this switch's bridge is {BRIDGE}")

    if cmd == "show" and not rest:
        rows = sw.port_rows()
        lines = [f"    Bridge {BRIDGE}", "        fail_mode: standalone"]
        for name in sorted(rows):
            row = rows[name]
            lines.append(f"        Port {name}")
            for col in COLUMNS:
                v = row.get(col)
                if v not in (None, [], {}):
                    lines.append(f"            {col}: {_fmt(v)}")
            lines.append(f"            Interface {name}")
        lines += [f"        Port {BRIDGE}", f"            Interface {BRIDGE}", "                type: internal"]
        return "\n".join(lines) + "\n"
    if cmd == "list-br" and not rest:
        return BRIDGE + "\n"
    if cmd == "br-exists" and len(rest) == 1:
        if rest[0] != BRIDGE:
            raise Refused(f"no bridge {rest[0]}")
        return ""
    if cmd in ("list-ports", "list-ifaces") and len(rest) == 1:
        bridge_arg()
        return "".join(f"{n}\n" for n in sorted(sw.ports))
    if cmd in ("port-to-br", "iface-to-br") and len(rest) == 1:
        sw.real(rest[0])
        return BRIDGE + "\n"
    if len(rest) >= 2 and rest[0] in ("port", "Port") and cmd in ("set", "get", "clear", "add", "remove", "list"):
        port = rest[1]
        real = sw.real(port)
        cols = rest[2:]
        if cmd == "set" and cols:
            out = []
            for kv in cols:
                col, sep, val = kv.partition("=")
                if not sep or col not in COLUMNS:
                    raise Refused(f"set port: only {', '.join(c + '=...' for c in COLUMNS)} may be set here")
                out.append(f"{col}={_value(col, val)}")
            return sw.vsctl("set", "port", real, *out)
        if cmd == "get" and len(cols) == 1 and cols[0] in COLUMNS:
            return sw.vsctl("get", "port", real, cols[0])
        if cmd == "clear" and cols and all(c in COLUMNS for c in cols):
            return sw.vsctl("clear", "port", real, *cols)
        if cmd in ("add", "remove") and len(cols) >= 2 and cols[0] == "trunks":
            vl = _vlans(",".join(cols[1:]))
            return sw.vsctl(cmd, "port", real, "trunks", *(str(v) for v in vl))
        if cmd == "list" and not cols:
            return _list_ports(sw, [port])
        raise Refused(f"{cmd} port: only the columns {', '.join(COLUMNS)} of a port")
    if cmd == "list" and rest in (["port"], ["Port"]):
        return _list_ports(sw, sorted(sw.ports))
    raise Refused(f"not allowed on this switch: ovs-vsctl {' '.join(args)[:80]} (allowed: show, list-br, "
                  "list-ports br0, set/get/clear/add/remove port PORT tag|trunks|vlan_mode, list port [PORT])")


def _list_ports(sw: Switch, names: List[str]) -> str:
    rows = sw.port_rows()
    blocks = []
    for n in names:
        row = rows.get(n, {})
        blocks.append("\n".join([f"{'name':<16}: \"{n}\""] + [f"{c:<16}: {_fmt(row.get(c))}" for c in COLUMNS]))
    return "\n\n".join(blocks) + "\n"


def execute(map_path: str, switch: str, argv: Sequence[str]) -> Tuple[int, str, str]:
    """(exit code, stdout, stderr) of one students' ovs-vsctl command on `switch` (the door broker
    calls this for `goto SWITCH`; main() is the same from a command line)."""
    sw = None
    try:
        sw = Switch(map_path, switch)
        return 0, run(sw, argv), ""
    except Refused as exc:
        return 2, "", f"ovs-vsctl: {exc}\n"
    except l2switchd.SwitchdProblem as exc:
        msg = str(exc)
        for real, student in sorted(sw.names.items() if sw else (), key=lambda kv: -len(kv[0])):
            msg = re.sub(rf"\b{re.escape(real)}\b", student, msg)
        return 1, "", f"ovs-vsctl: {msg}\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="ovs-vsctl", description="ovs-vsctl on one students' switch")
    ap.add_argument("--map", required=True, help="the server's layer-2 switch map (switches.json)")
    ap.add_argument("--switch", required=True, help="switch node id, e.g. 3.S1")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    code, out, err = execute(args.map, args.switch, args.command)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code


if __name__ == "__main__":
    sys.exit(main())
