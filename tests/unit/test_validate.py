"""One validation: `minet validate`, `minet-provision` and `minet lab up` refuse the same topology
with the same line (a default prefix that an explicit one overlaps is seen only after numbering)."""
import subprocess
import sys
from pathlib import Path

import pytest

from minet_sdn.lab import LabError, provisioning, servers
from minet_sdn.lab.lab import Lab
from minet_sdn.provision import ssh
from minet_sdn.topology import loader, validate

REPO = Path(__file__).resolve().parents[2]
CLASH = """
name: hs01
servers: [VM1]
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM1, routers: [B], prefix: 10.0.0.0/16}
"""
LINE = "ases.2.prefix: 10.0.0.0/16 overlaps the prefix of AS 1 (10.0.1.0/24)"


def test_all_three_refuse_the_same_topology(tmp_path, monkeypatch):
    path = tmp_path / "clash.yaml"
    path.write_text(CLASH)
    assert validate.problems(loader.load_topology(str(path))) == [f"clash.yaml: {LINE}"]
    for module, argv in (("minet_sdn.cli.main", ["validate", str(path)]),
                         ("minet_sdn.cli.provision", ["--topology", str(path), "--server", "VM1", "--plan"])):
        proc = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=str(REPO),
                              timeout=60)
        assert proc.returncode == 2 and proc.stderr.strip() == f"clash.yaml: {LINE}", (module, proc.stderr)
        assert proc.stdout == ""
    monkeypatch.setenv("MINET_LAB_ROOT", str(tmp_path / "labs"))
    monkeypatch.setattr(servers, "check_host", lambda: None)       # no root needed for this
    monkeypatch.setattr(servers, "build_servers", lambda *a, **k: pytest.fail("built servers"))
    monkeypatch.setattr(provisioning, "check_capacity", lambda *a, **k: pytest.fail("went on"))
    with pytest.raises(LabError, match="overlaps the prefix of AS 1"):
        Lab(str(path), progress=lambda _m: None).up()


@pytest.mark.parametrize("spec,ok", [("root@vm2.example.org:22", True), ("[2001:db8::1]:2222", True),
                                     ("vm2", True), ("a b@host", False), ("host:99999", True), ("@host", False)])
def test_one_ssh_pattern(spec, ok):
    assert ssh.SSH_RE is loader.SSH_RE
    assert bool(loader.SSH_RE.fullmatch(spec)) is ok
