"""The connectivity matrix: from each configured AS's chosen host, ping every other AS's host.

Pure parts (unit-tested): which host stands for an AS (`targets`), the probe script run in a
source host, parsing its output, the `--json` shape, the terminal grid, the HTML page and the
difference between two rounds. `run_matrix` is the impure part: one probe per source AS, run in
its host through the lab's exec machinery (`ip netns exec` or `docker exec`), at most `parallel`
sources at a time; each probe pings all its destinations at once (fping when the node has it,
else one `ping` per destination in the background), with retries, so a healthy 60-AS lab is a
few seconds and an unreachable destination costs about 1.5 s per source, not per pair.
"""
from __future__ import annotations

import html
import ipaddress
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import UserError
from ..topology import Topology
from ..topology.addressing import topology_addressing, topology_addressing6
from ..topology import services
from ..topology.places import Places, node_id

Pair = Tuple[int, int]


@dataclass(frozen=True)
class Target:
    asn: int
    node: str            # the host node that stands for the AS: its MATRIX_TARGET router's host, else
                         # "<asn>.<first router>.host"
    ip: str              # its address: what the other ASes ping
    source: str = ""     # the host the AS pings from: its MATRIX router's host (default: `node`)

    @property
    def from_node(self) -> str:
        return self.source or self.node


class FamilyError(UserError, ValueError):
    """The topology has no addresses of the family asked for (IPv6 with fabric.ipv6: false)."""


def targets(topo: Topology, family: int = 4) -> List[Target]:
    """One host per configured AS, by ASN: the host of the AS's MATRIX_TARGET router, else of its first
    router (the same every run), pinged from the host of its MATRIX router (else the same host),
    with its IPv4 address (family 4) or its IPv6 address (family 6, a dual-stack topology only)."""
    if family not in (4, 6):
        raise ValueError(f"family {family!r}: 4 or 6")
    if family == 6 and not topo.fabric.ipv6:
        raise FamilyError(f"{topo.name}: fabric.ipv6 is false: the hosts have no IPv6 addresses")
    addressing = topology_addressing(topo)
    addressing6 = topology_addressing6(topo, addressing) if family == 6 else None
    out = []
    for asn in sorted(topo.ases):
        as_ = topo.ases[asn]
        if not as_.configure:
            continue
        # the topology's MATRIX_TARGET / MATRIX routers (topology/services.py), else the first router
        first = services.service_router(as_, services.MATRIX_TARGET) or as_.routers[0]
        source = services.service_router(as_, services.MATRIX) or first
        ip = (addressing6[asn].routers[first].host_ip if addressing6 is not None
              else addressing[asn].routers[first].host_ip)
        out.append(Target(asn=asn, node=node_id(asn, first, host=True), ip=ip,
                          source=node_id(asn, source, host=True)))
    return out


# ---- the probe run inside a source host -------------------------------------------------------

_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def _check_address(ip: str, family: int) -> str:
    """`ip` in its canonical text form if it is an address of `family`, else ValueError (the
    addresses go into a shell script)."""
    if family == 4:
        if not _IP.match(ip):
            raise ValueError(f"not an IPv4 address: {ip!r}")
        return ip
    try:
        addr = ipaddress.IPv6Address(ip)
    except ValueError:
        raise ValueError(f"not an IPv6 address: {ip!r}") from None
    if addr.scope_id is not None:       # "fe80::1%<anything>" parses; none goes into the script
        raise ValueError(f"not a global IPv6 address: {ip!r}")
    return str(addr)


def probe_script(ips: Sequence[str], timeout_ms: int = 500, retries: int = 2, family: int = 4) -> str:
    """sh script pinging every address of `ips` (all of `family`, 4 or 6) at once; prints one line
    per address.

    With fping: `IP is alive (RTT ms)` / `IP is unreachable`. Without (e.g. a container image with
    only iputils ping): `PROBE IP RTT` or `PROBE IP -`, one background ping per address, retried.
    IPv6 addresses are written in their canonical (compressed) form, as fping and ping print them.
    """
    if family not in (4, 6):
        raise ValueError(f"family {family!r}: 4 or 6")
    ips = [_check_address(ip, family) for ip in ips]
    joined = " ".join(ips)
    wait_s = max(1, round(timeout_ms / 1000))
    fam = f"-{family} "
    tries = " || ".join([f"ping {fam}-n -c 1 -W {wait_s} $ip 2>/dev/null"] * (retries + 1))
    return (f"if command -v fping >/dev/null 2>&1; then "
            f"fping {fam}-e -t {timeout_ms} -r {retries} -i 1 {joined} 2>/dev/null; "
            f"else for ip in {joined}; do "
            f"( out=$({tries}); t=$(printf '%s' \"$out\" | sed -n 's/.*time=\\([0-9.]*\\).*/\\1/p' | head -n 1); "
            f"echo \"PROBE $ip ${{t:--}}\" ) & done; wait; fi")


def _canonical(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


_FPING_ALIVE = re.compile(r"^(\S+) is alive(?: \(([\d.]+) ms\))?")
_FPING_DEAD = re.compile(r"^(\S+) is unreachable")
_PROBE = re.compile(r"^PROBE (\S+) (\S+)$")


def parse_probe(text: str) -> Dict[str, Optional[float]]:
    """{address: round-trip time in ms, or None when it did not answer} from a probe's output.

    Both output forms of `probe_script`; an address that answered with no time is given 0.0. Lines
    of other kinds are ignored (an address missing from the result was not measured). IPv6
    addresses are keyed in their canonical form (`targets` gives them so).
    """
    out: Dict[str, Optional[float]] = {}
    for line in text.splitlines():
        line = line.strip()
        m = _FPING_ALIVE.match(line)
        if m:
            out[_canonical(m.group(1))] = float(m.group(2)) if m.group(2) else 0.0
            continue
        m = _FPING_DEAD.match(line)
        if m:
            out.setdefault(_canonical(m.group(1)), None)
            continue
        m = _PROBE.match(line)
        if m:
            try:
                out[_canonical(m.group(1))] = float(m.group(2))
            except ValueError:
                out.setdefault(_canonical(m.group(1)), None)
    return out


# ---- one round ---------------------------------------------------------------------------------

@dataclass
class Matrix:
    asns: List[int]
    rtt: Dict[Pair, Optional[float]] = field(default_factory=dict)   # ms; None: no answer
    errors: Dict[int, str] = field(default_factory=dict)             # sources whose probe did not run
    at: float = 0.0                   # wall-clock time the round started
    seconds: float = 0.0              # how long it took
    name: str = ""
    family: int = 4                   # 4: the hosts' IPv4 addresses were pinged; 6: their IPv6 ones

    def pairs(self) -> List[Pair]:
        return [(s, d) for s in self.asns for d in self.asns if s != d]

    def ok(self, src: int, dst: int) -> bool:
        return self.rtt.get((src, dst)) is not None

    @property
    def ok_count(self) -> int:
        return sum(1 for p in self.pairs() if self.ok(*p))

    @property
    def total(self) -> int:
        n = len(self.asns)
        return n * (n - 1)

    def to_json(self) -> Dict[str, object]:
        """The `--json` object: {"pairs": [{"src", "dst", "ok", "rtt_ms"}, ...], "ok": N, "total": N,
        "family": 4 or 6}."""
        pairs = []
        for s, d in self.pairs():
            r = self.rtt.get((s, d))
            pairs.append({"src": s, "dst": d, "ok": r is not None, "rtt_ms": None if r is None else round(r, 3)})
        return {"pairs": pairs, "ok": sum(1 for p in pairs if p["ok"]), "total": len(pairs), "family": self.family}

    def to_record(self) -> Dict[str, object]:
        """What the status page keeps: the `--json` object plus when, how long, which ASes."""
        rec = self.to_json()
        rec.update(name=self.name, asns=list(self.asns), at=self.at, seconds=round(self.seconds, 2),
                   errors={str(k): v for k, v in self.errors.items()})
        return rec

    @classmethod
    def from_json(cls, obj: Dict[str, object]) -> "Matrix":
        pairs = obj.get("pairs")
        if not isinstance(pairs, list):
            raise ValueError("no pairs list")
        asns = obj.get("asns")
        if asns is None:
            asns = sorted({int(p["src"]) for p in pairs} | {int(p["dst"]) for p in pairs})
        family = int(obj.get("family") or 4)
        if family not in (4, 6):
            raise ValueError(f"family {family}: 4 or 6")
        m = cls(asns=[int(a) for a in asns], at=float(obj.get("at") or 0.0),
                seconds=float(obj.get("seconds") or 0.0), name=str(obj.get("name") or ""), family=family)
        for p in pairs:
            r = p.get("rtt_ms")
            m.rtt[(int(p["src"]), int(p["dst"]))] = (float(r) if r is not None else 0.0) if p.get("ok") else None
        m.errors = {int(k): str(v) for k, v in (obj.get("errors") or {}).items()}
        return m


Runner = Callable[[Target, str], Tuple[int, str, str]]     # (source, script) -> (rc, stdout, stderr)


def build_matrix(topo: Topology, runner: Runner, parallel: int = 24, timeout_ms: int = 500,
                 retries: int = 2, clock: Callable[[], float] = time.time, family: int = 4) -> Matrix:
    """One round in `family` (4 or 6): every source's probe through `runner`, at most `parallel`
    at once."""
    tg = targets(topo, family)
    m = Matrix(asns=[t.asn for t in tg], at=clock(), name=topo.name, family=family)
    t0 = time.monotonic()
    by_ip = {t.ip: t.asn for t in tg}

    def one(src: Target) -> Tuple[Target, int, str, str]:
        ips = [t.ip for t in tg if t.asn != src.asn]
        if not ips:
            return src, 0, "", ""
        rc, out, err = runner(src, probe_script(ips, timeout_ms=timeout_ms, retries=retries, family=family))
        return src, rc, out, err

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for src, rc, out, err in pool.map(one, tg):
            got = parse_probe(out)
            if not got and len(tg) > 1:
                m.errors[src.asn] = (err.strip().splitlines() or [f"probe exited {rc}"])[-1]
            for ip, rtt in got.items():
                dst = by_ip.get(ip)
                if dst is not None and dst != src.asn:
                    m.rtt[(src.asn, dst)] = rtt
    m.seconds = time.monotonic() - t0
    return m


def run_matrix(places: Places, parallel: int = 24, timeout_ms: int = 500, retries: int = 2,
               probe_timeout: float = 60.0, family: int = 4) -> Matrix:
    """One round on the running nodes at `places`, through each source host's exec prefix."""
    from . import nodes

    def runner(src: Target, script: str) -> Tuple[int, str, str]:
        try:
            argv = nodes.exec_argv(places, src.from_node, ["sh", "-c", script])
        except nodes.NodeError as exc:
            return 127, "", str(exc)
        return nodes.run(argv, timeout=probe_timeout)
    return build_matrix(places.topo, runner, parallel=parallel, timeout_ms=timeout_ms, retries=retries, family=family)


# ---- differences between rounds ----------------------------------------------------------------

def diff(prev: Matrix, cur: Matrix) -> List[str]:
    """What changed from `prev` to `cur`, one line per AS pair (lost / restored / new / gone)."""
    lines = []
    before, after = set(prev.pairs()), set(cur.pairs())
    for s, d in cur.pairs():
        if (s, d) not in before:
            lines.append(f"AS{s} -> AS{d}: new pair, {'reaches' if cur.ok(s, d) else 'no reply'}")
        elif prev.ok(s, d) and not cur.ok(s, d):
            lines.append(f"AS{s} -> AS{d}: lost")
        elif not prev.ok(s, d) and cur.ok(s, d):
            lines.append(f"AS{s} -> AS{d}: restored ({cur.rtt[(s, d)]:.2f} ms)")
    for s, d in sorted(before - after):
        lines.append(f"AS{s} -> AS{d}: no longer measured")
    return lines


def summarize_changes(lines: List[str], limit: int = 30) -> List[str]:
    if len(lines) <= limit:
        return lines
    return lines[:limit] + [f"... and {len(lines) - limit} more changes"]


# ---- terminal ----------------------------------------------------------------------------------

GREEN, RED, DIM, RESET = "\033[32m", "\033[31m", "\033[2m", "\033[0m"
OK_CH, FAIL_CH, SELF_CH = "●", "✗", "·"


def render_grid(m: Matrix, color: bool = False) -> str:
    """Rows = source AS, columns = destination AS; one character per cell above 30 ASes.

    Each row ends with how many destinations the source reaches (`<` when not all); under the
    grid, the ASes cut off from everyone, then the other failing pairs, then the totals.
    """
    asns = m.asns
    n = len(asns)
    wide = n <= 30
    cw = 2 if wide else 1
    label_w = max([len(f"AS{a}") for a in asns] + [5]) + 1

    def paint(ch: str, code: str) -> str:
        return f"{code}{ch}{RESET}" if color else ch

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.at)) if m.at else ""
    pct = 100.0 * m.ok_count / m.total if m.total else 100.0
    out = [f"connectivity matrix {m.name}{' (IPv6)' if m.family == 6 else ''}: {n} ASes, {m.ok_count}/{m.total} pairs reach ({pct:.1f}%), "
           f"{m.seconds:.1f} s  {when}".rstrip(),
           f"legend: {paint(OK_CH, GREEN)} reaches  {paint(FAIL_CH, RED)} no reply  {SELF_CH} self   "
           f"rows: from AS (host), columns: to AS; right: destinations reached"]
    digits = max(len(str(a)) for a in asns) if asns else 1
    for k in range(digits):              # column headers, written downwards
        row = "".join(str(a).rjust(digits)[k].ljust(cw) for a in asns)
        out.append(" " * label_w + ("to " if k == digits - 1 else "   ") + row.rstrip())
    for s in asns:
        cells = []
        for d in asns:
            if s == d:
                cells.append(paint(SELF_CH, DIM) if color else SELF_CH)
            elif m.ok(s, d):
                cells.append(paint(OK_CH, GREEN))
            else:
                cells.append(paint(FAIL_CH, RED))
        reached = sum(1 for d in asns if d != s and m.ok(s, d))
        sep = " " if wide else ""
        mark = "" if reached == n - 1 else "  <"
        err = f"  (probe failed: {m.errors[s]})" if s in m.errors else ""
        out.append(f"AS{s}".ljust(label_w) + "   " + sep.join(cells) + f"  {reached}/{n - 1}{mark}{err}")
    inbound = {d: sum(1 for s in asns if s != d and m.ok(s, d)) for d in asns}
    outbound = {s: sum(1 for d in asns if d != s and m.ok(s, d)) for s in asns}
    cut = [a for a in asns if n > 1 and inbound[a] == 0 and outbound[a] == 0]
    if cut:
        out.append("cut off (reach no AS, reached by none): " + ", ".join(f"AS{a}" for a in cut))
    others = [(s, d) for s, d in m.pairs() if not m.ok(s, d) and s not in cut and d not in cut]
    if others:
        shown = ", ".join(f"AS{s}->AS{d}" for s, d in others[:12])
        out.append(f"{'other ' if cut else ''}failing pairs: {len(others)}: {shown}"
                   + (f", ... ({len(others) - 12} more)" if len(others) > 12 else ""))
    bad = m.total - m.ok_count
    out.append(f"total: {m.ok_count} of {m.total} pairs reach, {bad} do not" if bad else
               f"total: all {m.total} pairs reach")
    return "\n".join(out)


# ---- HTML --------------------------------------------------------------------------------------

def render_html(m: Matrix, refresh: Optional[float] = None) -> str:
    """A self-contained page (inline CSS, no script, nothing fetched) with the grid."""
    asns = m.asns
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.at)) if m.at else ""
    head = "".join(f"<th class=col>{a}</th>" for a in asns)
    rows = []
    for s in asns:
        cells = []
        for d in asns:
            if s == d:
                cells.append("<td class=self></td>")
                continue
            r = m.rtt.get((s, d))
            tip = f"AS{s} → AS{d}: " + (f"{r:.2f} ms" if r is not None else "no reply")
            cells.append(f"<td class={'ok' if r is not None else 'bad'} title=\"{html.escape(tip)}\"></td>")
        reached = sum(1 for d in asns if d != s and m.ok(s, d))
        rows.append(f"<tr><th class=row>AS{s}</th>{''.join(cells)}<td class=tot>{reached}/{len(asns) - 1}</td></tr>")
    meta = f'<meta http-equiv="refresh" content="{int(refresh)}">' if refresh else ""
    return f"""<!doctype html>
<html lang=en><head><meta charset=utf-8>{meta}<title>minet matrix {html.escape(m.name)}{' (IPv6)' if m.family == 6 else ''}</title>
<style>
body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}
table{{border-collapse:collapse}} td,th{{padding:0}}
td.ok,td.bad,td.self{{width:12px;height:12px;border:1px solid #fff}}
td.ok{{background:#2e9d4f}} td.bad{{background:#d93025}} td.self{{background:#ddd}}
th.col{{font-size:9px;writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;padding:2px 0}}
th.row{{font-size:11px;text-align:right;padding-right:6px;font-weight:normal;white-space:nowrap}}
td.tot{{font-size:11px;padding-left:6px;white-space:nowrap}}
.legend span{{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 12px}}
</style></head><body>
<h1>Connectivity matrix: {html.escape(m.name)}{' (IPv6)' if m.family == 6 else ''}</h1>
<p>{len(asns)} ASes, <b>{m.ok_count}</b> of {m.total} pairs reach each other; measured {html.escape(when)} in {m.seconds:.1f} s.
<span class=legend><span style="background:#2e9d4f"></span>reaches<span style="background:#d93025"></span>no reply
<span style="background:#ddd"></span>self</span></p>
<p>Rows: from the AS's host; columns: to the AS's host. Hover a cell for the round-trip time.</p>
<table><tr><th></th>{head}<th></th></tr>
{chr(10).join(rows)}
</table></body></html>
"""
