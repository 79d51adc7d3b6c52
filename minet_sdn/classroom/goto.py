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
    for kind, attr in (("switch", "switches"), ("l2host", "hosts")):   # layer 2, when the model has it
        for name in getattr(as_, attr, None) or ():
            name = getattr(name, "name", name)
            if isinstance(name, str) and NAME_RE.fullmatch(name) and name not in out:
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
    others = [d.key for d in devices.values() if d.kind in ("switch", "l2host")]
    lines = [f"Welcome, group {asn} ({user}). This door reaches your AS {asn} only.",
             f"  routers: {' '.join(routers) or '-'}   (goto ROUTER: vtysh; goto ROUTER host: its host)"]
    if others:
        lines.append(f"  switches and hosts: {' '.join(others)}   (goto NAME)")
    lines.append("  commands: goto DEVICE, devices, help, exit   (TAB completes)")
    return "\n".join(lines)


HELP = """goto ROUTER        vtysh on ROUTER (configure, `write memory` to keep it); `exit` comes back here
goto ROUTER host   a shell on ROUTER's host (ip, ping, traceroute, tcpdump)
goto NAME          a switch or L2 host of your AS (when your AS has them)
devices            list your devices
exit               leave"""


def split_target(device: Device) -> Tuple[str, str]:
    """(node id, kind) the broker enters."""
    return device.node, device.kind
