"""class Lab without root: what it holds and reads (lab.json only when needed), the places it
gives (the backend `lab up` recorded, each emulated server's state root), node resolution and
the refusals of exec/status when no lab is up."""
from __future__ import annotations

import os

import pytest

from minet_sdn.lab import LabError, paths, quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.lab.state import LabState, topology_digest

TOPO = """
name: labobj
servers: [VM1, VM2]
ases:
  1: {server: VM1, routers: [ZURI, GENE]}
  2: {server: VM2, routers: [PARI]}
links:
  - {a: 1.ZURI, b: 2.PARI, rel: peer}
"""


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "root"))
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    return Lab(str(path), progress=quiet)


def _record(lab: Lab, **fields) -> None:
    os.makedirs(paths.state_dir(lab.topo), exist_ok=True)
    fields = {"topology": os.path.abspath(lab.topo_path), "topology_sha256": topology_digest(lab.topo_path),
              **fields}                      # as `lab up` records them: the lab of this very file
    LabState(path=paths.lab_json_path(lab.topo), name=lab.name, tag=lab.topo.tag, **fields).save()


def test_no_lab_up(lab):
    assert lab.state is None and lab.backend == "netns"
    with pytest.raises(LabError, match="no lab of .* is up"):
        lab.exec("1.ZURI", ["true"])
    with pytest.raises(LabError, match="no lab of .* is up"):
        lab.status()
    with pytest.raises(LabError, match="no lab of .* is up"):
        lab.rest_call("GET", "/v1/links")
    assert lab.effective is lab.topo         # nothing built yet: the user's file


def test_lab_json_is_read_when_needed(lab):
    os.makedirs(paths.state_dir(lab.topo), exist_ok=True)
    with open(paths.lab_json_path(lab.topo), "w") as fh:
        fh.write("not json")
    fresh = Lab(lab.topo_path, progress=quiet)      # constructing reads nothing
    with pytest.raises(LabError, match="unreadable lab state"):
        fresh.require()


def test_places_follow_the_recorded_backend(lab):
    _record(lab, backend="docker")
    lab.reload()
    places = lab.places()
    assert lab.backend == "docker" and places["1.ZURI"].backend == "docker"
    assert places["2.PARI"].frr_dir == os.path.join(paths.provision_state_dir(lab.topo, "VM2"),
                                                    "labobj", "VM2", "frr", "2.PARI")
    assert places["1.ZURI.host"].exec_prefix()[:2] == ["docker", "exec"]
    assert lab.place("PARI") is places["2.PARI"] and lab.place("GENE.host") is places["1.GENE.host"]
    with pytest.raises(LabError, match="not a node"):
        lab.place("mgmt")
    with pytest.raises(LabError, match="no node"):
        lab.place("NOPE")
    ns, env, place = lab.resolve("VM1")
    assert place is None and env["MINET_STATE_DIR"] == paths.provision_state_dir(lab.topo, "VM1")


def test_exec_refuses_an_empty_command_and_a_missing_node(lab):
    _record(lab)
    with pytest.raises(LabError, match="no command given"):
        lab.exec("1.ZURI", [])
    with pytest.raises(LabError, match="does not exist"):        # no namespace: never provisioned
        lab.exec("1.ZURI", ["true"])
