"""What `lab status` reports and `lab up` repairs of what provisioning built (lab/repair.py), operator
link failures kept across `lab down` + `lab up` (lab/lab.py), and convergence that does not wait for
sessions over failed links (provision/converge.py). Pure parts, without root."""
import json
import os
from pathlib import Path

import yaml

from minet_sdn.lab import lab as lab_mod, paths, repair
from minet_sdn.lab.convergence import failed_peers
from minet_sdn.provision import converge
from minet_sdn.topology import load_topology

DEMO = Path(__file__).resolve().parents[2] / "topologies" / "demo.yaml"


def test_dead_daemons_names_each_router_with_what_is_missing():
    routers = [("1.A", ("zebra", "bgpd", "ospfd"), "/r/a"), ("1.B", ("zebra", "bgpd"), "/r/b"),
               ("rs", ("zebra", "bgpd"), "/r/rs")]
    dead = {"/r/a/zebra.pid", "/r/a/bgpd.pid", "/r/rs/bgpd.pid"}
    got = repair.dead_daemons(routers, lambda pid_path, daemon: pid_path not in dead)
    assert got == {"1.A": ["zebra", "bgpd"], "rs": ["bgpd"]}


def test_a_pid_file_must_name_a_live_process_of_that_daemon(tmp_path):
    pid_file = tmp_path / "zebra.pid"
    assert not repair.daemon_running(str(pid_file), "zebra")             # no file
    pid_file.write_text(f"{os.getpid()}\n")
    assert not repair.daemon_running(str(pid_file), "zebra")             # a live pid of something else
    comm = open(f"/proc/{os.getpid()}/comm").read().strip()
    assert repair.daemon_running(str(pid_file), comm)
    pid_file.write_text("garbage")
    assert not repair.daemon_running(str(pid_file), comm)


def test_missing_bridges_skips_a_server_whose_ovs_did_not_answer():
    wanted = {"VM1": ["d-br1", "d-br2"], "VM2": ["d-br1"], "VM3": ["d-br3"]}
    present = {"VM1": ["d-br1", "ul-br"], "VM2": None, "VM3": ["d-br3"]}
    assert repair.missing_bridges(wanted, present) == [("VM1", "d-br2")]


def _lab_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    data = yaml.safe_load(DEMO.read_text())
    data["name"] = "kf1"
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    topo = load_topology(str(path))
    os.makedirs(paths.state_dir(topo))
    return topo


def test_operator_failures_are_kept_across_down_and_given_to_the_next_up(tmp_path, monkeypatch):
    topo = _lab_dir(tmp_path, monkeypatch)
    state = paths.state_file(topo, lab_mod.CONTROLLER_STATE)
    failed = [{"a": "1.GENE", "b": "2.LOND", "n": 0}]
    with open(state, "w") as fh:
        json.dump({"topology": topo.name, "failed": failed, "failed_links": [3]}, fh)
    said = []
    lab_mod.keep_link_failures(topo, said.append)
    kept = paths.kept_link_failures(topo)
    assert json.load(open(kept))["failed"] == failed and "links 3" in said[0]
    assert os.stat(kept).st_mode & 0o077 == 0
    os.unlink(state)                          # `lab down` removes the state directory
    lab_mod.restore_link_failures(topo, said.append)
    assert json.load(open(state))["failed"] == failed and not os.path.exists(kept)
    # nothing failed any more: an older kept copy must not come back
    with open(kept, "w") as fh:
        fh.write("{}")
    with open(state, "w") as fh:
        json.dump({"topology": topo.name, "failed": []}, fh)
    lab_mod.keep_link_failures(topo, said.append)
    assert not os.path.exists(kept)


def test_sessions_over_failed_links_are_not_waited_for(tmp_path, monkeypatch):
    topo = _lab_dir(tmp_path, monkeypatch)
    state = paths.state_file(topo, lab_mod.CONTROLLER_STATE)
    with open(state, "w") as fh:
        json.dump({"topology": topo.name, "failed": [{"a": "1.GENE", "b": "2.LOND", "n": 0}]}, fh)
    link = topo.link(3)
    down = failed_peers(topo, state)
    assert down == {link.a.ip, link.b.ip, link.a.ip6, link.b.ip6}
    text = json.dumps({"ipv4Unicast": {"peers": {link.b.ip: {"remoteAs": 2, "state": "Idle"}}}})
    before = converge.bgp_sessions(topo, "1.GENE", text)
    after = converge.bgp_sessions(topo, "1.GENE", text, down)
    assert not converge.bgp_converged(before)          # the failed link's session held everything
    assert link.b.ip6 not in after["missing"] and link.b.ip not in after["missing"]
    assert not any(s["expected"] for s in after["sessions"])
    assert failed_peers(topo, str(tmp_path / "none.json")) == frozenset()
