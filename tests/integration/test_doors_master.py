"""Students' doors on real servers: `minet-provision --master` over SSH to two emulated servers
(namespaces with their own OvS and sshd), a topology with a `class:` section. The door of AS2 lives
on VM2, the server hosting AS2, with the credentials the master keeps: `minet class doors` on the
master lists VM2's address; a student, from VM1's network, logs in with the listed password
against the pinned host key, enters router B (vtysh on VM2) and configures it. `--down` removes
the door: no user, no sshd, no run directory left. Needs root, OvS, FRR, sshd, pexpect.
"""
from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys

import pytest

from provision_fixtures import NETNS_DIR, SSHD, emulated_servers, master, sh, skip_reason, topology_yaml

pexpect = pytest.importorskip("pexpect")
pytestmark = [pytest.mark.root,
              pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
              pytest.mark.skipif(not os.access(SSHD, os.X_OK), reason="sshd is not installed"),
              pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("vtysh") is None,
                                 reason="needs the OpenSSH client and FRR")]


def test_master_makes_each_door_on_the_server_hosting_its_as(tmp_path, monkeypatch):
    monkeypatch.setenv("MINET_CLASS_DIR", str(tmp_path / "class"))
    key = str(tmp_path / "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    pub = open(key + ".pub").read()
    base = 30000 + secrets.randbelow(20000)
    with emulated_servers(("VM1", "192.0.2.1"), ("VM2", "192.0.2.2"), connect=True) as (prefix, (vm1, vm2)):
        tag = prefix.value
        known_hosts = str(tmp_path / "known_hosts")
        open(known_hosts, "w").write(vm1.start_sshd(pub) + vm2.start_sshd(pub))
        text = topology_yaml(
            tag, {"VM1": {"underlay_ip": "192.0.2.1", "ssh": vm1.ssh_spec},
                  "VM2": {"underlay_ip": "192.0.2.2", "ssh": vm2.ssh_spec}},
            {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM2", "routers": ["B"], "configure": False}},
            [{"a": "1.A", "b": "2.B", "rel": "provider"}]) + f"class: {{port_base: {base}}}\n"
        topo_path = str(tmp_path / "topology.yaml")
        open(topo_path, "w").write(text)
        from minet_sdn.topology import load_topology
        from minet_sdn.classroom import credentials, doors
        topo = load_topology(topo_path)
        user = credentials.user_name(topo.tag, 2)
        rdir = doors.run_dir(f"{topo.name}@VM2")
        try:
            # this Python on the servers too (their PATH may find another minet-provision first)
            remote = ("--remote-command", f"{sys.executable} -m minet_sdn.cli.provision")
            res = master(vm1, topo_path, known_hosts, key, *remote)
            assert res.returncode == 0, res.stderr + res.stdout
            report = json.loads(res.stdout)
            assert [d["server"] for d in report["doors"]] == ["VM2"] and report["doors"][0]["ok"], report
            assert report["doors"][0]["report"]["doors"] == [{"group": 2, "user": user, "port": base + 2}]
            # the master's listing: VM2's address, the password and host key the master keeps
            listing = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "class", "doors", topo_path, "--json"],
                                     capture_output=True, text=True, timeout=60)
            assert listing.returncode == 0, listing.stderr
            door = json.loads(listing.stdout)["doors"][0]
            assert (door["group"], door["address"], door["port"]) == (2, "192.0.2.2", base + 2)
            students_known = tmp_path / "students_known_hosts"
            students_known.write_text(door["known_hosts"] + "\n")
            # the door's sshd runs in VM2's network namespace (the server), not this machine's
            assert os.path.isdir(rdir) and pwd.getpwnam(user).pw_gecos == doors.gecos(topo.name, 2)
            # the server got a hash: the password is in no file of its doors (nor in a bundle left)
            files = [os.path.join(d, n) for d, _s, names in os.walk(rdir) for n in names] + glob.glob("/tmp/minet-doors.*")
            for path in files:
                if os.path.isfile(path) and not os.path.islink(path):
                    with open(path, "rb") as fh:
                        assert door["password"].encode() not in fh.read(), path

            child = pexpect.spawn("nsenter", [f"--net={NETNS_DIR}/{vm1.ns}", "--", "ssh", "-o",
                                              f"UserKnownHostsFile={students_known}", "-o", "StrictHostKeyChecking=yes",
                                              "-o", "GlobalKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no",
                                              "-o", "NumberOfPasswordPrompts=1", "-p", str(door["port"]),
                                              f"{door['user']}@{door['address']}"],
                                  encoding="utf-8", timeout=60, dimensions=(40, 200))
            try:
                child.expect("password:")
                child.sendline(door["password"])
                child.expect("AS2> ")
                assert "routers: B" in child.before
                child.sendline("goto B")
                child.expect("AS2-B# ")
                child.sendline("configure terminal")
                child.expect(r"\(config\)# ")
                child.sendline("router bgp 2")
                child.expect(r"\(config-router\)# ")
                child.sendline("end")
                child.expect("AS2-B# ")
                child.sendline("show running-config")
                child.expect("AS2-B# ")
                assert "router bgp 2" in child.before
                child.sendline("exit")
                child.expect("AS2> ")
                child.sendline("exit")
                child.expect(pexpect.EOF)
            finally:
                child.close(force=True)

            res = master(vm1, topo_path, known_hosts, key, "--down", *remote)
            assert res.returncode == 0, res.stderr + res.stdout
            assert json.loads(res.stdout)["doors"][0]["ok"]
            with pytest.raises(KeyError):
                pwd.getpwnam(user)
            assert not os.path.exists(rdir)
        finally:
            doors.down(topo, ["VM2"], rdir=rdir)             # whatever failed: no user, no sshd left
