"""Link shaping with tc: what each shaped router interface should carry (pure), and making it so.

Every router end of a shaped link shapes its own egress, so both directions are shaped, on
intra-AS, local inter-AS and remote links alike (a remote link's two ends are on two servers; each
server shapes its own end).

    rate (and buffer)   root ``tbf``, handle 6d6e: (ours: "mn"), burst = max(3000 bytes, 10 ms at
                        the rate); the queue is ``limit BUFFER`` or ``latency BUFFER``, default
                        ``latency 50ms``
    delay               ``netem delay D`` -- the tbf's child (handle 6d6f:) when there is a rate,
                        else the root qdisc (handle 6d6f:)

Kernels without sch_netem (this project's test machines) cannot add delay: the rate is still
applied, and `apply_plan` returns ONE warning naming every link whose delay was not applied.
Interfaces whose link lost its shaping get our qdisc removed; a root qdisc that is not ours
(another handle) is replaced only when the link is shaped.
"""
from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import AbstractSet, Callable, Dict, List, Optional, Tuple

from ..topology import names
from ..topology.model import Shaping

TBF_HANDLE = "6d6e:"
NETEM_HANDLE = "6d6f:"
DEFAULT_LATENCY_US = 50_000
MIN_BURST = 3000


@dataclass(frozen=True)
class Shaped:
    node: str               # router node id
    ifname: str
    link: str               # "link 3" or "1.ZURI-1.GENE" (for messages)
    shaping: Optional[Shaping]


def burst_bytes(rate_bps: int) -> int:
    return max(MIN_BURST, rate_bps // 8 // 100)


def tbf_args(s: Shaping) -> List[str]:
    assert s.rate_bps is not None
    args = ["tbf", "rate", f"{s.rate_bps}bit", "burst", str(burst_bytes(s.rate_bps))]
    if s.buffer_bytes is not None:
        args += ["limit", str(max(s.buffer_bytes, burst_bytes(s.rate_bps)))]
    else:
        args += ["latency", f"{s.latency_us or DEFAULT_LATENCY_US}us"]
    return args


def expected_latency_us(s: Shaping) -> int:
    """What the kernel reports as the tbf's `lat` for this shaping (limit converts to time)."""
    assert s.rate_bps is not None
    if s.buffer_bytes is None:
        return s.latency_us or DEFAULT_LATENCY_US
    limit = max(s.buffer_bytes, burst_bytes(s.rate_bps))
    return int(1_000_000 * (limit - burst_bytes(s.rate_bps)) / (s.rate_bps / 8))


def wanted(plan) -> List[Shaped]:
    """Every router interface of `plan` that is an end of an intra-AS or inter-AS link, with the
    shaping it should carry (None: none). Host links are never shaped."""
    out: List[Shaped] = []
    for veth in plan.veths:
        if veth.kind not in ("ring", "inter", "remote", "ixp", "ixp-member", "l2-host"):
            continue
        if veth.kind == "ixp":
            label = f"{veth.b.node} {veth.a.node}"        # "ixp100 1.BASE": a member's port
        elif veth.kind == "ixp-member":
            label = f"{veth.a.ifname} {veth.a.node}"      # the same, the member on another server
        else:
            label = f"link {veth.link_id}" if veth.link_id is not None else f"{veth.a.node}-{veth.b.node}"
        for end in (veth.a, veth.b):
            if end.node is not None and not (veth.kind == "ixp" and end is veth.b):
                out.append(Shaped(end.node, end.ifname, label, end.shaping))
    return out


# ---- reading and comparing ------------------------------------------------------------------

def _netem_delay_us(options: dict) -> Optional[float]:
    """netem's delay from tc's JSON (iproute2 versions differ: seconds in a dict, or a number)."""
    d = options.get("delay")
    if isinstance(d, dict):
        d = d.get("delay")
    if isinstance(d, (int, float)):
        return d * 1e6 if d < 100 else float(d)      # seconds (float) or microseconds
    return None


def matches(qdiscs: List[dict], s: Optional[Shaping], netem: bool) -> bool:
    """Do the interface's qdiscs (tc -j qdisc show) carry exactly shaping `s`?"""
    root = next((q for q in qdiscs if q.get("root")), None)
    ours = root is not None and root.get("handle") in (TBF_HANDLE, NETEM_HANDLE)
    if not s:
        return not ours
    want_delay = bool(s.delay_us) and netem
    child = next((q for q in qdiscs if q.get("handle") == NETEM_HANDLE), None)
    if s.rate_bps is not None:
        if root is None or root.get("kind") != "tbf" or root.get("handle") != TBF_HANDLE:
            return False
        o = root.get("options", {})
        if o.get("rate") != s.rate_bps // 8 or o.get("burst") != burst_bytes(s.rate_bps):
            return False
        if abs(int(o.get("lat", -10 ** 9)) - expected_latency_us(s)) > max(1000, expected_latency_us(s) // 50):
            return False
    elif want_delay:
        child = root if root is not None and root.get("handle") == NETEM_HANDLE else None
    if want_delay:
        got = _netem_delay_us(child.get("options", {})) if child else None
        return got is not None and abs(got - s.delay_us) <= 1
    return child is None


# ---- applying -------------------------------------------------------------------------------

Runner = Callable[[Optional[str], List[str]], Tuple[int, str]]


def run_tc(nspath: Optional[str], args: List[str]) -> Tuple[int, str]:
    """tc in the network namespace `nspath` (None: here); (exit code, stdout or stderr)."""
    if args == ["__probe_netem__"]:
        argv = ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
    else:
        argv = (names.nsenter_prefix(nspath) if nspath else []) + ["tc", *args]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return res.returncode, (res.stdout if res.returncode == 0 else res.stderr.strip())


def _read(run: Runner, nspath: Optional[str], ifname: str) -> List[dict]:
    code, out = run(nspath, ["-j", "qdisc", "show", "dev", ifname])
    if code != 0:
        raise RuntimeError(f"tc qdisc show dev {ifname}: {out}")
    try:
        data = json.loads(out or "[]")
    except ValueError:
        raise RuntimeError(f"tc qdisc show dev {ifname}: unreadable output") from None
    return data if isinstance(data, list) else []


def _netem_missing(message: str) -> bool:
    return "unknown" in message.lower() or "no such file" in message.lower()


def ensure(run: Runner, nspath: Optional[str], item: Shaped, netem: Dict[str, bool],
           fresh: bool = False) -> List[str]:
    """Make one interface carry its shaping; `netem['ok']` turns False when the kernel lacks it.
    `fresh`: the interface was created in this run, so it has the kernel's default qdisc and
    reading it first (one tc process per interface, most of the time at class size) is skipped."""
    s, dev = item.shaping, item.ifname
    qdiscs = [] if fresh else _read(run, nspath, dev)
    if matches(qdiscs, s, netem.get("ok", True)):
        return []
    root = next((q for q in qdiscs if q.get("root")), None)
    if not s:
        run(nspath, ["qdisc", "del", "dev", dev, "root"])
        return [f"{item.node}:{dev} shaping removed"]
    if root is not None and root.get("handle") in (TBF_HANDLE, NETEM_HANDLE):
        run(nspath, ["qdisc", "del", "dev", dev, "root"])          # start clean: kinds may differ
    done: List[str] = []
    if s.rate_bps is not None:
        code, out = run(nspath, ["qdisc", "replace", "dev", dev, "root", "handle", TBF_HANDLE, *tbf_args(s)])
        if code != 0:
            raise RuntimeError(f"tc tbf on {item.node}:{dev}: {out}")
        done.append(f"rate {s.describe().split(' ')[0]}")
    if s.delay_us and netem.get("ok", True):
        parent = ["parent", f"{TBF_HANDLE}1"] if s.rate_bps is not None else ["root"]
        code, out = run(nspath, ["qdisc", "replace", "dev", dev, *parent, "handle", NETEM_HANDLE,
                                 "netem", "delay", f"{s.delay_us}us"])
        if code != 0 and _netem_missing(out):
            netem["ok"] = False
        elif code != 0:
            raise RuntimeError(f"tc netem on {item.node}:{dev}: {out}")
        else:
            done.append(f"delay {s.delay_us}us")
    return [f"{item.node}:{dev} shaped ({', '.join(done)})"] if done else []


MARKER = "shaped"     # in the server's state dir while any interface carries our qdiscs


def apply_plan(plan, nspath_of: Callable[[str], Optional[str]], run: Runner = run_tc,
               fresh: AbstractSet[Tuple[str, str]] = frozenset()) -> Tuple[List[str], Optional[str]]:
    """Shape every link end of `plan`; (changes, the one warning or None). `fresh`: the
    (node, ifname) ends created in this run (see `ensure`)."""
    import os
    items = wanted(plan)
    marker = os.path.join(plan.state_dir, MARKER)
    shaped = any(i.shaping for i in items)
    if not shaped and not os.path.exists(marker):      # nothing wanted, nothing of ours to remove
        return [], None
    netem: Dict[str, bool] = {}
    if any(i.shaping and i.shaping.delay_us for i in items):
        netem["ok"] = netem_available(run)
    changes: List[str] = []
    for item in items:
        changes += ensure(run, nspath_of(item.node), item, netem, fresh=(item.node, item.ifname) in fresh)
    if shaped:
        with open(marker, "w") as fh:
            fh.write("tc qdiscs 6d6e:/6d6f: on link interfaces\n")
    elif os.path.exists(marker):
        os.unlink(marker)
    delayed = sorted({i.link for i in items if i.shaping and i.shaping.delay_us}, key=_link_order)
    warning = None
    if delayed and netem.get("ok") is False:
        warning = (f"link delay NOT applied on {plan.server}: this kernel has no netem (sch_netem); "
                   f"rate and buffer are; links without their delay: {_few(delayed)}")
    return changes, warning


def _few(names: List[str], shown: int = 6) -> str:
    # one readable line even at class size (hundreds of layer-2 links per server)
    if len(names) <= shown:
        return ", ".join(names)
    return f"{len(names)}: {', '.join(names[:shown])} and {len(names) - shown} more"


def netem_available(run: Runner = run_tc) -> bool:
    """Whether this kernel has sch_netem: tried on `lo` of a throwaway network namespace."""
    code, _ = run(None, ["__probe_netem__"])
    return code == 0


def _link_order(label: str) -> Tuple[int, str]:
    return (0, f"{int(label.split()[1]):08d}") if label.startswith("link ") else (1, label)


# ---- what a running lab carries (for `lab status`) -----------------------------------------

def observed(qdiscs: List[dict]) -> str:
    """A short description of our qdiscs on an interface: `tbf 10mbit lat 50ms + netem 2ms`, or `none`."""
    parts = []
    for q in qdiscs:
        o = q.get("options", {})
        if q.get("kind") == "tbf" and q.get("handle") == TBF_HANDLE:
            from ..topology.model import _fmt_rate, _fmt_time
            parts.append(f"tbf {_fmt_rate(int(o.get('rate', 0)) * 8)} lat {_fmt_time(int(round(int(o.get('lat', 0)), -2)))}")
        elif q.get("kind") == "netem" and q.get("handle") == NETEM_HANDLE:
            d = _netem_delay_us(o)
            parts.append(f"netem {int(d)}us" if d is not None else "netem")
    return " + ".join(parts) or "none"


def lab_rows(topo, plan_of: Callable[[str], object], read: Callable[[str, str], Optional[List[dict]]]
             ) -> List[dict]:
    """One row per shaped link: configured shaping and what each router end carries.
    `plan_of(server)` is the server's provisioning plan; `read(node, ifname)` the interface's qdiscs
    (tc -j qdisc show) or None when they cannot be read."""
    rows: Dict[str, dict] = {}
    for server in topo.servers:
        for item in wanted(plan_of(server)):
            if not item.shaping:
                continue
            row = rows.setdefault(item.link, {"link": item.link, "configured": item.shaping.describe(),
                                              "ends": {}, "delay_applied": True})
            q = read(item.node, item.ifname)
            row["ends"][f"{item.node}:{item.ifname}"] = "?" if q is None else observed(q)
            if item.shaping.delay_us and (q is None or not any(x.get("kind") == "netem" for x in q)):
                row["delay_applied"] = False
    return sorted(rows.values(), key=lambda r: _link_order(r["link"]))
