"""Link shaping for real: minet-provision puts tbf (and netem where the kernel has it) on both ends
of shaped intra-AS and local links and on this server's end of a remote link; a second run changes
nothing; dropping the shaping removes it; without netem, one warning names the delayed links.

Needs root, Open vSwitch, FRR (the fixtures' emulated server); skipped otherwise. The throughput
itself is measured in bench/shaping.py (timing belongs in benches)."""
from __future__ import annotations

import json

import pytest

from provision_fixtures import Site, emulated_servers, qdiscs, sh, skip_reason, write_topology

from minet_sdn.importers import to_yaml
from minet_sdn.provision.shaping import netem_available

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]


def topology(name, shaped=True):
    def sh_(**kw):
        return kw if shaped else {}
    return {
        "name": name,
        "servers": {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        "ases": {1: {"server": "VM1", "routers": ["A", "B", "C"],
                     "links": [{"a": "A", "b": "B", **sh_(throughput="20mbit", delay="2ms")}, {"a": "B", "b": "C"}]},
                 2: {"server": "VM1", "routers": ["X"]},
                 3: {"server": "VM2", "routers": ["Y"]}},
        "links": [{"a": "1.A", "b": "2.X", "rel": "peer", **sh_(throughput="5mbit", buffer="32kb")},
                  {"a": "1.C", "b": "3.Y", "rel": "peer", **sh_(throughput="1mbit", delay="10ms", buffer="20ms")}],
    }


def tbf(ns, dev):
    return next((q for q in qdiscs(ns, dev) if q.get("kind") == "tbf" and q.get("root")), None)


def test_shaping_applied_idempotent_and_removed():
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        tag = prefix.value
        path = write_topology(vm1, to_yaml(topology(tag)))
        ns = Site(prefix, vm1, path).ns
        try:
            res = vm1.provision(path, "--json")
            assert res.returncode == 0, res.stderr
            for node, dev in (("1.A", "to_B"), ("1.B", "to_A")):
                q = tbf(ns(node), dev)
                assert q and q["handle"] == "6d6e:" and q["options"]["rate"] == 20_000_000 // 8
            for node in ("1.A", "2.X"):
                q = tbf(ns(node), "ext1")
                assert q["options"]["rate"] == 5_000_000 // 8
                # limit 32 KiB less the burst (10 ms at the rate: 6250 bytes), at 625 kB/s: ~42.4 ms of queue
                assert abs(q["options"]["lat"] - 1e6 * (32768 - 6250) / 625_000) < 1000
            remote = tbf(ns("1.C"), "ext2")
            assert remote["options"]["rate"] == 125_000 and abs(remote["options"]["lat"] - 20_000) < 1000
            assert tbf(ns("1.B"), "to_C") is None and tbf(ns("1.A"), "host") is None
            warnings = [l for l in res.stderr.splitlines() if "warning:" in l]
            if netem_available():
                assert not warnings
                assert any(q["kind"] == "netem" for q in qdiscs(ns("1.A"), "to_B"))
            else:
                assert len(warnings) == 1 and warnings[0].endswith(
                    "links without their delay: link 2, 1.A-1.B"), warnings
            # traffic still flows through a shaped link
            sh("ip", "netns", "exec", ns("1.A"), "ping", "-c", "2", "-W", "2", "10.0.1.66")
            again = vm1.provision(path, "--json")
            assert again.returncode == 0 and json.loads(again.stdout)["n_changes"] == 0, again.stdout
            write_topology(vm1, to_yaml(topology(tag, shaped=False)))
            res = vm1.provision(path, "--json")
            assert res.returncode == 0, res.stderr
            for node, dev in (("1.A", "to_B"), ("1.B", "to_A"), ("1.A", "ext1"), ("2.X", "ext1"), ("1.C", "ext2")):
                assert tbf(ns(node), dev) is None, (node, dev)
        finally:
            vm1.provision(path, "--down")
