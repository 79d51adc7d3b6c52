"""What a group may enter and how the door shell reads a command line (pure).

A group's devices are its routers (`goto ROUTER`: vtysh on it), their hosts (`goto ROUTER host`)
and, when the topology has them, its switches and L2 hosts (`goto NAME`). A command line is split
on whitespace only (never by a shell) and every argument must be, exactly, a name of the group's
device list; anything else is refused before the broker is asked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

MAX_LINE = 200
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
COMMANDS = ("goto", "help", "exit", "quit", "devices")


@dataclass(frozen=True)
class Device:
    key: str             # what the student types after goto: "ZURI", "ZURI host", "S1"
    kind: str            # router | host | switch | l2host
    node: str            # node id: "3.ZURI", "3.ZURI.host", ...


def group_devices(topo, asn: int) -> Dict[str, Device]:
    """{key: Device} of AS `asn`, in topology order."""
    out: Dict[str, Device] = {}
    as_ = topo.ases[asn]
    for name in as_.routers:
        rid = f"{asn}.{name}"
        out[name] = Device(name, "router", rid)
        out[f"{name} host"] = Device(f"{name} host", "host", f"{rid}.host")
    l2 = getattr(as_, "layer2", None)          # layer 2 (topology/layer2.py): switches, then hosts
    if l2 is not None:
        named = [("switch", s.name) for s in l2.switches] + [("l2host", h.name) for h in l2.hosts if not h.vpn]
        for kind, name in named:
            if NAME_RE.fullmatch(name) and name not in out:
                out[name] = Device(name, kind, f"{asn}.{name}")
    return out


@dataclass(frozen=True)
class Command:
    verb: str                        # goto | help | exit | devices | empty
    device: Optional[str] = None     # the device key (goto)


class Refused(ValueError):
    """A command line the door does not run; the message is shown to the student as is."""


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)[:40]


def parse(line: str, devices: Dict[str, Device]) -> Command:
    """The command of one line typed at the door; Refused (with a safe message) otherwise."""
    if len(line) > MAX_LINE:
        raise Refused(f"line too long (at most {MAX_LINE} characters)")
    if any(not (c.isprintable() or c in " \t") for c in line) or not line.isascii():
        raise Refused("only printable ASCII characters are allowed")
    words = line.split()
    if not words:
        return Command("empty")
    verb = words[0]
    if verb in ("exit", "quit", "logout"):
        if len(words) > 1:
            raise Refused(f"{verb} takes no argument")
        return Command("exit")
    if verb in ("help", "?"):
        return Command("help")
    if verb in ("devices", "ls"):
        return Command("devices")
    if verb != "goto":
        raise Refused(f"unknown command {_printable(verb)!r}; type help")
    if len(words) == 1:
        raise Refused("goto what? (type devices)")
    key = " ".join(words[1:])
    if key not in devices:
        raise Refused(f"no device {_printable(key)!r} in your AS (type devices)")
    return Command("goto", key)


def complete(buffer: str, devices: Dict[str, Device]) -> List[str]:
    """Completions of the whole line typed so far (readline calls this with the line buffer)."""
    words = buffer.split()
    ends_blank = buffer[-1:].isspace() if buffer else True
    if not words or (len(words) == 1 and not ends_blank):
        prefix = words[0] if words else ""
        return [c + " " for c in COMMANDS if c.startswith(prefix)]
    if words[0] != "goto":
        return []
    typed = " ".join(words[1:]) + (" " if ends_blank and len(words) > 1 else "")
    return sorted({k for k in devices if k.startswith(typed)})


def welcome(asn: int, user: str, devices: Dict[str, Device]) -> str:
    routers = [d.key for d in devices.values() if d.kind == "router"]
    switches = [d.key for d in devices.values() if d.kind == "switch"]
    hosts = [d.key for d in devices.values() if d.kind == "l2host"]
    lines = [f"Welcome, group {asn} ({user}). This door reaches your AS {asn} only.",
             f"  routers: {' '.join(routers) or '-'}   (goto ROUTER: vtysh; goto ROUTER host: its host)"]
    if switches:
        lines.append(f"  switches: {' '.join(switches)}   (goto SWITCH: ovs-vsctl on that switch)")
    if hosts:
        lines.append(f"  hosts: {' '.join(hosts)}   (goto HOST: a shell on that host)")
    lines.append("  commands: goto DEVICE, devices, help, exit   (TAB completes)")
    return "\n".join(lines)


HELP = """goto ROUTER        vtysh on ROUTER (configure, `write memory` to keep it); `exit` comes back here
goto ROUTER host   a shell on ROUTER's host (ip, ping, traceroute, tcpdump)
goto SWITCH        ovs-vsctl on a switch of your AS (show, set port P tag=10, set port P trunks=10,20)
goto HOST          a shell on a host of a data centre of your AS (ip, ping, traceroute, tcpdump)
devices            list your devices
exit               leave"""


def split_target(device: Device) -> Tuple[str, str]:
    """(node id, kind) the broker enters."""
    return device.node, device.kind


# ---- the switch shell: `goto SWITCH` ---------------------------------------------------------

SWITCH_VERBS = ("show", "list-br", "br-exists", "list-ports", "list-ifaces", "port-to-br", "iface-to-br",
                "set", "get", "clear", "add", "remove", "list")
SWITCH_HELP = """ovs-vsctl show                               this switch: its bridge br0, its ports, their VLAN settings
ovs-vsctl list-ports br0                     its ports
ovs-vsctl set port PORT tag=10               PORT in access VLAN 10
ovs-vsctl set port PORT trunks=10,20,30      PORT carries VLANs 10, 20 and 30 (tagged)
ovs-vsctl get|clear port PORT tag|trunks|vlan_mode
ovs-vsctl add|remove port PORT trunks 10 20
ovs-vsctl list port [PORT]
exit                                         back to the door   (`ovs-vsctl` may be left out)"""


@dataclass(frozen=True)
class SwitchCommand:
    verb: str                        # vsctl | help | exit | empty
    argv: Tuple[str, ...] = ()       # ovs-vsctl's arguments (checked again by l2ctl, as root)


def parse_switch(line: str) -> SwitchCommand:
    """One line typed at a switch: `ovs-vsctl ARGS` (or ARGS alone), help or exit. Split like a shell
    would (quotes), but never given to one; l2ctl's allow-list decides what runs."""
    import shlex
    if len(line) > MAX_LINE:
        raise Refused(f"line too long (at most {MAX_LINE} characters)")
    if any(not (c.isprintable() or c in " \t") for c in line) or not line.isascii():
        raise Refused("only printable ASCII characters are allowed")
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise Refused(f"cannot read that line: {exc}") from None
    if not words:
        return SwitchCommand("empty")
    if words in (["exit"], ["quit"], ["logout"]):
        return SwitchCommand("exit")
    if words[0] in ("help", "?") or words == ["ovs-vsctl", "--help"]:
        return SwitchCommand("help")
    if words[0] == "ovs-vsctl":
        words = words[1:]
    if not words:
        raise Refused("ovs-vsctl what? (type help)")
    if words[0] not in SWITCH_VERBS and not words[0].startswith("-"):
        raise Refused(f"unknown command {_printable(words[0])!r}: only ovs-vsctl on this switch (type help)")
    return SwitchCommand("vsctl", tuple(words))


def complete_switch(buffer: str, ports: List[str]) -> List[str]:
    """Whole-line completions at a switch's prompt."""
    words = buffer.split()
    ends_blank = buffer[-1:].isspace() if buffer else True
    if words[:1] == ["ovs-vsctl"]:
        head, words = "ovs-vsctl ", words[1:]
    else:
        head = ""
    if not words or (len(words) == 1 and not ends_blank):
        prefix = words[0] if words else ""
        if not head and "ovs-vsctl".startswith(prefix) and prefix:
            return ["ovs-vsctl "]
        return [head + v + " " for v in SWITCH_VERBS if v.startswith(prefix)]
    typed = words if ends_blank else words[:-1]
    prefix = "" if ends_blank else words[-1]
    if len(typed) == 1 and typed[0] in ("set", "get", "clear", "add", "remove", "list"):
        cands = ["port"]
    elif len(typed) == 1 and typed[0] in ("list-ports", "list-ifaces", "br-exists"):
        cands = ["br0"]
    elif len(typed) == 2 and typed[1] == "port":
        cands = list(ports)
    elif len(typed) == 3 and typed[1] == "port":
        cands = {"set": ["tag=", "trunks=", "vlan_mode="], "get": ["tag", "trunks", "vlan_mode"],
                 "clear": ["tag", "trunks", "vlan_mode"], "add": ["trunks"], "remove": ["trunks"]}.get(typed[0], [])
    else:
        cands = []
    base = head + " ".join(typed) + " "
    return [base + c + ("" if c.endswith("=") else " ") for c in cands if c.startswith(prefix)]
