"""Services (topology/services.py, provision/services.py, watch/measure.py, matrix sources/targets):
zone files for a fixture with its exact names and reverse entries, resolvers, the nsd configuration,
the matrix's MATRIX / MATRIX_TARGET hosts and the validation of `minet measure`'s arguments."""
from pathlib import Path

import pytest

from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology, parse_topology
from minet_sdn.topology import services as S
from minet_sdn.watch import matrix as M
from minet_sdn.watch import measure as ME

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "services" / "dns.yaml"


@pytest.fixture(scope="module")
def topo():
    return load_topology(str(FIXTURE))


@pytest.fixture(scope="module")
def plan(topo):
    return build_plan(topo, "VM1", root="/nonexistent-root")


def _files(plan):
    (dns,) = plan.services.dns
    return dns, dict(dns.files)


def test_dns_runs_in_the_dns_routers_host_on_its_addresses(plan):
    dns, files = _files(plan)
    assert dns.node == "1.ZURI.host"
    assert dns.listen == ("1.101.0.1", "1:101::1")
    conf = files["nsd.conf"]
    assert "    ip-address: 1.101.0.1\n" in conf and "    ip-address: 1:101::1\n" in conf
    assert "control-enable: no" in conf
    for zone in ("group1", "group3", "in-addr.arpa", "ip6.arpa"):
        assert f'    name: "{zone}"\n' in conf and f"{zone}.zone" in files
    assert "/nonexistent-root/svc/VM1/services/dns/1.ZURI.host" in conf


def _records(text):
    return sorted(line for line in text.splitlines() if " IN " in line and not line.startswith("@"))


def test_forward_zone_names_every_interface_and_host(plan):
    _, files = _files(plan)
    assert _records(files["group1.zone"]) == sorted([
        "base.group1. IN A 1.0.1.2", "base.group1. IN A 1.102.0.2", "base.group1. IN A 1.152.0.1",
        "base.group1. IN AAAA 1:0:1::2", "base.group1. IN AAAA 1:102::2", "base.group1. IN AAAA 1:152::1",
        "host.base.group1. IN A 1.102.0.1", "host.base.group1. IN AAAA 1:102::1",
        "zuri.group1. IN A 1.0.1.1", "zuri.group1. IN A 1.101.0.2", "zuri.group1. IN A 1.151.0.1",
        "zuri.group1. IN A 179.1.3.1", "zuri.group1. IN AAAA 1:0:1::1", "zuri.group1. IN AAAA 1:101::2",
        "zuri.group1. IN AAAA 1:151::1", "zuri.group1. IN AAAA 179:1:3::1",
        "host.zuri.group1. IN A 1.101.0.1", "host.zuri.group1. IN AAAA 1:101::1",
        "ns.group1. IN A 1.101.0.1", "ns.group1. IN AAAA 1:101::1"])
    # AS 3 has no DNS server of its own: its ns is AS 1's
    assert "ns.group3. IN A 1.101.0.1" in files["group3.zone"]
    assert "@ IN NS ns.group3." in files["group3.zone"]
    assert "muni.group3. IN A 179.1.3.3" in files["group3.zone"]


def test_reverse_zone_has_a_ptr_for_every_named_address(plan):
    _, files = _files(plan)
    rev = _records(files["in-addr.arpa.zone"])
    assert "1.3.1.179.in-addr.arpa. IN PTR zuri.group1." in rev
    assert "3.3.1.179.in-addr.arpa. IN PTR muni.group3." in rev
    assert "1.0.101.1.in-addr.arpa. IN PTR host.zuri.group1." in rev
    assert "1.0.151.3.in-addr.arpa. IN PTR muni.group3." in rev
    assert len(rev) == 13          # 3 + 4 + 1 + 1 + 3 + 1 addresses (router, host) of the 3 routers
    rev6 = _records(files["ip6.arpa.zone"])
    assert ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.1.0.1.0.0.0.ip6.arpa. IN PTR host.zuri.group1."
            in rev6)
    assert len(rev6) == 13


def test_every_node_resolves_through_its_dns_server(plan):
    res = {r.node: r.text for r in plan.services.resolvers}
    assert set(res) == {"1.ZURI", "1.ZURI.host", "1.BASE", "1.BASE.host", "3.MUNI", "3.MUNI.host"}
    assert res["3.MUNI.host"].splitlines() == [
        "# minet-sdn svc: written by minet-provision, removed by its down",
        "nameserver 1.101.0.1", "nameserver 1:101::1", "search group3", "options timeout:1 attempts:2"]


def test_the_same_topology_gives_the_same_files(topo, plan):
    assert build_plan(topo, "VM1", root="/nonexistent-root").services == plan.services


def test_no_service_no_services_plan():
    topo = parse_topology("name: plain\nservers: [VM1]\nases:\n  1: {server: VM1, routers: [A]}\n")
    sp = build_plan(topo, "VM1", root="/x").services
    assert sp.dns == () and sp.resolvers == ()


def test_names_follow_the_mini_internet():
    assert S.node_name("12.ZURI") == "zuri.group12"
    assert S.node_name("12.ZURI.host") == "host.zuri.group12"
    assert S.node_name("ixp95") == "rs.ixp95"


def test_matrix_uses_matrix_and_matrix_target_hosts(topo):
    tg = {t.asn: t for t in M.targets(topo)}
    assert tg[1].node == "1.BASE.host" and tg[1].ip == "1.102.0.1"        # MATRIX_TARGET on BASE
    assert tg[1].from_node == "1.ZURI.host"                                # MATRIX on ZURI
    assert tg[3].node == tg[3].from_node == "3.MUNI.host"                  # none named: today's choice


def test_matrix_probes_run_in_the_matrix_host(topo):
    ran = []

    def runner(src, script):
        ran.append(src.from_node)
        return 0, "", ""
    M.build_matrix(topo, runner, parallel=1)
    assert sorted(ran) == ["1.ZURI.host", "3.MUNI.host"]


def test_measurement_host(topo):
    assert ME.measurement_host(topo, 1) == "1.BASE.host"
    assert ME.measurement_host(topo, 3) == "3.MUNI.host"
    with pytest.raises(ME.MeasureError, match="no AS 7"):
        ME.measurement_host(topo, 7)


@pytest.mark.parametrize("dest,family", [("1.101.0.1", 4), ("1:101::1", 6), ("host.zuri.group1", 0),
                                         ("ZURI.group1.", 0), ("a_b-c.d", 0)])
def test_good_destinations(dest, family):
    assert ME.check_destination(dest)[1] == family


@pytest.mark.parametrize("dest", ["", "-n", "--help", "a;reboot", "a b", "$(id)", "`id`", "a..b", "x" * 64,
                                  ".".join(["a"] * 130), "1.2.3", "fe80::1%eth0", "a/b", "a\nb", "-a.b", "a-.b"])
def test_bad_destinations(dest):
    with pytest.raises(ME.MeasureError):
        ME.check_destination(dest)


def test_measure_argv_is_a_list_ending_in_the_destination():
    assert ME.measure_argv("traceroute", "host.zuri.group1") == [
        "traceroute", "-q", "1", "-w", "2", "-m", "30", "--", "host.zuri.group1"]
    assert ME.measure_argv("ping", "1:101::1", count=2) == ["ping", "-6", "-c", "2", "-W", "2", "--", "1:101::1"]
    assert ME.measure_argv("traceroute", "1.1.1.1", numeric=True)[:3] == ["traceroute", "-4", "-n"]
    with pytest.raises(ME.MeasureError, match="not an IPv6"):
        ME.measure_argv("ping", "1.1.1.1", family=6)
    with pytest.raises(ME.MeasureError):
        ME.measure_argv("sh", "1.1.1.1")
    with pytest.raises(ME.MeasureError):
        ME.measure_argv("ping", "1.1.1.1", count=1000)


def test_measure_cli_refuses_bad_input_in_one_line(capsys):
    from minet_sdn.cli.main import main
    for argv, needle in ((["measure", str(FIXTURE), "--from", "1", "a;id"], "not an IP address or a DNS name"),
                         (["measure", str(FIXTURE), "--from", "x", "1.1.1.1"], "an AS number"),
                         (["measure", str(FIXTURE), "--from", "9", "1.1.1.1"], "no AS 9")):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]


def test_imported_mini_internet_folder_places_its_services(tmp_path):
    """The current-format fixture: HUB (ALL rows) has every service, each MITTE has DNS."""
    from minet_sdn.cli.main import main
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet" / "current"
    out = str(tmp_path / "cur.yaml")
    assert main(["import", "mini-internet", str(folder), "-o", out]) == 0
    topo = load_topology(out)
    assert S.dns_hosts(topo) == ["21.HUB.host", "22.MITTE.host", "23.MITTE.host"]
    assert S.resolver_for(topo, 23) == "23.MITTE.host"
    p = build_plan(topo, "VM1", root="/x")
    files = dict(p.services.dns[0].files)
    # the route server is named, and every AS's ns is its own DNS server
    assert "rs.ixp95. IN A 180.95.0.95" in files["ixp95.zone"]
    assert "95.0.95.180.in-addr.arpa. IN PTR rs.ixp95." in files["in-addr.arpa.zone"]
    assert "ns.group22. IN A 22.102.0.1" in files["group22.zone"]
    assert "hub.group21. IN A 179.21.23.21" in files["group21.zone"]
    # every DNS server serves the same zones
    assert len({tuple(f for f in d.files if f[0] != "nsd.conf") for d in p.services.dns}) == 1
    assert {(t.asn, t.from_node, t.node) for t in M.targets(topo)} == {(21, "21.HUB.host", "21.HUB.host"),
                                                                      (23, "23.NORD.host", "23.NORD.host")}
    assert ME.measurement_host(topo, 21) == "21.HUB.host"


# ---- the address book from the topology equals the one from every server's plan ------------------

def _with_dns(path_or_text, name):
    import yaml
    from minet_sdn.importers import to_yaml
    data = yaml.safe_load(path_or_text)
    first = min(data["ases"])
    data["ases"][first].setdefault("services", {})[data["ases"][first]["routers"][0]] = ["dns"]
    return parse_topology(to_yaml(data), name)


def _book_cases():
    import yaml
    from minet_sdn.importers import to_yaml
    from minet_sdn.importers.mini_internet import import_folder
    root = Path(__file__).resolve().parents[1]
    yield "demo", _with_dns((root.parent / "topologies" / "demo.yaml").read_text(), "demo.yaml")
    for folder in ("mini_internet/current", "mini_internet/small", "mini_internet_lab"):
        yield folder, parse_topology(to_yaml(import_folder(str(root / "fixtures" / folder)).topology), "f.yaml")
    from minet_sdn.topology.generate import class_topology
    yield "class-l2", _with_dns(class_topology(5, servers=2, unconfigured=1, layer2=True), "c.yaml")
    ipv4 = yaml.safe_load((root.parent / "topologies" / "demo.yaml").read_text())
    ipv4["fabric"]["ipv6"] = False
    yield "demo-ipv4-only", _with_dns(yaml.safe_dump(ipv4), "demo4.yaml")


@pytest.mark.parametrize("case", list(_book_cases()), ids=lambda c: c[0])
def test_address_book_from_the_topology_is_the_one_from_every_plan(case):
    """DNS names every address the plans put on interfaces: computing them from the topology (one
    pass, what provisioning now does) must give exactly the records of every server's plan (what it
    did: each server built every server's plan)."""
    from minet_sdn.provision import services as PS
    _, topo = case
    plans = [build_plan(topo, s, root="/nonexistent-root", with_services=False) for s in topo.servers]
    assert sorted(set(PS.topology_address_book(topo))) == sorted(set(PS.address_book(topo, plans)))
    server = next(iter(topo.servers))
    fast = PS.build(topo, server, plans[0])
    slow = PS.build(topo, server, plans[0], lambda s: plans[list(topo.servers).index(s)])
    assert fast == slow
