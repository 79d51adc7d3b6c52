"""The topology's `class:` section: which ASes get doors, on which ports, with which bounds.

    class:
      doors: configure-false      # default; or `all`, or a list of ASNs
      port_base: 2000             # door of AS N listens on port_base + N
      listen: 0.0.0.0             # real servers: the address doors listen on (the lab: 127.0.0.1)
      ta_keys: ["ssh-ed25519 AAAA... ta@course"]   # public keys that open every door
      limits: {pids: 256, memory: 512M, cpu_weight: 100, sessions: 16}
      page: groups                # the students' page: `groups` (log in as a group), `public`, `off`
      page_port: 2000             # its port on this machine's loopback (default: port_base, AS 0's door)

Doors exist only when the topology has a `class:` section (`class: {}` takes every default).
Pure: parse() reports problems through a callback (the loader's), never raises on bad input.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

DOOR_MODES = ("configure-false", "all")
CLASS_KEYS = ("doors", "port_base", "listen", "ta_keys", "limits", "page", "page_port")
PAGE_MODES = ("groups", "public", "off")     # the students' page (classroom/page.py)
LIMIT_KEYS = ("pids", "memory", "cpu_weight", "sessions")
KEY_RE = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
                    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]{16,8192}={0,3}( [\x21-\x7e ]{0,200})?")
MEM_RE = re.compile(r"([1-9][0-9]{0,9})([KMG]?)")
MEM_UNIT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class Limits:
    pids: int = 256                 # processes (and threads) of the whole group at once
    memory: int = 512 << 20         # bytes of memory of the whole group
    cpu_weight: int = 100           # CPU share relative to other groups (cgroup v2 weight 1..10000)
    sessions: int = 16              # door logins of the group at once


@dataclass(frozen=True)
class ClassSettings:
    doors: Union[str, Tuple[int, ...]] = "configure-false"
    port_base: int = 2000
    listen: str = "0.0.0.0"
    ta_keys: Tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    page: str = "groups"
    page_port: Optional[int] = None     # None: port_base

    @property
    def page_listen_port(self) -> int:
        return self.page_port if self.page_port is not None else self.port_base

    def door_asns(self, ases: Dict[int, Any]) -> List[int]:
        """ASNs that get a door, in ASN order (`ases`: the topology's {asn: AS})."""
        if self.doors == "all":
            return sorted(ases)
        if self.doors == "configure-false":
            return sorted(a for a, spec in ases.items() if not getattr(spec, "configure", True))
        return sorted(a for a in self.doors if a in ases)

    def port(self, asn: int) -> int:
        return self.port_base + asn


DEFAULT = ClassSettings()


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:39] + "…")
    return "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) else "empty"


def _int(add: Callable[[str, str], None], path: str, value: Any, lo: int, hi: int) -> Optional[int]:
    if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
        return value
    add(path, f"{_describe(value)} is not an integer from {lo} to {hi}")
    return None


def memory_bytes(value: Any) -> Optional[int]:
    """`512M`, `2G`, `65536` (bytes) as bytes; None when not a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    m = MEM_RE.fullmatch(value) if isinstance(value, str) else None
    return int(m.group(1)) * MEM_UNIT[m.group(2)] if m else None


def parse(value: Any, ases: Iterable[int], add: Callable[[str, str], None]) -> Optional[ClassSettings]:
    """The `class:` section `value`; problems go to add(key path, message). No section: None (no
    doors: a topology without `class:` means what it always meant); `class: {}`: the defaults."""
    if value is None:
        return None
    if not isinstance(value, dict):
        add("class", f"must be a mapping, not {_describe(value)}")
        return DEFAULT
    known = set(ases)
    kw: Dict[str, Any] = {}
    for key in value:
        if key not in CLASS_KEYS:
            add(f"class.{key}", f"unknown key (allowed: {', '.join(CLASS_KEYS)})")
    if "doors" in value:
        doors = value["doors"]
        if isinstance(doors, str) and doors in DOOR_MODES:
            kw["doors"] = doors
        elif isinstance(doors, list):
            asns = []
            for i, asn in enumerate(doors, 1):
                if not isinstance(asn, int) or isinstance(asn, bool) or asn not in known:
                    add(f"class.doors[{i}]", f"{_describe(asn)} is not an AS of this topology")
                elif asn in asns:
                    add(f"class.doors[{i}]", f"AS {asn} is listed twice")
                else:
                    asns.append(asn)
            kw["doors"] = tuple(asns)
        else:
            add("class.doors", f"{_describe(doors)} is not one of {', '.join(DOOR_MODES)} or a list of ASNs")
    if "port_base" in value:
        kw["port_base"] = _int(add, "class.port_base", value["port_base"], 1024, 65000) or 2000
        top = kw["port_base"] + max(known, default=0)
        if top > 65535:
            add("class.port_base", f"{kw['port_base']} + the largest ASN {max(known)} = {top} is not a port")
    if "listen" in value:
        try:
            kw["listen"] = str(ipaddress.ip_address(value["listen"]))
        except (TypeError, ValueError):
            add("class.listen", f"{_describe(value['listen'])} is not an IP address")
    if "ta_keys" in value:
        keys = value["ta_keys"]
        if not isinstance(keys, list):
            add("class.ta_keys", f"must be a list of SSH public keys, not {_describe(keys)}")
        else:
            for i, k in enumerate(keys, 1):
                if not (isinstance(k, str) and KEY_RE.fullmatch(k.strip())):
                    add(f"class.ta_keys[{i}]", f"{_describe(k)} is not an SSH public key line "
                                               "(TYPE BASE64 [COMMENT], one line)")
            kw["ta_keys"] = tuple(k.strip() for k in keys if isinstance(k, str) and KEY_RE.fullmatch(k.strip()))
    if "limits" in value:
        kw["limits"] = _limits(value["limits"], add)
    if "page" in value:
        if value["page"] in PAGE_MODES:
            kw["page"] = value["page"]
        else:
            add("class.page", f"{_describe(value['page'])} is not one of {', '.join(PAGE_MODES)}")
    if "page_port" in value:
        kw["page_port"] = _int(add, "class.page_port", value["page_port"], 1024, 65535)
    base = kw.get("port_base", 2000)
    port = kw.get("page_port") or base
    if kw.get("page", "groups") != "off" and port != base and base < port <= base + max(known, default=0) \
            and port - base in known:
        add("class.page_port", f"{port} is the door port of AS {port - base} (port_base {base} + {port - base})")
    return ClassSettings(**kw)


def _limits(value: Any, add: Callable[[str, str], None]) -> Limits:
    if not isinstance(value, dict):
        add("class.limits", f"must be a mapping, not {_describe(value)}")
        return Limits()
    kw: Dict[str, int] = {}
    for key in value:
        if key not in LIMIT_KEYS:
            add(f"class.limits.{key}", f"unknown key (allowed: {', '.join(LIMIT_KEYS)})")
    if "pids" in value:
        kw["pids"] = _int(add, "class.limits.pids", value["pids"], 16, 100000) or Limits.pids
    if "memory" in value:
        mem = memory_bytes(value["memory"])
        if mem is None or mem < (32 << 20):
            add("class.limits.memory", f"{_describe(value['memory'])} is not a size of at least 32M "
                                       "(bytes, or a number with K, M or G)")
        else:
            kw["memory"] = mem
    if "cpu_weight" in value:
        kw["cpu_weight"] = _int(add, "class.limits.cpu_weight", value["cpu_weight"], 1, 10000) or Limits.cpu_weight
    if "sessions" in value:
        kw["sessions"] = _int(add, "class.limits.sessions", value["sessions"], 1, 1000) or Limits.sessions
    return Limits(**kw)
