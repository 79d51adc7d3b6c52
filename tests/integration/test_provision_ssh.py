"""Master mode over SSH: two emulated servers (each a namespace with its own OvS and sshd), joined by
an underlay veth; `minet-provision --master` run from VM1's namespace provisions both in parallel.
With the per-link flows a controller would install (set by hand here, as in the platform recipe),
the remote link carries eBGP, full-size packets and a TCP transfer across the GRE tunnel.
A host key that does not match known_hosts is refused.
"""
from __future__ import annotations

import json
import os

import pytest

from provision_fixtures import (NETNS_DIR, SSHD, Site, emulated_servers, frr_processes, master, sh, skip_reason,
                                topology_yaml)

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
              pytest.mark.skipif(not os.access(SSHD, os.X_OK), reason="sshd is not installed")]


TCP_SERVER = ("import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
              "s.bind(('{ip}',5001));s.listen(1);s.settimeout(20);c,_=s.accept();c.settimeout(20);n=0\n"
              "while True:\n d=c.recv(65536)\n if not d: break\n n+=len(d)\nprint(n)")
TCP_CLIENT = ("import socket,time\nfor i in range(50):\n try:\n  s=socket.create_connection(('{ip}',5001),2);break\n"
              " except OSError: time.sleep(0.1)\ns.settimeout(20);s.sendall(b'x'*{n});s.close()")


def test_master_mode_over_ssh(tmp_path):
    key = str(tmp_path / "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    pub = open(key + ".pub").read()
    with emulated_servers(("VM1", "192.0.2.1"), ("VM2", "192.0.2.2"), connect=True) as (prefix, (vm1, vm2)):
        tag = prefix.value
        known = [vm1.start_sshd(pub), vm2.start_sshd(pub)]
        known_hosts = str(tmp_path / "known_hosts")
        open(known_hosts, "w").write("".join(known))
        text = topology_yaml(
            tag, {"VM1": {"underlay_ip": "192.0.2.1", "ssh": vm1.ssh_spec},
                  "VM2": {"underlay_ip": "192.0.2.2", "ssh": vm2.ssh_spec}},
            {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM2", "routers": ["B"]}},
            [{"a": "1.A", "b": "2.B", "rel": "provider"}])
        topo_path = str(tmp_path / "topology.yaml")
        open(topo_path, "w").write(text)

        res = master(vm1, topo_path, known_hosts, key)
        assert res.returncode == 0, res.stderr + res.stdout
        report = json.loads(res.stdout)
        assert report["ok"] and [s["server"] for s in report["servers"]] == ["VM1", "VM2"]
        for s in report["servers"]:
            assert s["ok"] and s["report"]["n_changes"] > 10 and s["via"].startswith("ssh root@")
        assert "[VM1]" in res.stderr and "[VM2]" in res.stderr          # progress relayed per server
        # in parallel: each server's progress starts before the other's ends
        lines = res.stderr.splitlines()
        at = {s: [i for i, line in enumerate(lines) if line.startswith(f"[{s}]")] for s in ("VM1", "VM2")}
        assert at["VM1"][0] < at["VM2"][-1] and at["VM2"][0] < at["VM1"][-1], res.stderr
        for server, router in ((vm1, "1.A"), (vm2, "2.B")):
            assert os.path.exists(os.path.join(NETNS_DIR, f"{tag}-{router}"))
            assert server.vsctl("list-br").split() == sorted([f"{tag}-br{1 if server is vm2 else 2}", "ul-br"])
        # the uploaded copy of the topology is gone from the servers' /tmp
        assert not [f for f in os.listdir("/tmp") if f.startswith("minet-topology.")
                    and open(os.path.join("/tmp", f)).read() == text]

        # a second master run changes nothing anywhere; with --wait it says that routing has not
        # converged (no flows on the remote bridges yet, so eBGP cannot come up), naming the router
        res = master(vm1, topo_path, known_hosts, key, "--wait", "3")
        assert res.returncode == 1, res.stderr
        report = json.loads(res.stdout)
        assert [s["report"]["n_changes"] for s in report["servers"]] == [0, 0]
        for s, peer in zip(report["servers"], ("100.64.0.2", "100.64.0.1")):
            assert not s["ok"] and not s["report"]["routing"]["converged"]
            assert s["error"].startswith("not converged after 3 s: 1 of 1 routers not converged: ")
            assert f"sessions not established: {peer}" in s["error"]

        # the flows the controller would install for link 1 (tunnel key 1), then eBGP across GRE
        for server, bridge in ((vm1, f"{tag}-br2"), (vm2, f"{tag}-br1")):
            server.run("ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge,
                       "in_port=101,actions=set_field:1->tun_id,output:1")
            server.run("ovs-ofctl", "-O", "OpenFlow13", "add-flow", bridge, "in_port=1,tun_id=1,actions=output:101")
        site = Site(prefix, vm1, topo_path)
        assert wait_until(lambda: "100.64.0.2" in site.established("1.A"), 40, interval=0.5), "eBGP across GRE"
        # --wait returns once each server's routers have every session and every route
        res = master(vm1, topo_path, known_hosts, key, "--wait", "60")
        assert res.returncode == 0, res.stderr + res.stdout
        for s in json.loads(res.stdout)["servers"]:
            routing = s["report"]["routing"]
            assert routing["converged"] and routing["routers"] == {"converged": 1, "total": 1}
            assert routing["sessions"]["established"] == routing["sessions"]["expected"] > 0
        assert "[VM2] waiting for BGP on 1 configured routers" in res.stderr
        # full-size packets fit the link MTU (1458 on a 1500-byte underlay): 1430 + 28 bytes, DF set
        ping = sh("ip", "netns", "exec", f"{tag}-1.A", "ping", "-c2", "-W2", "-M", "do", "-s", "1430", "100.64.0.2",
                  check=False)
        assert ping.returncode == 0, ping.stdout
        too_big = sh("ip", "netns", "exec", f"{tag}-1.A", "ping", "-c1", "-W2", "-M", "do", "-s", "1431",
                     "100.64.0.2", check=False)
        assert too_big.returncode != 0                                   # the router's own MTU stops it
        # hosts reach each other across ASes and servers
        assert wait_until(lambda: sh("ip", "netns", "exec", f"{tag}-1.A.host", "ping", "-c1", "-W1", "10.0.2.130",
                                     check=False).returncode == 0, 40, interval=0.5)
        # TCP (offloads off): 4 MB from host to host through the tunnel
        import subprocess
        srv = subprocess.Popen(["ip", "netns", "exec", f"{tag}-2.B.host", "python3", "-c",
                                TCP_SERVER.format(ip="10.0.2.130")], stdout=subprocess.PIPE, text=True)
        try:
            # a stalled TCP (offloads on) fails the sockets' own 20 s timeouts: every byte arriving is the check
            sh("ip", "netns", "exec", f"{tag}-1.A.host", "python3", "-c",
               TCP_CLIENT.format(ip="10.0.2.130", n=4 * 1024 * 1024), timeout=60)
            out, _ = srv.communicate(timeout=30)
            assert int(out.strip()) == 4 * 1024 * 1024
        finally:
            if srv.poll() is None:
                srv.kill()
                srv.wait()

        # a host key that does not match known_hosts is refused (VM2 only); VM1 still runs
        other = str(tmp_path / "other_key")
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other)
        ktype, kdata = open(other + ".pub").read().split()[:2]
        wrong = str(tmp_path / "known_hosts_wrong")
        open(wrong, "w").write(known[0] + f"[192.0.2.2]:2222 {ktype} {kdata}\n")
        res = master(vm1, topo_path, wrong, key)
        assert res.returncode == 1
        by_server = {s["server"]: s for s in json.loads(res.stdout)["servers"]}
        assert by_server["VM1"]["ok"] and not by_server["VM2"]["ok"]
        assert "does not match known_hosts" in by_server["VM2"]["error"]
        # an unknown host is refused too, unless --insecure-host-keys
        only_vm1 = str(tmp_path / "known_hosts_vm1")
        open(only_vm1, "w").write(known[0])
        res = master(vm1, topo_path, only_vm1, key)
        assert res.returncode == 1 and "not found in known_hosts" in res.stdout
        res = master(vm1, topo_path, only_vm1, key, "--insecure-host-keys")
        assert res.returncode == 0, res.stdout

        # down on every server: nothing of ours is left anywhere
        res = master(vm1, topo_path, known_hosts, key, "--down")
        assert res.returncode == 0, res.stderr + res.stdout
        assert sorted(n for n in prefix.namespaces()) == sorted([vm1.ns, vm2.ns])
        for server in (vm1, vm2):
            assert server.vsctl("list-br").split() == ["ul-br"]
            assert not os.path.exists(os.path.join(server.state_dir, tag))
        assert frr_processes(prefix) == []


def test_an_interrupted_master_stops_every_server_and_waits_for_their_rollback(tmp_path):
    """SIGTERM to `minet-provision --master` while both servers are starting their routers: each
    server's provisioner is told to stop (over the master's SSH connection), rolls back, and the
    master exits only after that (130): the moment it is gone, no provisioner, router namespace or
    FRR daemon of the run is left on either server. Before, the master waited for the servers'
    `up` to finish and left every router running."""
    import signal
    import subprocess
    import threading

    from provision_fixtures import ns_inode, pids_in_namespaces, provision_command
    key = str(tmp_path / "id_ed25519")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key)
    pub = open(key + ".pub").read()
    with emulated_servers(("VM1", "192.0.2.1"), ("VM2", "192.0.2.2"), connect=True) as (prefix, (vm1, vm2)):
        tag = prefix.value
        known_hosts = str(tmp_path / "known_hosts")
        open(known_hosts, "w").write(vm1.start_sshd(pub) + vm2.start_sshd(pub))
        ases = {n: {"server": "VM1" if n <= 4 else "VM2", "routers": ["A", "B", "C", "D", "E"]} for n in range(1, 9)}
        links = [{"a": "1.A", "b": "5.A", "rel": "peer"}, {"a": "2.A", "b": "6.A", "rel": "provider"},
                 {"a": "1.B", "b": "2.B", "rel": "peer"}, {"a": "5.B", "b": "6.B", "rel": "peer"}]
        text = topology_yaml(tag, {"VM1": {"underlay_ip": "192.0.2.1", "ssh": vm1.ssh_spec},
                                   "VM2": {"underlay_ip": "192.0.2.2", "ssh": vm2.ssh_spec}}, ases, links)
        topo_path = str(tmp_path / "topology.yaml")
        open(topo_path, "w").write(text)
        argv = ["nsenter", f"--net={NETNS_DIR}/{vm1.ns}", "--", *provision_command(), "--topology", topo_path,
                "--master", "--known-hosts", known_hosts, "--identity", key]
        if provision_command()[0].endswith("minet-provision"):   # the servers run this very installation
            argv += ["--remote-command", provision_command()[0]]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        try:
            def starting() -> bool:
                return all(any(l.startswith(f"[{s}]") and "FRR: starting" in l for l in list(lines))
                           for s in ("VM1", "VM2"))
            assert wait_until(lambda: starting() or proc.poll() is not None, 180, interval=0.05), "".join(lines)
            assert proc.poll() is None, "the master finished before it could be interrupted:\n" + "".join(lines)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=240)
            # the moment the master is gone: nothing of the run left on either server
            servers_ns = {ns_inode(f"{NETNS_DIR}/{s.ns}") for s in (vm1, vm2)}
            provisioners = []
            for pid in pids_in_namespaces(servers_ns):
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    continue
                if "--server" in cmd and "provision" in cmd:
                    provisioners.append(cmd)
            left_ns = sorted(n for n in prefix.namespaces() if n not in (vm1.ns, vm2.ns))
            left_frr = frr_processes(prefix)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        reader.join(10)
        out = "".join(lines)
        assert code == 130, out
        assert provisioners == [] and left_ns == [] and left_frr == [], (provisioners, left_ns, left_frr, out)
        for s in ("VM1", "VM2"):
            assert f"[{s}] interrupted: its provisioner is told to stop and roll back" in out, out
            assert f"[{s}] rolled back" in out, out
        assert "error: interrupted: every server's provisioner was told to stop and has exited" in out
