"""Every mini-Internet folder format imports as upstream means it (fixtures written for these tests in
the same formats), and every refusal is one line naming the source file, line and column."""
import shutil
from pathlib import Path

import pytest

from minet_sdn.cli.main import main
from minet_sdn.importers import ImportProblem, to_yaml
from minet_sdn.importers.mini_internet import import_folder
from minet_sdn.topology import parse_topology
from minet_sdn.topology.addressing import as_addressing, topology_addressing

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mini_internet"


def imported(name, folder=None):
    result = import_folder(str(folder or FIX / name))
    return result, parse_topology(to_yaml(result.topology), f"{name}.yaml")


def test_all_rows_are_one_router_with_every_service_and_one_rpki_warning():
    result, t = imported("current")
    assert t.ases[21].routers == ("HUB",)
    assert dict(t.ases[21].services) == {"HUB": ("matrix_target", "routinator", "dns", "krill", "matrix", "measurement")}
    assert dict(t.ases[22].services) == {"MITTE": ("dns",)}
    rpki = [n for n in result.notes if "RPKI" in n]
    assert rpki == ["RPKI not emulated yet: 21.HUB (routinator), 21.HUB (krill) (imported as services of plain hosts)"]
    assert t.ases[22].configure is False and t.ases[23].configure is True


def test_rpki_rows_are_kept_and_validate_names_them_in_one_warning(tmp_path, capsys):
    """The RPKI images stay in the topology (services routinator / krill of their router) and every
    `minet validate` (and `lab up`, which prints the same lines) says in one line that they are not
    emulated, naming each."""
    out = tmp_path / "cur.yaml"
    assert main(["import", "mini-internet", str(FIX / "current"), "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["validate", str(out)]) == 0
    err = capsys.readouterr().err
    rpki = [line for line in err.splitlines() if "RPKI" in line]
    assert rpki == ["warning: cur.yaml: RPKI not emulated yet: 21.HUB (routinator), 21.HUB (krill); their hosts "
                    "run as plain hosts and routers do no origin validation"]
    _, small = imported("small")
    from minet_sdn.topology.services import not_emulated_warning
    assert not_emulated_warning(small) is None


def test_layer2_of_the_current_layout_is_kept_in_the_topology():
    _, t = imported("current")
    l2 = t.ases[22].imported_layer2
    assert l2["dcs"] == {"DCA": {"routers": ["NORD"]}, "DCB": {"routers": ["SUED"]}}
    assert [(s["dc"], s["name"], s.get("router"), s["id"]) for s in l2["switches"]] == [
        ("DCA", "SA1", "NORD", 1), ("DCA", "SA2", None, 2), ("DCB", "SB1", "SUED", 3)]
    assert [(h["name"], h["switch"], h["vlan"], h["throughput"], h["buffer"]) for h in l2["hosts"]] == [
        ("web_1", "SA1", 10, "10mbit", "50ms"), ("db_1", "SA2", 20, "10mbit", "50ms"),
        ("web_2", "SA2", 10, "10mbit", "50ms"), ("vpn_1", "SB1", 30, "10mbit", "50ms")]
    assert [(x["a"], x["b"]) for x in l2["links"]] == [("SA1", "SA2")]
    assert l2["tunnel"] == ["NORD", "SUED"]
    # AS 21 names empty layer-2 files: no layer 2 at all
    assert t.ases[21].imported_layer2 is None


def test_imported_layer2_comes_up_as_a_layer2_section_configured_or_left_for_students():
    """The loader turns what the importer keeps into the AS's layer 2, so the lab builds it: switches,
    hosts, trunks and tunnel of every AS with layer-2 files; NoConfig ASes keep configure: false
    (provision/layer2.py wires theirs and configures nothing)."""
    from minet_sdn.provision.plan import build_plan
    _, t = imported("current")
    l2 = t.ases[22].layer2
    assert [(s.name, s.dc, s.router, s.stp_priority) for s in l2.switches] == [
        ("SA1", "DCA", "NORD", 1), ("SA2", "DCA", None, 2), ("SB1", "DCB", "SUED", 3)]
    assert [(h.name, h.vlan, h.vpn) for h in l2.hosts] == [
        ("web_1", 10, False), ("db_1", 20, False), ("web_2", 10, False), ("vpn_1", 30, True)]
    assert l2.tunnel is not None and (l2.tunnel.a, l2.tunnel.b) == ("NORD", "SUED")
    assert t.ases[21].layer2 is None
    plan = build_plan(t, "VM1", root="/tmp/l2root", backend="netns")
    bridges = {b.switch: b for b in plan.layer2.bridges}
    assert bridges["22.SA1"].configure is False and not any(x.tag or x.trunks for x in bridges["22.SA1"].ports)
    assert bridges["23.SA1"].configure is True and any(x.tag == 10 for x in bridges["23.SA1"].ports)
    ids = {n.id for n in plan.nodes}
    assert {"22.SA1", "22.web_1", "23.SB1", "23.db_1"} <= ids and "22.vpn_1" not in ids


def test_a_written_layer2_section_wins_over_the_imported_one():
    result = import_folder(str(FIX / "current"))
    spec = result.topology["ases"][23]
    spec["layer2"] = {"switches": {"ONLY": {"dc": "X", "router": "NORD"}}}
    t = parse_topology(to_yaml(result.topology), "w.yaml")
    assert [s.name for s in t.ases[23].layer2.switches] == ["ONLY"]


def test_broken_imported_layer2_is_one_line_naming_the_key():
    result = import_folder(str(FIX / "current"))
    result.topology["ases"][23]["imported_layer2"]["hosts"][0]["vlan"] = 5000
    with pytest.raises(Exception) as exc:
        parse_topology(to_yaml(result.topology), "b.yaml")
    assert str(exc.value).splitlines() == [
        "b.yaml: ases.23.imported_layer2.hosts.web_1.vlan: the number 5000 is not a VLAN id in 0..4094 (0: untagged)"]


def test_ixp_lists_naming_non_members_keep_the_members_part_with_a_note():
    result, t = imported("ixp2022")
    assert [(m.router, m.announce_to) for m in t.ixps[90].members] == [("11.WIEN", (12,)), ("12.PRAG", (11,))]
    assert [(m.router, m.announce_to) for m in t.ixps[91].members] == [("13.PRAG", (11,)), ("11.PRAG", (13,))]
    assert any("IXP 90" in n and "(13, 14)" in n for n in result.notes)


def test_per_as_throughput_lists_pick_asn_mod_length():
    _, t = imported("lists2020")
    # AS 7: 7 % 3 = 1 -> 20000 kbit/s; 7 % 2 = 1 -> 6000 kbit/s and delay 200 us
    links7 = as_addressing(t.ases[7]).links
    assert [(l.a, l.b, l.shaping.rate_bps) for l in links7] == [
        ("KIEV", "LIMA", 20_000_000), ("LIMA", "CAIRO", 100_000_000), ("CAIRO", "KIEV", 6_000_000)]
    assert links7[2].shaping.delay_us == 200
    # AS 8 uses the same file: 8 % 3 = 2 -> 30000; 8 % 2 = 0 -> 5000 and 100 us
    links8 = as_addressing(t.ases[8]).links
    assert [l.shaping.rate_bps for l in links8] == [30_000_000, 100_000_000, 5_000_000]
    assert links8[2].shaping.delay_us == 100
    # six-column hosts of the 2020 platform
    assert [(h["name"], h["dc"], h["vlan"]) for h in t.ases[7].imported_layer2["hosts"]] == [
        ("alice", "CAMPUS", 10), ("bob", "CAMPUS", 10), ("carol", "CAMPUS", 20)]


def test_2019_layout_imports_with_its_own_plan():
    result, t = imported("layout2019")
    assert t.plan == "mini-internet-2019"
    assert {asn: a.routers for asn, a in t.ases.items()} == {5: ("OSLO", "BERN", "RIGA"), 6: ("OSLO", "BERN", "RIGA")}
    assert t.ases[6].configure is False
    assert [(l.a.router, l.b.router, l.rel) for l in t.links] == [("5.OSLO", "6.RIGA", "provider"),
                                                                 ("5.RIGA", "6.OSLO", "peer")]
    # the row naming AS 9 (not in AS_config.txt) is inert, as in the 2019 platform
    assert any("1 rows name ASes that are not in AS_config.txt (first: line 3)" in n for n in result.notes)
    l2 = t.ases[5].imported_layer2
    assert l2["dcs"] == {"L2": {"routers": ["BERN"]}}
    assert [(h["name"], h["switch"], h["vlan"]) for h in l2["hosts"]] == [
        ("desk_1", "SW-EAST", 10), ("lab_1", "SW-WEST", 20), ("vpn_1", "SW-WEST", 10)]
    assert [(x["a"], x["b"]) for x in l2["links"]] == [("SW-EAST", "SW-WEST")]
    # 2019: loopbacks X.(201+i).0.1; links without a subnet: 179.24.L.0/24, a .1 and b .2
    a5 = topology_addressing(t)[5]
    assert [r.loopback for r in a5.routers.values()] == ["5.201.0.1", "5.202.0.1", "5.203.0.1"]
    assert (t.links[1].a.ip, t.links[1].b.ip, t.links[1].prefixlen) == ("179.24.2.1", "179.24.2.2", 24)


def test_missing_file_is_refused_in_one_line(capsys, tmp_path):
    assert main(["import", "mini-internet", str(FIX / "missing"), "-o", str(tmp_path / "o.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "AS_config.txt: line 1, column 5: l3_links_gone.txt does not exist in the folder"]
    assert not (tmp_path / "o.yaml").exists()


def _copy(tmp_path, name):
    folder = tmp_path / name
    shutil.copytree(FIX / name, folder)
    return folder


def _problems(folder):
    with pytest.raises(ImportProblem) as info:
        import_folder(str(folder))
    return info.value.problems


def _edit(folder, file, old, new):
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("file,old,new,line", [
    ("l3_routers_hub.txt", "HUB    DNS           krill:img/krill             vtysh ALL",
     "HUB    DNS           krill:img/krill             vtysh",
     "l3_routers_hub.txt: line 2, column 1: router HUB is listed twice (line 1; an all-in-one AS marks every "
     "row ALL in column 5)"),
    ("l3_routers.txt", "MITTE  DNS", "MITTE  WEB",
     "l3_routers.txt: line 2, column 2: 'WEB' is not a service (DNS, MATRIX, MATRIX_TARGET, MEASUREMENT or N/A)"),
    ("l2_switches.txt", "0a:00:00:00:02:02", "0a:00:00:zz:02:02",
     "l2_switches.txt: line 2, column 4: '0a:00:00:zz:02:02' is not a MAC address"),
    ("l2_hosts.txt", "db_1     img/host  DCA   SA2   10mbit   1ms   50ms   20",
     "db_1     img/host  DCA   SA2   10mbit   1ms   50ms   ten",
     "l2_hosts.txt: line 2, column 8: VLAN 'ten' is not a number in 0..4094"),
    ("l2_hosts.txt", "web_2    img/host  DCA   SA2", "web_2    img/host  DCA   SA9",
     "l2_hosts.txt: line 3, column 4: switch SA9 of DCA is not in the AS's switches file"),
    ("l2_links.txt", "DCA   SA1   DCA   SA2", "DCA   SA1   DCA   SA1",
     "l2_links.txt: line 1: joins switch SA1 to itself"),
    ("aslevel_links.txt", "22,23", "22,x3",
     "aslevel_links.txt: line 4, column 10: 'x3' in '22,x3' is not an AS number"),
])
def test_bad_current_folder_is_one_line_naming_file_line_and_column(tmp_path, file, old, new, line):
    folder = _copy(tmp_path, "current")
    _edit(folder, file, old, new)
    assert line in _problems(folder)


def test_problems_found_by_the_loader_name_the_source_line(tmp_path, capsys):
    folder = _copy(tmp_path, "current")
    # AS 179 would own 179.0.0.0/8, where the Subnet column numbers links; and a second router of AS
    # 23 at IXP 95: both refused by the topology loader, reported at the rows they came from
    _edit(folder, "AS_config.txt", "23\tAS\tConfig", "179\tAS\tConfig")
    _edit(folder, "aslevel_links.txt", "21\tHUB\tProvider\t23", "21\tHUB\tProvider\t179")
    _edit(folder, "aslevel_links.txt", "22\tSUED\tPeer\t23", "22\tSUED\tPeer\t179")
    _edit(folder, "aslevel_links.txt", "23\tMITTE\tPeer\t95\tNone\tPeer\t1mbit\t2.5ms\t50ms\t21,22",
          "179\tMITTE\tPeer\t95\tNone\tPeer\t1mbit\t2.5ms\t50ms\t21,22\n"
          "179\tSUED\tPeer\t95\tNone\tPeer\t1mbit\t2.5ms\t50ms\t21")
    assert main(["import", "mini-internet", str(folder), "-o", str(tmp_path / "o.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "aslevel_links.txt: line 1, column 10: 179.21.22.0/24 lies in AS 179's own 179.0.0.0/8 (links[1].subnet)" in err
    assert ("aslevel_links.txt: line 6: AS 179 is already a member (members[2]); one router per AS and IXP "
            "(ixps.95.members[3])") in err
    assert all(not e.startswith("o.yaml") for e in err)


def test_subnet_config_that_differs_is_refused_in_one_line(tmp_path):
    folder = _copy(tmp_path, "current")
    _edit(folder, "subnet_config.sh", "+101)).0.1/24", "+111)).0.1/24")
    assert _problems(folder) == [
        "subnet_config.sh: line 6: subnet_host_router differs from the mini-Internet's default plan "
        "(expected an address ${n_grp}.$(($n_router+101)).0.1/24); minet-sdn follows that plan and its 2019 "
        "variant only"]


def test_a_missing_layer2_file_is_a_note_not_a_refusal(tmp_path):
    folder = _copy(tmp_path, "current")
    _edit(folder, "AS_config.txt", "l3_links.txt\tl2_switches.txt\tl2_hosts.txt\tl2_links.txt\n23",
          "l3_links.txt\tl2_switchs.txt\tl2_hosts.txt\tl2_links.txt\n23")
    result = import_folder(str(folder))
    assert any(n.startswith("AS_config.txt: line 2, column 6: l2_switchs.txt does not exist") for n in result.notes)


def test_a_host_named_like_a_router_is_refused(tmp_path):
    folder = _copy(tmp_path, "current")
    _edit(folder, "l2_hosts.txt", "db_1 ", "SUED ")
    problems = _problems(folder)
    assert any(p.startswith("l2_hosts.txt: line 2: host SUED of AS 22 has the name of a router (l3_routers.txt: "
                            "line 3); node 22.SUED would be both") for p in problems)


def class_folder(folder, ases=60):
    """A class-shaped folder in the current layout: `ases` ASes of the `current` fixture's 3-router
    shape grown to 8 routers, layer 2 in every AS, a ring of provider links and two IXPs."""
    src = FIX / "current"
    folder.mkdir()
    for f in ("empty.txt", "l2_switches.txt", "l2_hosts.txt", "l2_links.txt", "subnet_config.sh"):
        shutil.copy(src / f, folder / f)
    names = ["NORD", "MITTE", "SUED", "OST", "WEST", "BERG", "TAL", "SEE"]
    (folder / "l3_routers.txt").write_text(
        "NORD N/A L2-DCA:img/host linux\n" + "".join(f"{n} N/A host:img/host vtysh\n" for n in names[1:7])
        + "SUED_X N/A L2-DCB:img/host linux\n".replace("SUED_X", "SEE"))
    (folder / "l3_links.txt").write_text("".join(f"{a} {b} 1mbit 5ms 50ms\n"
                                                for a, b in zip(names, names[1:] + names[:1])))
    rows = [f"{n}\tAS\tConfig\tl3_routers.txt\tl3_links.txt\tl2_switches.txt\tl2_hosts.txt\tl2_links.txt"
            for n in range(1, ases + 1)] + ["201\tIXP\tConfig", "202\tIXP\tConfig"]
    (folder / "AS_config.txt").write_text("\n".join(rows) + "\n")
    links = [f"{n}\tBERG\tProvider\t{n % ases + 1}\tTAL\tCustomer\t1mbit\t2.5ms\t50ms\t179.{n}.{n % ases + 1}.0/24"
             for n in range(1, ases + 1)]
    links += [f"{n}\tSEE\tPeer\t{201 + n % 2}\tNone\tPeer\t1mbit\t2.5ms\t50ms\t{n + 1},{n + 2}"
              for n in range(1, ases + 1)]
    (folder / "aslevel_links.txt").write_text("\n".join(links) + "\n")
    (folder / "l2_switches.txt").write_text((src / "l2_switches.txt").read_text().replace("SUED", "SEE"))
    return folder


def test_class_sized_folder_imports_and_validates(tmp_path, capsys):
    folder = class_folder(tmp_path / "class")
    out = tmp_path / "class.yaml"
    assert main(["import", "mini-internet", str(folder), "-o", str(out)]) == 0
    assert main(["validate", str(out)]) == 0
    t = parse_topology(out.read_text(), "class.yaml")
    assert len(t.ases) == 60 and sum(len(a.routers) for a in t.ases.values()) == 480
    assert len(t.links) == 60 and [len(x.members) for x in t.ixps.values()] == [30, 30]
    assert all(a.imported_layer2["dcs"] == {"DCA": {"routers": ["NORD"]}, "DCB": {"routers": ["SEE"]}}
               for a in t.ases.values())
    assert (t.links[59].a.ip, t.links[59].b.ip) == ("179.60.1.60", "179.60.1.1")


def test_intra_as_problem_found_by_the_loader_names_the_source_line(tmp_path, capsys):
    # one link only: SUED is cut off (the loader's check), reported at each AS_config row using the file
    folder = _copy(tmp_path, "current")
    (folder / "l3_links.txt").write_text("NORD   MITTE   1mbit  5ms   50ms\n")
    assert main(["import", "mini-internet", str(folder), "-o", str(tmp_path / "o.yaml")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "AS_config.txt: line 2: router SUED cannot reach NORD over these links (ases.22.links)",
        "AS_config.txt: line 3: router SUED cannot reach NORD over these links (ases.23.links)"]


def test_a_shared_file_reports_a_problem_once(tmp_path):
    folder = _copy(tmp_path, "current")
    _edit(folder, "l3_links.txt", "MITTE  SUED    1mbit", "SUED  SUED    1mbit")
    assert _problems(folder) == ["l3_links.txt: line 2: joins router SUED to itself"]
