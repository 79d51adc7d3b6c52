"""Per-group resource bounds: everything a group runs (its door shells and every device session)
goes into one cgroup per group, bounding processes, memory and CPU share.

detect() tells which mechanism the machine offers:
  "v2"       cgroup2 at /sys/fs/cgroup with pids, memory and cpu controllers (most real servers):
             /sys/fs/cgroup/minet-<tag>/as<ASN>/{pids.max, memory.max, memory.swap.max, cpu.weight}
  "v1"       the v1 controllers (this project's machines): /sys/fs/cgroup/{pids,memory,cpu}/
             minet-<tag>/as<ASN>/{pids.max, memory.limit_in_bytes, cpu.shares}
  "rlimits"  neither: RLIMIT_NPROC (per user: the group's user, so per group), RLIMIT_AS per process
rlimits are set in every case too (defence in depth). plan() is pure; apply()/remove() write.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import List, Tuple

from .settings import Limits

ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("pids", "memory", "cpu")


def detect(root: str = ROOT) -> str:
    try:
        with open(os.path.join(root, "cgroup.controllers")) as fh:
            have = fh.read().split()
        if all(c in have for c in V1_CONTROLLERS):
            return "v2"
    except OSError:
        pass
    if all(os.path.exists(os.path.join(root, c, "tasks")) for c in V1_CONTROLLERS):
        return "v1"
    return "rlimits"


@dataclass(frozen=True)
class Plan:
    mode: str
    dirs: Tuple[str, ...]                    # cgroup directories of the group, made in this order
    writes: Tuple[Tuple[str, str], ...]      # (file, value) written after they exist
    procs: Tuple[str, ...]                   # where a pid is written to put a process in the group


def cpu_shares(weight: int) -> int:
    """cgroup v1 cpu.shares for a v2-style weight (100 = 1024, the default share)."""
    return max(2, weight * 1024 // 100)


def plan(mode: str, tag: str, asn: int, limits: Limits, root: str = ROOT) -> Plan:
    parent = f"minet-{tag}"
    group = f"as{asn}"
    if mode == "v2":
        top, mine = os.path.join(root, parent), os.path.join(root, parent, group)
        ctl = "+pids +memory +cpu"
        return Plan(mode, (top, mine), (
            (os.path.join(root, "cgroup.subtree_control"), ctl),
            (os.path.join(top, "cgroup.subtree_control"), ctl),
            (os.path.join(mine, "pids.max"), str(limits.pids)),
            (os.path.join(mine, "memory.max"), str(limits.memory)),
            (os.path.join(mine, "memory.swap.max"), "0"),
            (os.path.join(mine, "cpu.weight"), str(limits.cpu_weight)),
        ), (os.path.join(mine, "cgroup.procs"),))
    if mode == "v1":
        dirs: List[str] = []
        for c in V1_CONTROLLERS:
            dirs += [os.path.join(root, c, parent), os.path.join(root, c, parent, group)]
        mine = {c: os.path.join(root, c, parent, group) for c in V1_CONTROLLERS}
        return Plan(mode, tuple(dirs), (
            (os.path.join(mine["pids"], "pids.max"), str(limits.pids)),
            (os.path.join(mine["memory"], "memory.limit_in_bytes"), str(limits.memory)),
            (os.path.join(mine["cpu"], "cpu.shares"), str(cpu_shares(limits.cpu_weight))),
        ), tuple(os.path.join(mine[c], "cgroup.procs") for c in V1_CONTROLLERS))
    return Plan("rlimits", (), (), ())


def _write(path: str, value: str) -> None:
    with open(path, "w") as fh:
        fh.write(value)


def apply(p: Plan) -> List[str]:
    """Make the group's cgroups and set its bounds; problems met (a bound not set is one)."""
    problems: List[str] = []
    for d in p.dirs:
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as exc:
            problems.append(f"{d}: {exc.strerror}")
    for path, value in p.writes:
        try:
            if path.endswith("subtree_control"):
                with open(path) as fh:
                    if all(c[1:] in fh.read().split() for c in value.split()):
                        continue
            _write(path, value)
        except OSError as exc:
            if not path.endswith("memory.swap.max"):      # no swap accounting: memory.max still holds
                problems.append(f"{path}: {exc.strerror}")
    return problems


def join(p: Plan, pid: int) -> None:
    """Put process `pid` (and its future children) into the group."""
    for path in p.procs:
        _write(path, str(pid))


def remove(p: Plan) -> List[str]:
    """Remove the group's cgroups (deepest first); a cgroup still holding processes stays."""
    problems: List[str] = []
    for d in sorted(p.dirs, key=len, reverse=True):
        if not os.path.isdir(d):
            continue
        try:
            os.rmdir(d)
        except OSError as exc:
            if not os.path.basename(d).startswith("minet-"):   # the shared parent may hold other groups
                problems.append(f"{d}: {exc.strerror}")
    return problems


def rlimits(mode: str, limits: Limits) -> List[Tuple[int, int]]:
    """(resource, value) set on every device session. RLIMIT_NPROC counts the processes of the
    group's user machine-wide, so it bounds the group even without cgroups; RLIMIT_AS (address
    space of one process, a coarse stand-in for memory) only where no memory cgroup does better."""
    import resource
    out = [(resource.RLIMIT_NPROC, limits.pids), (resource.RLIMIT_CORE, 0),
           (resource.RLIMIT_FSIZE, 64 << 20), (resource.RLIMIT_NOFILE, 1024)]
    if mode == "rlimits":
        out.append((resource.RLIMIT_AS, max(limits.memory, 256 << 20)))
    return out


def members(p: Plan) -> List[int]:
    pids: List[int] = []
    for path in p.procs[:1]:
        with contextlib.suppress(OSError):
            with open(path) as fh:
                pids += [int(x) for x in fh.read().split()]
    return pids
