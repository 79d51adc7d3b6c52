"""The lab's `minet-provision --master` run is bounded by silence, not by its whole length: one that
keeps reporting progress runs as long as it needs; one that goes quiet is killed, and the reason is
the line the lab reports. The master command is replaced by a script; no root needed."""
from __future__ import annotations

import json
import sys

import pytest

from minet_sdn.lab import paths, provisioning
from minet_sdn.lab.state import LabState
from minet_sdn.topology import parse_topology

TOPO = "name: pv\nservers: [VM1]\nases:\n  1: {server: VM1, routers: [A]}\n"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path))
    topo = parse_topology(TOPO, "pv.yaml")
    (tmp_path / "pv").mkdir()
    with open(paths.lab_json_path(topo), "w") as fh:
        json.dump({"version": 1, "name": "pv", "effective_topology": str(tmp_path / "pv" / "topology.yaml"),
                   "ssh": {"key": "/k", "known_hosts": "/kh", "port": 22}}, fh)
    return topo, LabState.load(topo)


def run_script(monkeypatch, lab, script, silence):
    monkeypatch.setattr(provisioning, "nsenter_argv", lambda ns, argv: [sys.executable, "-c", script])
    lines = []
    rc, last = provisioning.run_provision(*lab, lines.append, silence=silence)
    return rc, last, lines


def test_progress_keeps_it_going_past_the_silence_limit(monkeypatch, lab):
    script = "import time\nfor i in range(8):\n print(f'[VM1] FRR: {i}/8', flush=True); time.sleep(0.4)\nprint('VM1: ok')"
    rc, last, lines = run_script(monkeypatch, lab, script, silence=1.5)     # 3.2 s in all
    assert rc == 0 and last == "VM1: ok" and len(lines) == 9


def test_silence_kills_it_and_says_so(monkeypatch, lab):
    script = "import time\nprint('[VM1] FRR: 1/8', flush=True)\ntime.sleep(60)"
    rc, last, lines = run_script(monkeypatch, lab, script, silence=1.5)
    assert rc != 0 and last == "minet-provision --master said nothing for 1.5 s: killed"
    assert lines == ["  provision: [VM1] FRR: 1/8"]
    assert "said nothing for 1.5 s: killed" in open(paths.state_file(lab[0], "provision.log")).read()
