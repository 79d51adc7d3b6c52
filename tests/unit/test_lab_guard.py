"""`minet link ...`, `minet ui` and `minet exec` act only on the lab their file built (issue 21 item 9),
like `lab up/down/status`: another file with the same `name:` is refused in one line (exit 2) before
anything is asked of a controller; the lab's own file edited since `lab up` is acted on in the
version that runs, and `link fail|restore N` is refused when link N is another link in the edit.
No root: lab.json is written by hand under a private MINET_LAB_ROOT; no controller runs."""
import os
import shutil
from pathlib import Path

import pytest
import yaml

from minet_sdn.cli.main import main
from minet_sdn.lab import LabError, guard
from minet_sdn.lab.state import LabState, topology_digest
from minet_sdn.topology import load_topology

DEMO = Path(__file__).resolve().parents[2] / "topologies" / "demo.yaml"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A lab.json as `lab up` of tmp/demo.yaml (name gd1) writes it; the file's path."""
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    data = yaml.safe_load(DEMO.read_text())
    data["name"] = "gd1"
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    topo = load_topology(str(path))
    sdir = tmp_path / "labs" / topo.name
    os.makedirs(sdir)
    shutil.copyfile(path, sdir / "topology.yaml")
    LabState(path=str(sdir / "lab.json"), name=topo.name, tag=topo.tag, topology=str(path),
             topology_sha256=topology_digest(str(path)), effective_topology=str(sdir / "topology.yaml"),
             phase="up").save()
    return path, data


def other_file(tmp_path, data, change=None):
    data = yaml.safe_load(yaml.safe_dump(data))
    if change:
        change(data)
    path = tmp_path / "other" / "demo.yaml"
    os.makedirs(path.parent, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False) + "# another file\n")
    return path


@pytest.mark.parametrize("argv", [["link", "fail", "{f}", "1"], ["link", "restore", "{f}", "1"],
                                  ["link", "list", "{f}"], ["ui", "{f}"], ["exec", "{f}", "1.ZURI", "--", "true"]])
def test_another_file_with_the_same_name_is_refused_in_one_line(lab, tmp_path, capsys, argv):
    path, data = lab
    other = other_file(tmp_path, data)
    code = main([a.replace("{f}", str(other)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    assert len(err.strip().splitlines()) == 1 and "is not the file the lab gd1 was built from" in err, err


def test_link_n_of_an_edited_file_that_is_another_link_is_refused(lab, capsys):
    path, data = lab
    data["links"].insert(0, {"a": "1.GENE", "b": "3.BERN", "rel": "peer"})    # every id moves by one
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for n, mine, theirs in (("4", "1.GENE - 2.LOND", "1.GENE - 3.BERN"),
                            ("2", "1.ZURI - 2.PARI (#1 of 2)", "1.ZURI - 2.PARI (#2 of 2)")):   # parallel links
        assert main(["link", "fail", str(path), n]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert f"changed since `lab up`: its link {n} is {mine}, the running lab's link {n} is {theirs}; " \
               "refusing" in err, err


def test_the_same_link_in_an_edited_file_is_acted_on_with_a_note(lab):
    path, data = lab
    data["links"].append({"a": "1.GENE", "b": "3.BERN", "rel": "peer"})        # ids 1..10 unchanged
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    topo = load_topology(str(path))
    note = guard.for_command(str(path), topo, 1)
    assert note is not None and "changed since `lab up`" in note
    with pytest.raises(LabError, match=r"its link 11 is 1.GENE - 3.BERN \(#2 of 2\), the running lab.s link 11 is no link"):
        guard.for_command(str(path), topo, 11)


def test_no_lab_or_the_lab_file_itself_passes(lab, tmp_path, monkeypatch):
    path, _ = lab
    topo = load_topology(str(path))
    assert guard.for_command(str(path), topo, 3) is None
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "none"))
    assert guard.for_command(str(path), topo, 3) is None


def test_the_labs_own_copy_of_what_it_runs_passes(lab, tmp_path):
    """The lab's effective topology (its own copy, other content than the file it was built from)
    is the lab itself: tools and tests handed that copy act on the lab."""
    path, _ = lab
    effective = tmp_path / "labs" / "gd1" / "topology.yaml"
    with open(effective, "a") as fh:
        fh.write("# the lab's copy, as lab up writes it (effective settings)\n")
    topo = load_topology(str(effective))
    assert guard.for_command(str(effective), topo, 1) is None
