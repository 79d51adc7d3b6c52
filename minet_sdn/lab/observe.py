"""Watching a running lab from this host, for the benches (bench/) and the end-to-end tests alike:
carrier of router interfaces (read once, or watched as it changes), BGP session state, whether
every route has spread, and topology variants written under a unique instance name."""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from .. import host
from ..topology import Topology
from .convergence import configured_routers, routes_missing, vtysh
from .places import router_place

Watched = Tuple[str, str]            # (node, interface)
_LINK_LINE = re.compile(r"\d+: ([^:@\s]+)(?:@\S+)?: <([^>]*)>")


def _has_carrier(flags: Sequence[str]) -> bool:
    return "LOWER_UP" in flags and "NO-CARRIER" not in flags


def carrier(ns: str, ifname: str) -> bool:
    """Interface `ifname` in namespace `ns` has carrier now."""
    out = subprocess.run(["ip", "-n", ns, "-o", "link", "show", "dev", ifname],
                         capture_output=True, text=True, timeout=10).stdout
    flags = out.split("<", 1)[1].split(">", 1)[0].split(",") if "<" in out else []
    return _has_carrier(flags)


class CarrierWatch:
    """`ip monitor link` in node namespaces: when each watched interface lost / regained carrier.

    Events are timestamped (time.monotonic) as they arrive; `initial` is the state read at start.
    `ns_of(node)` names a node's namespace.
    """

    def __init__(self, ns_of: Callable[[str], str], watched: Sequence[Watched]):
        self.events: Dict[Watched, List[Tuple[float, bool]]] = {w: [] for w in watched}
        self.procs: List[subprocess.Popen] = []
        for node in sorted({n for n, _ in watched}):
            proc = subprocess.Popen(["ip", "-n", ns_of(node), "monitor", "link"], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(node, proc), daemon=True).start()
        time.sleep(0.3)          # let the monitors subscribe before anything happens
        self.initial = {w: carrier(ns_of(w[0]), w[1]) for w in watched}

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic()
            m = _LINK_LINE.match(line)
            if m and (node, m.group(1)) in self.events:
                self.events[(node, m.group(1))].append((now, _has_carrier(m.group(2).split(","))))

    def first(self, watched: Watched, has_carrier: bool, after: float = 0.0) -> Optional[float]:
        return next((t for t, c in list(self.events[watched]) if c == has_carrier and t >= after), None)

    def lost(self, watched: Watched) -> bool:
        return any(not c for _, c in self.events[watched])

    def stop(self) -> None:
        for proc in self.procs:
            host.stop_child(proc, 5)


def bgp_state(topo: Topology, router: str, peer_ip: str) -> str:
    """BGP state of `router`'s session with `peer_ip` ('?' when vtysh does not answer)."""
    text = vtysh(router_place(topo, router), f"show bgp neighbors {peer_ip} json")
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return "?"
    return str((data.get(peer_ip) or {}).get("bgpState", "absent"))


def routes_complete(topo: Topology, workers: int = 8) -> bool:
    """Every configured router has a route to the prefix of every other configured AS, in each
    family the topology routes (convergence.routes_missing, the check `lab up` waits for)."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return all(m == [] for m in pool.map(lambda r: routes_missing(topo, r), configured_routers(topo)))


def write_variant(src: str, directory: str, prefix: str, *, name_len: Optional[int] = None,
                  hex_chars: int = 4, filename: Optional[str] = None,
                  change: Optional[Callable[[dict], None]] = None, **fabric: Any) -> str:
    """Topology `src` under the instance name `<prefix><hex_chars random hex>` (cut to `name_len`),
    `fabric` keys set and `change(data)` applied, written to `directory/filename` (default
    `<name>.yaml`); its path."""
    with open(src) as fh:
        data = yaml.safe_load(fh)
    name = f"{prefix}{secrets.token_hex((hex_chars + 1) // 2)[:hex_chars]}"
    data["name"] = name[:name_len] if name_len else name
    if fabric:
        data.setdefault("fabric", {}).update(fabric)
    if change is not None:
        change(data)
    path = os.path.join(str(directory), filename or f"{data['name']}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return path
