"""Connectivity matrix, pure parts: the chosen hosts, the probe script and its parsing, the
--json shape, the terminal grid, the HTML page, the difference between rounds, and a whole round
through a fake runner that answers like fping / ping would from a partitioned lab."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from minet_sdn.topology import load_topology
from minet_sdn.watch import matrix as M

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")


@pytest.fixture(scope="module")
def demo():
    return load_topology(DEMO)


def test_targets_are_first_router_hosts_of_configured_ases(demo):
    tg = M.targets(demo)
    assert [t.asn for t in tg] == [1, 2, 3, 4, 5]          # AS6 is configure: false
    assert tg[0].node == "1.ZURI.host" and tg[0].ip == "10.1.128.2"
    assert tg[1].node == "2.PARI.host"
    assert M.targets(demo) == tg                            # the same choice every run


def test_parse_fping_and_ping_forms():
    text = ("10.1.128.2 is alive (0.12 ms)\n10.2.128.2 is unreachable\n"
            "ICMP Host Unreachable from 10.1.128.1 for ICMP Echo sent to 10.2.128.2\n"
            "PROBE 10.3.128.2 1.5\nPROBE 10.4.128.2 -\n10.5.128.2 is alive\n")
    assert M.parse_probe(text) == {"10.1.128.2": 0.12, "10.2.128.2": None, "10.3.128.2": 1.5,
                                   "10.4.128.2": None, "10.5.128.2": 0.0}


def test_probe_script_rejects_non_addresses():
    with pytest.raises(ValueError):
        M.probe_script(["10.0.0.1; rm -rf /"])


def test_probe_script_fallback_runs_in_sh_and_parses():
    """The ping fallback (no fping in the node) is valid sh; run it against loopback."""
    script = M.probe_script(["127.0.0.1"], timeout_ms=500, retries=0)
    fallback = script.split("else ", 1)[1].rsplit("; fi", 1)[0]
    if subprocess.run(["sh", "-c", "command -v ping"], capture_output=True).returncode != 0:
        pytest.skip("no ping here")
    out = subprocess.run(["sh", "-c", fallback], capture_output=True, text=True, timeout=20).stdout
    got = M.parse_probe(out)
    assert list(got) == ["127.0.0.1"]
    if os.geteuid() == 0:          # unprivileged ping may be forbidden in some sandboxes
        assert got["127.0.0.1"] is not None


def fake_runner(topo, cut):
    """Answers like fping would when the ASes in `cut` are cut off from the rest."""
    ip_asn = {t.ip: t.asn for t in M.targets(topo)}

    def runner(src, script):
        assert "fping" in script
        lines = []
        for ip, asn in ip_asn.items():
            if asn == src.asn or ip not in script:
                continue
            same_side = (src.asn in cut) == (asn in cut)
            lines.append(f"{ip} is alive (0.{asn}0 ms)" if same_side else f"{ip} is unreachable")
        return 0 if not cut else 1, "\n".join(lines) + "\n", ""
    return runner


def test_round_with_partition_json_shape(demo):
    m = M.build_matrix(demo, fake_runner(demo, cut={5}), parallel=3, clock=lambda: 1000.0)
    obj = m.to_json()
    assert set(obj) == {"pairs", "ok", "total", "family"} and obj["family"] == 4
    assert obj["total"] == 20 and len(obj["pairs"]) == 20
    for p in obj["pairs"]:
        assert set(p) == {"src", "dst", "ok", "rtt_ms"}
        assert isinstance(p["src"], int) and isinstance(p["dst"], int) and p["src"] != p["dst"]
        cut = 5 in (p["src"], p["dst"])
        assert p["ok"] is (not cut)
        assert (p["rtt_ms"] is None) is cut
    assert obj["ok"] == 12                         # 4 x 3 pairs among ASes 1-4
    assert json.loads(json.dumps(obj)) == obj
    back = M.Matrix.from_json(json.loads(json.dumps(m.to_record())))
    assert back.to_json() == obj and back.asns == m.asns


def test_source_whose_probe_fails_counts_as_unreachable(demo):
    def runner(src, script):
        if src.asn == 3:
            return 127, "", "no node 3.BERN.host in demo"
        return fake_runner(demo, set())(src, script)
    m = M.build_matrix(demo, runner)
    assert m.errors == {3: "no node 3.BERN.host in demo"}
    assert not any(m.ok(3, d) for d in m.asns if d != 3)
    assert all(m.ok(1, d) for d in (2, 3, 4, 5))
    assert "probe failed" in M.render_grid(m)


def test_grid_small_and_at_60_ases():
    m = M.Matrix(asns=[1, 2, 3], name="t")
    m.rtt = {(1, 2): 0.1, (2, 1): 0.1, (1, 3): None, (3, 1): None, (2, 3): 0.2, (3, 2): None}
    grid = M.render_grid(m)
    rows = {line.split()[0]: line for line in grid.splitlines() if line.startswith("AS")}
    assert rows["AS1"].split()[1:4] == ["·", "●", "✗"]
    assert rows["AS3"].split()[1:4] == ["✗", "✗", "·"] and "0/2" in rows["AS3"]
    assert "3 of 6 pairs reach" in grid and "legend" in grid
    assert "failing pairs: 3: AS1->AS3, AS3->AS1, AS3->AS2" in grid and "cut off" not in grid
    assert "\033[" not in grid and "\033[31m" in M.render_grid(m, color=True)

    asns = list(range(1, 11)) + list(range(101, 151))           # 60 ASes, 3-digit numbers
    big = M.Matrix(asns=asns, name="big")
    big.rtt = {(s, d): (None if 150 in (s, d) else 1.0) for s in asns for d in asns if s != d}
    g = M.render_grid(big).splitlines()
    body = [l for l in g if l.startswith("AS")]
    assert len(body) == 60
    assert max(len(l) for l in g if not l.startswith(("connectivity", "legend", "reached", "total"))) <= 80
    assert g[-2] == "cut off (reach no AS, reached by none): AS150"
    assert g[-1] == f"total: {59 * 58} of 3540 pairs reach, 118 do not"


def test_html_is_self_contained_and_marks_cells():
    m = M.Matrix(asns=[1, 2], name="x<y", at=0.0)
    m.rtt = {(1, 2): 0.5, (2, 1): None}
    page = M.render_html(m)
    assert "<script" not in page and "http" not in page.split("<body>", 1)[1]
    assert "x&lt;y" in page and page.count("class=ok") == 1 and page.count("class=bad") == 1
    assert 'title="AS2 → AS1: no reply"' in page


def test_diff_between_rounds():
    a = M.Matrix(asns=[1, 2, 3])
    a.rtt = {p: 1.0 for p in a.pairs()}
    b = M.Matrix(asns=[1, 2, 3])
    b.rtt = dict(a.rtt)
    b.rtt[(1, 3)] = None
    assert M.diff(a, b) == ["AS1 -> AS3: lost"]
    assert M.diff(b, a) == ["AS1 -> AS3: restored (1.00 ms)"]
    assert M.diff(a, a) == []
    c = M.Matrix(asns=[1, 2])
    c.rtt = {p: 1.0 for p in c.pairs()}
    assert "AS1 -> AS3: new pair, reaches" in M.diff(c, a)
    assert M.summarize_changes([str(i) for i in range(40)], limit=30)[-1] == "... and 10 more changes"


def test_cli_errors_are_one_line_exit_2(tmp_path, capsys):
    from minet_sdn.cli.main import main
    import yaml
    with open(DEMO) as fh:
        data = yaml.safe_load(fh)
    data["name"] = "nolab" + str(os.getpid() % 1000)          # no lab of this name is up
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    for argv, want in ((["matrix", str(path)], "no lab of"),
                       (["matrix", str(path), "--watch", "0"], "--watch 0"),
                       (["matrix", str(path), "--parallel", "0"], "--parallel 0"),
                       (["matrix", str(tmp_path / "missing.yaml")], "missing.yaml")):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and want in err[0], (argv, err)


# ---- IPv6 (-6) ---------------------------------------------------------------------------------

def test_ipv6_targets_are_the_same_hosts_with_their_ipv6_addresses(demo):
    v4, v6 = M.targets(demo), M.targets(demo, 6)
    assert [(t.asn, t.node) for t in v6] == [(t.asn, t.node) for t in v4]
    assert v6[0].ip == "fd0a:0:1:8000::2"            # AS1 ZURI's host: /64 number S/2, ::2
    assert all(":" in t.ip for t in v6) and len({t.ip for t in v6}) == len(v6)


def test_ipv6_refused_when_the_topology_is_ipv4_only(tmp_path):
    import yaml
    with open(DEMO) as fh:
        data = yaml.safe_load(fh)
    data.setdefault("fabric", {})["ipv6"] = False
    path = tmp_path / "v4.yaml"
    path.write_text(yaml.safe_dump(data))
    topo = load_topology(str(path))
    assert M.targets(topo)                              # IPv4 still fine
    with pytest.raises(M.FamilyError, match="fabric.ipv6 is false"):
        M.targets(topo, 6)


def test_probe_script_ipv6_forces_the_family_and_checks_addresses():
    script = M.probe_script(["fd0a:0:2:8000:0:0:0:2", "fd0a::1"], family=6)
    assert "fping -6 " in script and "ping -6 " in script
    assert "fd0a:0:2:8000::2 fd0a::1" in script          # canonical form, as fping prints it
    with pytest.raises(ValueError):
        M.probe_script(["10.0.0.1"], family=6)
    with pytest.raises(ValueError):
        M.probe_script(["fd0a::1"], family=4)
    with pytest.raises(ValueError):
        M.probe_script(["fd0a::1;reboot"], family=6)
    with pytest.raises(ValueError):
        M.probe_script(["fd0a::1%;reboot"], family=6)     # a scope id parses as IPv6 in Python
    assert "-6" not in M.probe_script(["10.0.0.1"])


def test_parse_ipv6_output_keys_canonical_addresses():
    text = ("fd0a:0:2:8000::2 is alive (0.20 ms)\nfd0a:0:3:8000::2 is unreachable\n"
            "PROBE fd0a:0:4:8000:0::2 0.7\nPROBE fd0a:0:5:8000::2 -\n")
    assert M.parse_probe(text) == {"fd0a:0:2:8000::2": 0.2, "fd0a:0:3:8000::2": None,
                                   "fd0a:0:4:8000::2": 0.7, "fd0a:0:5:8000::2": None}


def test_ipv6_round_with_partition(demo):
    seen = []

    def runner(src, script):
        seen.append(script)
        return fake_runner6(src, script)

    ip_asn = {t.ip: t.asn for t in M.targets(demo, 6)}

    def fake_runner6(src, script):
        lines = []
        for ip, asn in ip_asn.items():
            if asn != src.asn and ip in script:
                lines.append(f"{ip} is alive (0.1 ms)" if {src.asn, asn} != {1, 2} else f"{ip} is unreachable")
        return 0, "\n".join(lines) + "\n", ""

    m = M.build_matrix(demo, runner, family=6, clock=lambda: 5.0)
    assert all("fping -6" in s and "10." not in s.split("fping", 1)[1].split(";")[0] for s in seen)
    assert m.family == 6 and m.total == 20 and m.ok_count == 18
    assert not m.ok(1, 2) and not m.ok(2, 1) and m.ok(1, 3)
    obj = m.to_json()
    assert obj["family"] == 6 and obj["ok"] == 18
    back = M.Matrix.from_json(json.loads(json.dumps(m.to_record())))
    assert back.family == 6 and back.to_json() == obj
    assert "(IPv6)" in M.render_grid(m).splitlines()[0] and "(IPv6)" in M.render_html(m)
    assert "(IPv6)" not in M.render_grid(M.build_matrix(demo, fake_runner(demo, set())))
    with pytest.raises(ValueError):
        M.Matrix.from_json({"pairs": [], "family": 5})


def test_cli_ipv6_on_ipv4_only_topology_is_one_line_exit_2(tmp_path, capsys):
    from minet_sdn.cli.main import main
    import yaml
    with open(DEMO) as fh:
        data = yaml.safe_load(fh)
    data.setdefault("fabric", {})["ipv6"] = False
    path = tmp_path / "v4.yaml"
    path.write_text(yaml.safe_dump(data))
    capsys.readouterr()
    assert main(["matrix", str(path), "-6"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fabric.ipv6 is false" in err[0]
