"""What differs between the topology a lab runs and the file now (pure): for the one line with which
`lab up` refuses a changed file, so the user knows exactly what a `lab down` + `lab up` would apply."""
from __future__ import annotations

from typing import List

from ..core.fabric import link_keys
from ..topology import Topology


def _names(items, limit: int = 4) -> str:
    items = sorted(items, key=str)
    return ", ".join(str(i) for i in items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")


def differences(running: Topology, now: Topology) -> List[str]:
    """Short phrases, most structural first; [] when only comments or formatting changed."""
    out: List[str] = []
    for what, old, new in (("servers", set(running.servers), set(now.servers)),
                           ("ASes", set(running.ases), set(now.ases)),
                           ("routers", set(running.routers), set(now.routers))):
        if new - old:
            out.append(f"{what} added: {_names(new - old)}")
        if old - new:
            out.append(f"{what} removed: {_names(old - new)}")
    moved = [a for a in set(running.ases) & set(now.ases) if running.ases[a].server != now.ases[a].server]
    if moved:
        out.append(f"ASes moved to another server: {_names(moved)}")
    old_links = {k: lid for lid, k in link_keys(running).items()}
    new_links = {k: lid for lid, k in link_keys(now).items()}
    added = [f"{k[0]}-{k[1]}" for k in new_links if k not in old_links]
    removed = [f"{k[0]}-{k[1]}" for k in old_links if k not in new_links]
    if added:
        out.append(f"links added: {_names(added)}")
    if removed:
        out.append(f"links removed: {_names(removed)}")
    renumbered = [f"{old_links[k]}->{new_links[k]}" for k in old_links if k in new_links and old_links[k] != new_links[k]]
    if renumbered:
        out.append(f"links renumbered: {_names(renumbered)}")
    if running.fabric != now.fabric:
        changed = [f for f in running.fabric.__dataclass_fields__
                   if getattr(running.fabric, f) != getattr(now.fabric, f)]
        out.append(f"fabric changed: {', '.join(changed)}")
    other = [new_links[k] for k in old_links if k in new_links
             and (running.link(old_links[k]).rel, running.link(old_links[k]).shaping)
             != (now.link(new_links[k]).rel, now.link(new_links[k]).shaping)]
    if other:
        out.append(f"links with another relationship or shaping: {_names(other)}")
    if not out and (running.ixps != now.ixps or running.ases != now.ases):
        out.append("AS or IXP settings changed")
    return out
