"""Link shaping (provision/shaping.py) against a fake tc: which interfaces, which qdiscs, idempotent,
removed when the topology drops it, and one warning naming the links when the kernel has no netem."""
import re


from minet_sdn.provision import shaping
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import parse_topology
from minet_sdn.topology.model import Shaping

TOPO = """
name: t
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases:
  1:
    server: VM1
    routers: [A, B, C]
    links:
      - {a: A, b: B, throughput: 20mbit, delay: 2ms}
      - {a: B, b: C}
  2: {server: VM1, routers: [X]}
  3: {server: VM2, routers: [Y]}
links:
  - {a: 1.A, b: 2.X, rel: peer, throughput: 5mbit, buffer: 32kb}
  - {a: 1.C, b: 3.Y, rel: peer, throughput: 1mbit, delay: 10ms, buffer: 20ms}
  - {a: 2.X, b: 3.Y, rel: peer}
"""


class FakeTc:
    """Enough of `tc` for shaping.py: per (namespace, device) qdisc lists in tc's JSON shape."""

    def __init__(self, netem=True):
        self.netem = netem
        self.qdiscs = {}
        self.calls = []

    def __call__(self, nspath, args):
        self.calls.append((nspath, args))
        if args == ["__probe_netem__"]:
            return (0, "") if self.netem else (2, "Error: Specified qdisc kind is unknown.")
        if args[:3] == ["-j", "qdisc", "show"]:
            got = self.qdiscs.get((nspath, args[4]), [])
            return 0, __import__("json").dumps(got or [{"kind": "noqueue", "handle": "0:", "root": True}])
        verb, dev = args[1], args[3]
        key = (nspath, dev)
        if verb == "del":
            self.qdiscs.pop(key, None)
            return 0, ""
        rest = args[4:]
        if rest[0] == "root":
            handle, kind, opts = rest[2], rest[3], rest[4:]
            parent = None
        else:
            parent, handle, kind, opts = rest[1], rest[3], rest[4], rest[5:]
        if kind == "netem" and not self.netem:
            return 2, "Error: Specified qdisc kind is unknown."
        o = dict(zip(opts[::2], opts[1::2]))
        if kind == "tbf":
            rate = int(o["rate"][:-3]) // 8
            burst = int(o["burst"])
            lat = int(o["latency"][:-2]) if "latency" in o else int(1e6 * (int(o["limit"]) - burst) / rate)
            q = {"kind": "tbf", "handle": handle, "root": True, "options": {"rate": rate, "burst": burst, "lat": lat}}
            self.qdiscs[key] = [q]
        else:
            q = {"kind": "netem", "handle": handle, "options": {"delay": {"delay": int(o["delay"][:-2]) / 1e6}}}
            if parent is None:
                q["root"] = True
                self.qdiscs[key] = [q]
            else:
                q["parent"] = parent
                self.qdiscs[key] = [x for x in self.qdiscs.get(key, []) if x["handle"] != handle] + [q]
        return 0, ""


def plan(text=TOPO, server="VM1", tmp_path=None):
    return build_plan(parse_topology(text, "t.yaml"), server, root=str(tmp_path))


def test_every_router_end_of_a_shaped_link_and_only_those(tmp_path):
    items = {(i.node, i.ifname): i.shaping for i in shaping.wanted(plan(tmp_path=tmp_path))}
    assert items[("1.A", "to_B")] == items[("1.B", "to_A")] == Shaping(rate_bps=20_000_000, delay_us=2000)
    assert items[("1.B", "to_C")] is None
    assert items[("1.A", "ext1")] == items[("2.X", "ext1")] == Shaping(rate_bps=5_000_000, buffer_bytes=32768)
    assert items[("1.C", "ext2")].latency_us == 20_000          # remote link: this server's end
    assert not any(ifname == "host" for _, ifname in items)     # host links are never shaped
    assert all(node is not None for node, _ in items)           # never the server's own veth end


def test_tbf_arguments():
    assert shaping.tbf_args(Shaping(rate_bps=10_000_000)) == ["tbf", "rate", "10000000bit", "burst", "12500",
                                                             "latency", "50000us"]
    assert shaping.tbf_args(Shaping(rate_bps=1_000_000, buffer_bytes=2000)) == [
        "tbf", "rate", "1000000bit", "burst", "3000", "limit", "3000"]


def test_applied_then_idempotent_with_netem(tmp_path):
    p = plan(tmp_path=tmp_path)
    import os
    os.makedirs(p.state_dir)
    tc = FakeTc(netem=True)
    changes, warning = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=tc)
    assert warning is None
    assert len(changes) == 5                     # A:to_B, B:to_A, A:ext1, X:ext1 and C:ext2 (this server's end)
    ab = tc.qdiscs[("/ns/1.A", "to_B")]
    assert ab[0]["kind"] == "tbf" and ab[0]["options"]["rate"] == 2_500_000
    assert ab[1]["kind"] == "netem" and ab[1]["parent"] == "6d6e:1"
    assert ("/ns/1.B", "to_C") not in tc.qdiscs
    again, warning = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=tc)
    assert again == [] and warning is None


def test_without_netem_one_warning_names_the_delayed_links_and_rate_still_applies(tmp_path):
    p = plan(tmp_path=tmp_path)
    import os
    os.makedirs(p.state_dir)
    tc = FakeTc(netem=False)
    changes, warning = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=tc)
    assert warning == ("link delay NOT applied on VM1: this kernel has no netem (sch_netem); rate and buffer are; "
                       "links without their delay: link 2, 1.A-1.B")
    assert tc.qdiscs[("/ns/1.A", "to_B")][0]["options"]["rate"] == 2_500_000
    assert not any(q["kind"] == "netem" for qs in tc.qdiscs.values() for q in qs)
    again, warning2 = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=tc)
    assert again == [] and warning2 == warning   # still said, never silently


def test_shaping_removed_when_the_topology_drops_it(tmp_path):
    p = plan(tmp_path=tmp_path)
    import os
    os.makedirs(p.state_dir)
    tc = FakeTc()
    shaping.apply_plan(p, lambda n: f"/ns/{n}", run=tc)
    plain = re.sub(r", (throughput|delay|buffer): [0-9a-z.]+", "", TOPO)
    p2 = plan(plain, tmp_path=tmp_path)
    changes, _ = shaping.apply_plan(p2, lambda n: f"/ns/{n}", run=tc)
    assert sorted(changes) == sorted(f"{n}:{i} shaping removed" for n, i in
                                     [("1.A", "to_B"), ("1.B", "to_A"), ("1.A", "ext1"), ("2.X", "ext1"), ("1.C", "ext2")])
    assert tc.qdiscs == {}
    assert shaping.apply_plan(p2, lambda n: f"/ns/{n}", run=tc) == ([], None)
    assert not os.path.exists(os.path.join(p2.state_dir, shaping.MARKER))


def test_no_shaping_anywhere_costs_no_tc_call(tmp_path):
    plain = re.sub(r", (throughput|delay|buffer): [0-9a-z.]+", "", TOPO)
    tc = FakeTc()
    assert shaping.apply_plan(plan(plain, tmp_path=tmp_path), lambda n: n, run=tc) == ([], None)
    assert tc.calls == []


def test_lab_rows_compare_configured_with_what_each_end_carries(tmp_path):
    topo = parse_topology(TOPO, "t.yaml")
    tc = FakeTc(netem=False)
    plans = {s: build_plan(topo, s, root=str(tmp_path)) for s in topo.servers}
    import os
    os.makedirs(plans["VM1"].state_dir)
    shaping.apply_plan(plans["VM1"], lambda n: n, run=tc)         # VM2 never provisioned

    def read(node, ifname):
        return None if node.startswith("3.") else tc.qdiscs.get((node, ifname), [])
    rows = {r["link"]: r for r in shaping.lab_rows(topo, plans.__getitem__, read)}
    assert list(rows) == ["link 1", "link 2", "1.A-1.B"]
    assert rows["link 1"]["configured"] == "5mbit buf 32kb"
    assert rows["link 1"]["ends"] == {"1.A:ext1": "tbf 5mbit lat 42.4ms", "2.X:ext1": "tbf 5mbit lat 42.4ms"}
    assert rows["link 2"]["ends"] == {"1.C:ext2": "tbf 1mbit lat 20ms", "3.Y:ext2": "?"}
    assert rows["1.A-1.B"]["delay_applied"] is False and rows["link 1"]["delay_applied"] is True


def test_link_view_shows_shaping():
    from minet_sdn.core.fabric import FabricCore
    from minet_sdn.core.views import link_view
    topo = parse_topology(TOPO, "t.yaml")
    core = FabricCore(topo)
    views = [link_view(core, l) for l in topo.links]
    assert views[0]["shaping"] == {"throughput": "5mbit", "buffer": "32kb"}
    assert views[2]["shaping"] is None


def test_the_no_netem_warning_stays_one_short_line_at_class_size():
    names = [f"{asn}.S{i}-l2-{asn}" for asn in range(1, 31) for i in range(4)]
    line = shaping._few(names)
    assert line.startswith("120: 1.S0-l2-1, 1.S1-l2-1") and line.endswith("and 114 more")
    assert shaping._few(["link 2", "1.A-1.B"]) == "link 2, 1.A-1.B"


def test_interfaces_created_in_this_run_are_shaped_without_reading_them_first(tmp_path):
    # one tc process per interface read was most of the shaping time at class size; a veth made in
    # this run has the kernel's default qdisc, so only the changes run, and the result is the same
    p = plan(tmp_path=tmp_path)
    import os
    os.makedirs(p.state_dir)
    every_end = {(i.node, i.ifname) for i in shaping.wanted(p)}
    fresh_tc, read_tc = FakeTc(netem=True), FakeTc(netem=True)
    fresh_changes, _ = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=fresh_tc, fresh=every_end)
    os.unlink(os.path.join(p.state_dir, shaping.MARKER))
    read_changes, _ = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=read_tc)
    assert fresh_changes == read_changes and fresh_tc.qdiscs == read_tc.qdiscs
    assert not any(args[:3] == ["-j", "qdisc", "show"] for _, args in fresh_tc.calls)
    assert sum(args[:3] == ["-j", "qdisc", "show"] for _, args in read_tc.calls) == len(every_end)
    # an interface that was already there is read: a qdisc of ours on an unshaped end is removed
    stale = FakeTc(netem=True)
    stale.qdiscs[("/ns/1.B", "to_C")] = [{"kind": "tbf", "handle": "6d6e:", "root": True, "options": {}}]
    changes, _ = shaping.apply_plan(p, lambda n: f"/ns/{n}", run=stale, fresh=every_end - {("1.B", "to_C")})
    assert "1.B:to_C shaping removed" in changes and ("/ns/1.B", "to_C") not in stale.qdiscs
