"""lab.json as a type (minet_sdn/lab/state.py): a file written before the type existed reads back
field for field, defaults come from the declarations, and a value of the wrong type anywhere is
refused with one line naming the file and the field. No root needed."""
from __future__ import annotations

import json

import pytest

from minet_sdn.lab import LabError, paths
from minet_sdn.lab.state import LabState, ProcessRecord
from minet_sdn.topology import parse_topology

TOPO = "name: st\nservers: [VM1]\nases:\n  1: {server: VM1, routers: [A]}\n"

# as the dict-based code wrote it (a docker lab that is up, its controller started)
OLD = {
    "version": 1, "name": "st", "tag": "st", "topology": "/t/st.yaml", "topology_sha256": "ab" * 32,
    "effective_topology": "/r/st/topology.yaml", "mgmt_subnet": "10.254.0.0/24", "phase": "up",
    "created": 1764000000.5, "namespaces": ["st-mgmt", "st-ul", "st-VM1"],
    "processes": [{"name": "VM1/ovsdb-server", "pid": 10, "start": 99, "pidfile": "/r/st/VM1/ovsdb-server.pid"},
                  {"name": "controller", "pid": 12, "start": 101, "pidfile": None, "log": "/r/st/controller.log"}],
    "mgmt": {"ns": "st-mgmt", "bridge": "st-mbr", "ip": "10.254.0.1"},
    "underlay": {"ns": "st-ul", "bridge": "st-ubr", "mtu": 1500},
    "servers": {"VM1": {"ns": "st-VM1", "index": 1, "dir": "/r/st/VM1", "state_dir": "/r/st/VM1/provision",
                        "mgmt_ip": "10.254.0.2", "underlay_ip": "192.0.2.1", "ssh": "root@10.254.0.2:22",
                        "underlay_if": "st-ul", "underlay_peer_if": "st-ul1", "phy_bridge": "st-phy",
                        "mgmt_if": "st-mg", "mgmt_peer_if": "st-mg1"}},
    "ssh": {"key": "/r/st/ssh/id_ed25519", "known_hosts": "/r/st/ssh/known_hosts", "port": 22},
    "backend": "docker", "image": "minet-sdn/frr:1", "provisioned": True, "up_seconds": 5.7,
    "controller": {"ofp": "10.254.0.1:6653", "rest": "http://10.254.0.1:8080", "log": "/r/st/controller.log"},
    "rest_relay": "http://127.0.0.1:41234",
}


@pytest.fixture
def topo(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    t = parse_topology(TOPO, "st.yaml")
    (tmp_path / "st").mkdir()
    return t


def write(topo, data) -> str:
    path = paths.lab_json_path(topo)
    with open(path, "w") as fh:
        fh.write(data if isinstance(data, str) else json.dumps(data))
    return path


def test_a_file_of_the_dict_era_reads_back_and_saves_the_same(topo):
    write(topo, OLD)
    state = LabState.load(topo)
    assert state.phase == "up" and state.backend == "docker" and state.provisioned
    assert state.servers["VM1"].mgmt_ip == "10.254.0.2" and state.ssh.known_hosts == "/r/st/ssh/known_hosts"
    assert state.process("controller") == ProcessRecord("controller", 12, 101, None, "/r/st/controller.log")
    assert state.controller.rest == "http://10.254.0.1:8080" and state.rest_relay == "http://127.0.0.1:41234"
    state.save()
    again = json.load(open(state.path))
    for p in again["processes"]:                 # a record gains its optional fields, as null
        if p["log"] is None:
            del p["log"]
    assert {k: v for k, v in again.items() if k != "baseline"} == OLD and again["baseline"] is False


def test_missing_and_null_fields_take_the_declared_defaults(topo):
    write(topo, {"name": "st", "backend": None, "processes": [{"name": "relay", "pid": 5}]})
    state = LabState.load(topo)
    assert (state.backend, state.image, state.phase, state.provisioned) == ("netns", None, "building", False)
    assert state.controller is None and state.servers == {} and state.mgmt.ip == ""
    assert state.process("relay") == ProcessRecord("relay", 5)


@pytest.mark.parametrize("data,where", [
    ({"servers": {"VM1": {"mgmt_ip": 10}}}, "servers.VM1.mgmt_ip is 10, not a string"),
    ({"processes": [{"name": "x", "pid": "7"}]}, 'processes[0].pid is "7", not an integer'),
    ({"processes": [{"name": "x"}]}, "processes[0] has no pid"),
    ({"provisioned": "yes"}, 'provisioned is "yes", not true or false'),
    ({"created": True}, "created is true, not a number"),
    ({"controller": []}, "controller is [], not an object"),
    ([], "the file is [], not an object"),
])
def test_a_value_of_the_wrong_type_is_one_line_naming_file_and_field(topo, data, where):
    path = write(topo, data)
    with pytest.raises(LabError) as exc:
        LabState.load(topo)
    assert str(exc.value).startswith(f"unreadable lab state {path}: {where}"), str(exc.value)
    assert "\n" not in str(exc.value)


def test_no_file_is_no_lab_and_bad_json_is_unreadable(topo):
    assert LabState.load(topo) is None
    write(topo, '{"name": ')
    with pytest.raises(LabError, match="unreadable lab state"):
        LabState.load(topo)
