"""`minet import mini-internet`: the fixture folders import, validate and keep what they say;
bad folders fail with one line naming the file, line and column."""
import shutil
from pathlib import Path

import pytest

from minet_sdn.cli.main import main
from minet_sdn.importers import ImportProblem
from minet_sdn.importers.mini_internet import import_folder
from minet_sdn.topology import load_topology, parse_topology
from minet_sdn.importers import to_yaml
from minet_sdn.topology.addressing import as_addressing

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet"


def imported(name):
    topo = import_folder(str(FIX / name)).topology
    return topo, parse_topology(to_yaml(topo), f"{name}.yaml")


def test_small_folder_round_trips_through_the_loader(tmp_path):
    out = tmp_path / "small.yaml"
    assert main(["import", "mini-internet", str(FIX / "small"), "-o", str(out)]) == 0
    t = load_topology(str(out))
    assert {asn: a.routers for asn, a in t.ases.items()} == {1: ("ZURI", "GENE", "BASE"), 2: ("PARI", "LYON"),
                                                            3: ("LOND",)}
    assert [(l.a.router, l.b.router, l.rel) for l in t.links] == [
        ("1.ZURI", "2.PARI", "provider"), ("1.GENE", "3.LOND", "peer"), ("2.LYON", "3.LOND", "provider")]
    s = t.links[0].shaping
    assert (s.rate_bps, s.delay_us, s.latency_us) == (10_000_000, 2500, 50_000)
    assert t.links[2].shaping.buffer_bytes == 64 * 1024
    intra = as_addressing(t.ases[1]).links
    assert [(l.a, l.b, l.shaping.rate_bps) for l in intra] == [
        ("ZURI", "GENE", 100_000_000), ("GENE", "BASE", 100_000_000), ("BASE", "ZURI", 20_000_000)]
    # bare numbers: throughput kbit/s, delay microseconds (what tc and OvS made of them)
    pari = as_addressing(t.ases[2]).links[0].shaping
    assert (pari.rate_bps, pari.delay_us) == (10_000_000, 2500)
    # AS 3 names no l3_links file: one router, no intra-AS link
    assert t.ases[3].links is None and as_addressing(t.ases[3]).links == ()


def test_old_folder_external_links_config_and_noconfig():
    topo, t = imported("old")
    assert t.ases[2].configure is False and t.ases[1].configure is True
    assert [(l.a.router, l.b.router, l.rel) for l in t.links] == [("1.ZURI", "2.ZURI", "peer"),
                                                                 ("1.GENE", "2.BASE", "provider")]
    assert t.links[0].shaping.delay_us == 1000 and t.links[0].shaping.buffer is None
    assert as_addressing(t.ases[1]).links[0].shaping.delay_us == 20


def test_multi_server_folder_keeps_servers_and_placement():
    topo, t = imported("multi")
    assert {n: (s.underlay_ip, s.interface, s.ssh) for n, s in t.servers.items()} == {
        "VM1": ("10.10.0.1", "ens4", "root@vm1.example.org:22"), "VM2": ("10.10.0.2", "ens4", None)}
    assert {asn: a.server for asn, a in t.ases.items()} == {1: "VM1", 2: "VM2", 3: "VM2"}
    assert [l.remote for l in t.links] == [True, False, True]


def _broken(tmp_path, name, edit):
    folder = tmp_path / name
    shutil.copytree(FIX / "small", folder)
    edit(folder)
    with pytest.raises(ImportProblem) as info:
        import_folder(str(folder))
    return info.value.problems


def _replace(file, old, new):
    def edit(folder):
        path = folder / file
        path.write_text(path.read_text().replace(old, new))
    return edit


@pytest.mark.parametrize("file,old,new,line", [
    ("aslevel_links.txt", "Provider\t2\tPARI\tCustomer", "Provider\t2\tPARI\tPeer",
     "aslevel_links.txt: line 2, column 6: roles Provider and Peer do not match "
     "(Provider-Customer, Customer-Provider or Peer-Peer)"),
    ("aslevel_links.txt", "2\tPARI\tCustomer", "2\tNICE\tCustomer",
     "aslevel_links.txt: line 2, column 5: router NICE is not a router of AS 2"),
    ("aslevel_links.txt", "1\tZURI\tProvider", "1\tZURI\tBoss",
     "aslevel_links.txt: line 2, column 3: 'Boss' is not Provider, Customer or Peer"),
    ("aslevel_links.txt", "1\tZURI\tProvider\t2", "1\tZURI\tProvider\t9",
     "aslevel_links.txt: line 2, column 4: AS 9 is not in AS_config.txt"),
    ("l3_links_tier1.txt", "GENE\tBASE\t100mbit", "GENE\tBASE\tfast",
     "l3_links_tier1.txt: line 3, column 3: throughput 'fast' is not a throughput (e.g. 1mbit or 100000 (kbit/s))"),
    ("l3_links_tier1.txt", "GENE\tBASE", "GENE\tROMA",
     "l3_links_tier1.txt: line 3, column 2: router ROMA is not in l3_routers_tier1.txt (AS 1 uses this file)"),
    ("AS_config.txt", "2\tAS\tConfig\tl3_routers_stub.txt", "2\tAS\tConfig\tl3_routers_gone.txt",
     "AS_config.txt: line 4, column 4: l3_routers_gone.txt does not exist in the folder"),
    ("AS_config.txt", "2\tAS\tConfig", "2\tAS\tMaybe",
     "AS_config.txt: line 4, column 3: 'Maybe' is not Config or NoConfig"),
    ("l3_routers_stub.txt", "LYON", "9LYON",
     "l3_routers_stub.txt: line 2, column 1: '9LYON' is not a router name (a letter, then up to 15 letters, "
     "digits, '_' or '-')"),
])
def test_bad_folder_is_one_line_naming_file_line_and_column(tmp_path, file, old, new, line):
    assert line in _broken(tmp_path, "bad", _replace(file, old, new))


def test_cli_reports_problems_with_exit_2_and_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "bad"
    shutil.copytree(FIX / "small", folder)
    _replace("aslevel_links.txt", "1\tZURI\tProvider", "1\tZURI\tBoss")(folder)
    out = tmp_path / "out.yaml"
    assert main(["import", "mini-internet", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["aslevel_links.txt: line 2, column 3: 'Boss' is not Provider, Customer or Peer"]
    assert not out.exists()
    assert main(["import", "mini-internet", str(tmp_path / "nothing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_comments_tabs_and_spaces_are_equivalent(tmp_path):
    spaced = tmp_path / "spaced"
    shutil.copytree(FIX / "small", spaced)
    for f in spaced.iterdir():
        f.write_text("# header comment\n" + f.read_text().replace("\t", "   ") + "\n\n   # trailing\n")
    a = import_folder(str(FIX / "small")).topology
    b = import_folder(str(spaced)).topology
    b["name"] = a["name"]
    assert a == b


def test_ixps_come_over_with_members_and_their_peering_policy():
    _, t = imported("small")
    x = t.ixps[100]
    assert [(m.router, m.announce_to) for m in x.members] == [("1.BASE", (2, 3)), ("2.PARI", (1, 3)),
                                                             ("3.LOND", (1, 2))]
    assert x.members[0].shaping.rate_bps == 10_000_000
    _, old = imported("old")
    assert [m.router for m in old.ixps[80].members] == ["1.BASE", "2.GENE"]


def test_empty_routers_file_and_missing_as_config(tmp_path):
    problems = _broken(tmp_path, "empty", lambda f: (f / "l3_routers_single.txt").write_text("# nobody\n"))
    assert "AS_config.txt: line 5, column 4: AS 3: l3_routers_single.txt lists no router" in problems
    with pytest.raises(ImportProblem) as info:
        import_folder(str(tmp_path))
    assert info.value.problems == [f"{tmp_path}: has no AS_config.txt (is this a mini-Internet config folder?)"]
