"""`minet-provision --master` with one server unreachable: a clear error naming it, the others
complete, and nothing half-built on it (it was never reached). Three emulated servers; VM3's
underlay goes nowhere and runs no sshd. Root; cleans up whatever happens.
"""
from __future__ import annotations

import json
import os

import pytest

from provision_fixtures import NETNS_DIR, SSHD, emulated_servers, master, sh, skip_reason, topology_yaml

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
              pytest.mark.skipif(not os.access(SSHD, os.X_OK), reason="sshd is not installed")]


def test_one_unreachable_server_is_named_and_the_others_complete(tmp_path):
    key = str(tmp_path / "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    pub = open(key + ".pub").read()
    specs = (("VM1", "192.0.2.1"), ("VM2", "192.0.2.2"), ("VM3", "192.0.2.3"))
    with emulated_servers(*specs, connect=True) as (prefix, (vm1, vm2, vm3)):
        tag = prefix.value
        known_hosts = str(tmp_path / "known_hosts")
        open(known_hosts, "w").write(vm1.start_sshd(pub) + vm2.start_sshd(pub))
        text = topology_yaml(
            tag, {"VM1": {"underlay_ip": "192.0.2.1", "ssh": vm1.ssh_spec},
                  "VM2": {"underlay_ip": "192.0.2.2", "ssh": vm2.ssh_spec},
                  "VM3": {"underlay_ip": "192.0.2.3", "ssh": "root@192.0.2.3:2222"}},
            {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM2", "routers": ["B"]},
             3: {"server": "VM3", "routers": ["C"]}},
            [{"a": "1.A", "b": "2.B", "rel": "provider"}, {"a": "2.B", "b": "3.C", "rel": "peer"},
             {"a": "1.A", "b": "3.C", "rel": "peer"}])
        topo_path = str(tmp_path / "topology.yaml")
        open(topo_path, "w").write(text)

        res = master(vm1, topo_path, known_hosts, key)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        report = json.loads(res.stdout)
        by_server = {s["server"]: s for s in report["servers"]}
        assert not report["ok"]
        assert by_server["VM1"]["ok"] and by_server["VM2"]["ok"]
        assert not by_server["VM3"]["ok"]
        error = by_server["VM3"]["error"]
        assert "192.0.2.3" in error or "VM3" in error, error        # says which server and why
        # the reachable servers are complete: their routers exist, their bridges too
        for router in ("1.A", "2.B"):
            assert os.path.exists(os.path.join(NETNS_DIR, f"{tag}-{router}"))
        assert f"{tag}-br3" in vm1.vsctl("list-br").split() and f"{tag}-br3" in vm2.vsctl("list-br").split()
        # nothing of the instance on the unreachable one
        assert not os.path.exists(os.path.join(NETNS_DIR, f"{tag}-3.C"))
        assert vm3.vsctl("list-br").split() == ["ul-br"]
        assert not os.path.exists(os.path.join(vm3.state_dir, tag))

        # --down on the same topology: the reachable ones are cleaned, the unreachable one named again
        res = master(vm1, topo_path, known_hosts, key, "--down")
        assert res.returncode == 1
        down = {s["server"]: s for s in json.loads(res.stdout)["servers"]}
        assert down["VM1"]["ok"] and down["VM2"]["ok"] and not down["VM3"]["ok"]
        for server in (vm1, vm2):
            assert server.vsctl("list-br").split() == ["ul-br"]
