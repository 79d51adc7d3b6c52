"""Students' doors, end to end (root): a small lab (4 ASes on 2 servers; AS3 and AS4
`configure: false`, each a group with a door and a data centre: a switch and a host), real sshd, the real OpenSSH client (passwords typed
at its prompt through a pseudo-terminal, host keys pinned from `minet class doors`, never
StrictHostKeyChecking=no).

A group logs in, goes to its router, configures and saves a BGP neighbour: the session to the
configured AS comes up and frr.conf holds it. Then a hostile group tries every escape the door
must refuse (forwarding of every kind, sftp/scp, commands, other groups' devices, shell escapes
from vtysh, the server's files, namespaces and management network, a fork bomb, a memory hog),
and the other group and the lab are checked intact afterwards.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys

import pytest

from class_support import class_lab, free_port_base, minet
from e2e_support import require_lab
from tests.polling import wait_until
from minet_sdn.lab import places
from minet_sdn.classroom.settings import Limits
from minet_sdn.lab.lab import Lab

pytestmark = pytest.mark.root
require_lab("vtysh", "ssh", "sftp", "scp")
pexpect = pytest.importorskip("pexpect")

TOPOLOGY = """\
name: {name}
servers: [VM1, VM2]
ases:
  1: {{server: VM1, routers: [A1]}}
  2: {{server: VM2, routers: [B1]}}
  3:
    server: VM1
    routers: [C1, C2]
    configure: false
    layer2:
      switches: {{S1: {{dc: DCN, router: C1}}}}
      hosts: {{H3: {{switch: S1, vlan: 10}}}}
  4:
    server: VM2
    routers: [D1]
    configure: false
    layer2:
      switches: {{T1: {{dc: DCN, router: D1}}}}
      hosts: {{H4: {{switch: T1, vlan: 10}}}}
links:
  - {{a: 1.A1, b: 2.B1, rel: peer}}
  - {{a: 1.A1, b: 3.C1, rel: provider}}
  - {{a: 2.B1, b: 4.D1, rel: provider}}
class: {{port_base: {port_base}, limits: {{pids: 64, memory: 96M}}}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doors")
    with class_lab(tmp, "dr", TOPOLOGY) as lab:
        known = tmp / "known_hosts"
        known.write_text("".join(d["known_hosts"] + "\n" for d in lab["doors"].values()))
        yield dict(lab, known_hosts=str(known))


def ssh_argv(lab, door, *extra: str, program: str = "ssh", user=None):
    port_flag = "-P" if program in ("sftp", "scp") else "-p"
    return [program, "-o", f"UserKnownHostsFile={lab['known_hosts']}", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "PubkeyAuthentication=no", "-o", "IdentityAgent=none",
            "-o", "NumberOfPasswordPrompts=1", port_flag, str(door["port"]), *extra]


class Door:
    """An interactive login through the door, by the real ssh client in a pseudo-terminal."""

    def __init__(self, lab, asn: int, password=None):
        d = lab["doors"][asn]
        self.asn = asn
        self.child = pexpect.spawn(ssh_argv(lab, d)[0], ssh_argv(lab, d)[1:] + [f"{d['user']}@{d['address']}"],
                                   encoding="utf-8", timeout=30, dimensions=(40, 200))
        self.child.expect("password:")
        self.child.sendline(password or d["password"])
        self.child.expect(f"AS{asn}> ")
        self.welcome = self.child.before

    def cmd(self, line: str, prompt: str) -> str:
        self.child.sendline(line)
        self.child.expect(prompt)
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", self.child.before)      # bash's bracketed paste

    def door(self, line: str) -> str:
        return self.cmd(line, f"AS{self.asn}> ")

    def close(self) -> None:
        self.child.sendline("exit")
        self.child.expect(pexpect.EOF)

    def __enter__(self) -> "Door":
        return self

    def __exit__(self, *exc) -> None:
        self.child.close(force=True)          # a failed test leaves no session behind


def group_uid(lab, asn: int) -> int:
    import pwd
    return pwd.getpwnam(lab["doors"][asn]["user"]).pw_uid


def group_processes(uid: int):
    """The command lines of every live process of a group's uid."""
    from minet_sdn.classroom import doors
    out = []
    for pid in doors.uid_pids(uid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                out.append(fh.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    return out


def vtysh_json(lab, router: str, command: str):
    place = places.router_place(lab["topo"], router)
    out = subprocess.run(place.exec_prefix() + place.vtysh_argv(command), capture_output=True, text=True,
                         timeout=30).stdout
    return json.loads(out)


def established(lab, router: str, peer: str) -> bool:
    peers = vtysh_json(lab, router, "show bgp ipv4 unicast summary json").get("peers", {})
    return peers.get(peer, {}).get("state") == "Established"


def test_listing_gives_every_door_with_its_password_and_pinned_key(lab):
    assert sorted(lab["doors"]) == [3, 4]
    d = lab["doors"][3]
    assert d["address"] == "127.0.0.1" and d["user"].startswith("as3-") and len(d["password"]) == 16
    assert d["fingerprint"].startswith("SHA256:") and d["ssh"] == f"ssh -p {d['port']} {d['user']}@127.0.0.1"
    assert lab["doors"][4]["port"] == d["port"] + 1
    text = minet("class", "doors", lab["path"])
    assert text.returncode == 0 and d["password"] in text.stdout and d["fingerprint"] in text.stdout


def test_a_group_configures_and_saves_a_bgp_neighbour(lab):
    assert not established(lab, "1.A1", "100.64.0.6")          # AS3's router is empty until the group works
    with Door(lab, 3) as s:
        assert "routers: C1 C2" in s.welcome
        s.cmd("goto C1", "AS3-C1# ")
        s.cmd("configure terminal", r"\(config\)# ")
        s.cmd("router bgp 3", r"\(config-router\)# ")
        s.cmd("no bgp ebgp-requires-policy", r"\(config-router\)# ")
        s.cmd("neighbor 100.64.0.5 remote-as 1", r"\(config-router\)# ")
        s.cmd("end", "AS3-C1# ")
        out = s.cmd("write memory", "AS3-C1# ")
        assert "saved" in out
        s.cmd("exit", "AS3> ")
        s.close()
        wait_until(lambda: established(lab, "1.A1", "100.64.0.6"), 90, 0.5, what="AS1-AS3 session Established")
        conf = os.path.join(places.router_place(lab["topo"], "3.C1").frr_dir, "frr.conf")
        with open(conf) as fh:
            assert "neighbor 100.64.0.5 remote-as 1" in fh.read()
        st = os.stat(conf)
        import pwd
        assert st.st_uid == pwd.getpwnam("frr").pw_uid          # the daemons can read it at their next start


def test_wrong_and_other_groups_passwords_and_root_are_refused(lab):
    d3, d4 = lab["doors"][3], lab["doors"][4]
    for user, password in ((d3["user"], "x" * 16), (d3["user"], d4["password"]), ("root", d3["password"]),
                           (d4["user"], d4["password"])):         # AS4's user at AS3's door
        child = pexpect.spawn("ssh", ssh_argv(lab, d3)[1:] + [f"{user}@127.0.0.1"], encoding="utf-8", timeout=30)
        child.expect("password:")
        child.sendline(password)
        assert child.expect(["Permission denied", "AS3> ", "AS4> "]) == 0
        child.expect(pexpect.EOF)


def test_brute_force_is_cut_after_three_tries(lab):
    d = lab["doors"][3]
    argv = ssh_argv(lab, d)[1:]
    argv[argv.index("NumberOfPasswordPrompts=1")] = "NumberOfPasswordPrompts=10"
    child = pexpect.spawn("ssh", argv + [f"{d['user']}@127.0.0.1"], encoding="utf-8", timeout=30)
    tries = 0
    while child.expect(["password:", pexpect.EOF]) == 0:
        tries += 1
        child.sendline("wrong-password-x")
    assert tries == 3
    assert "Too many authentication failures" in child.before or "Permission denied" in child.before


def batch(lab, asn: int, *extra: str, stdin: str = "", program: str = "ssh", user=True, target=None,
          timeout: float = 60) -> subprocess.CompletedProcess:
    """A non-interactive client run, the password given by SSH_ASKPASS (no terminal)."""
    d = lab["doors"][asn]
    askpass = lab["tmp"] / f"askpass{asn}"
    askpass.write_text(f"#!/bin/sh\necho '{d['password']}'\n")
    askpass.chmod(0o700)
    env = dict(os.environ, SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    argv = ssh_argv(lab, d, *extra, program=program)
    if target is not None:
        argv.append(target)
    elif user:
        argv.append(f"{d['user']}@127.0.0.1")
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=timeout)


def test_no_forwarding_of_any_kind(lab):
    mgmt = "10.254.0.1:8080"
    r = batch(lab, 3, "-W", mgmt)                                         # stdio forwarding to the controller
    assert r.returncode != 0 and "administratively prohibited" in r.stderr
    r = batch(lab, 3, "-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22", "-N")
    assert r.returncode != 0 and "forwarding failed" in r.stderr
    port = free_port_base() + 1
    proc = subprocess.Popen(ssh_argv(lab, lab["doors"][3], "-N", "-L", f"127.0.0.1:{port}:{mgmt}") +
                            [f"{lab['doors'][3]['user']}@127.0.0.1"],
                            env=dict(os.environ, SSH_ASKPASS=str(lab["tmp"] / "askpass3"), SSH_ASKPASS_REQUIRE="force",
                                     DISPLAY=":0"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def answered():
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) != 0:
                    return None
                s.sendall(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                s.settimeout(10)
                try:
                    return s.recv(100) or b"closed"
                except OSError:
                    return b"closed"
        assert wait_until(answered, 30, 0.2) == b"closed"              # the local end opens; nothing passes
    finally:
        proc.terminate()
        err = proc.communicate(timeout=10)[1]
    assert "administratively prohibited" in err


def test_no_sftp_no_scp_no_remote_command(lab, tmp_path):
    r = batch(lab, 3, "-b", "-", program="sftp", stdin="get /etc/hostname\n", timeout=60,
              user=False, target=f"{lab['doors'][3]['user']}@127.0.0.1")
    assert r.returncode != 0
    for flags in ((), ("-O",)):                                           # sftp-based and legacy scp
        copied = tmp_path / f"copied{len(flags)}"
        r = batch(lab, 3, *flags, f"{lab['doors'][3]['user']}@127.0.0.1:/etc/hostname", program="scp",
                  user=False, target=str(copied))
        assert r.returncode != 0 and not copied.exists()
    marker = f"/tmp/pwned-{secrets.token_hex(4)}"
    r = batch(lab, 3, "-T", f"{lab['doors'][3]['user']}@127.0.0.1", f"touch {marker}", user=False)
    assert not os.path.exists(marker)
    assert "Welcome, group 3" in r.stdout                 # the command was ignored: the door answered


def test_goto_refuses_other_groups_and_shell_syntax(lab):
    r = batch(lab, 3, "-T", stdin="goto D1\ngoto 4.D1\ngoto C1; id\ngoto $(id)\ngoto ../C1\nid\nexit\n")
    assert r.stdout.count("door: no device") == 5 and "door: unknown command 'id'" in r.stdout
    assert "uid=" not in r.stdout


def test_a_router_session_has_vtysh_and_nothing_to_escape_to(lab):
    with Door(lab, 3) as s:
        s.cmd("goto C2", "AS3-C2# ")
        assert "Unknown command" in s.cmd("start-shell", "AS3-C2# ")
        assert "Unknown command" in s.cmd("start-shell bash", "AS3-C2# ")
        s.cmd("exit", "AS3> ")
        s.close()


def test_a_host_session_sees_its_host_only(lab):
    with Door(lab, 3) as s:
        p = r"AS3 C1 host\$ "
        s.cmd("goto C1 host", p)
        assert f"uid={group_uid(lab, 3)}." in s.cmd("echo uid=$(id -u).", p)
        caps = s.cmd("grep -E '^Cap(Eff|Bnd)' /proc/self/status", p)
        assert "CapEff:\t0000000000003000" in caps and "CapBnd:\t0000000000003000" in caps
        assert "No such file" in s.cmd("ls /run/minet-sdn /run/netns /var/lib/minet-sdn /root /home 2>&1", p)
        assert s.cmd("ls /proc | grep -c '^[0-9]'", p).split()[-1] in ("3", "4", "5")   # PID 1, bash, ls/grep
        assert "Permission denied" in s.cmd("cat /etc/shadow 2>&1", p)
        out = s.cmd("nsenter --net=/proc/1/ns/net true 2>&1", p)
        assert "Operation not permitted" in out or "Permission denied" in out
        assert "1 packets transmitted, 1 received" in s.cmd("ping -c 1 -W 2 10.0.3.129 2>&1", p)   # its router
        out = s.cmd("ping -c 1 -W 1 10.254.0.1 2>&1", p)                     # the lab's management network
        assert "100% packet loss" in out or "unreachable" in out.lower()
        assert "eth0" in s.cmd("ip -br link", p)                             # ip works (NET_ADMIN in its netns)
        s.cmd("exit", "AS3> ")
        s.close()


def test_a_fork_bomb_and_a_memory_hog_leave_the_others_and_the_lab_running(lab):
    with Door(lab, 3) as bomb:
        p = r"AS3 C1 host\$ "
        bomb.cmd("goto C1 host", p)
        # a fork bomb for 8 s (timeout kills its process group), then a 300 MB memory hog (tail keeps
        # a line without end in memory) against a 96M bound
        bomb.child.sendline("timeout -s KILL 8 bash -c 'f() { f | f & }; f; sleep 60'; "
                            "head -c 300M /dev/zero | tail | wc -c; echo hog-$((6*7))")
        with Door(lab, 4) as other:                                        # another group logs in meanwhile
            out = other.cmd("goto D1 host", r"AS4 D1 host\$ ")
            assert "1 received" in other.cmd("ping -c 1 -W 2 10.0.4.129 2>&1 | grep received", r"AS4 D1 host\$ ")
            other.cmd("exit", "AS4> ")
            other.close()
        bomb.child.expect("hog-42", timeout=120)
        assert "Resource temporarily unavailable" in bomb.child.before      # the bomb hit the group's bound
        assert "Killed" in bomb.child.before                                # and the hog its memory bound
        assert established(lab, "1.A1", "100.64.0.2") and established(lab, "2.B1", "100.64.0.1")
        bomb.child.sendcontrol("c")
        bomb.child.sendline("exit")
        bomb.child.expect("AS3> ", timeout=60)
        bomb.close()
        uid = group_uid(lab, 3)
        wait_until(lambda: not group_processes(uid), 30, 0.2)
        assert group_processes(uid) == []


def frr_dir(lab, router: str) -> str:
    return places.router_place(lab["topo"], router).frr_dir


def test_vtysh_cannot_make_a_daemon_write_another_groups_files(lab):
    """The daemons run as frr, which owns every router's directory: `log file PATH` typed as root
    makes bgpd write PATH; from a door the guard's allow-list refuses it, `dump bgp`, a bare name
    (opened in the daemon's directory), and the ssh form of `rpki cache` (key files by name)."""
    probe = os.path.join(frr_dir(lab, "4.D1"), "probe.log")           # another group's router's directory
    place = places.router_place(lab["topo"], "3.C2")
    root = subprocess.run(place.exec_prefix() + place.vtysh_argv("configure terminal", f"log file {probe}"),
                          capture_output=True, text=True, timeout=30)
    subprocess.run(place.exec_prefix() + place.vtysh_argv("configure terminal", "no log file"), timeout=30)
    assert root.returncode == 0 and os.path.exists(probe), root.stdout  # the escape is real without the guard
    os.unlink(probe)
    target = os.path.join(frr_dir(lab, "4.D1"), "pwned")              # another group's router
    with Door(lab, 3) as s:
        s.cmd("goto C2", "AS3-C2# ")
        s.cmd("configure terminal", r"\(config\)# ")
        for line in (f"log file {target}", f"log filtered-file {target}", "log file pwned",
                     f"dump bgp all {target}"):
            assert "a door may send" in s.cmd(line, r"\(config\)# "), line
        s.cmd("lo fi pwned", r"\(config\)# ")      # sent on as `log-adjacency-changes fi ...`: the daemon refuses
        for line in ("banner motd file /etc/shadow", "log extended x"):      # vtysh may keep these to itself
            s.cmd(line, r"\(config[a-z-]*\)# ")
        s.cmd("end", "AS3-C2# ")
        s.cmd("configure terminal", r"\(config\)# ")
        s.cmd("rpki", r"\(config[a-z-]*\)# ")         # bgpd may lack the rpki module: vtysh still sends it
        s.cmd(f"rpki cache 10.0.0.1 22 student {target} preference 1", r"\(config[a-z-]*\)# ")
        s.cmd("rpki cache 10.0.0.1 22 student pwned preference 1", r"\(config[a-z-]*\)# ")
        s.cmd("end", "AS3-C2# ")
        conf = s.cmd("show running-config", "AS3-C2# ")
        assert not any(w in conf for w in ("log file", "log filtered-file", "dump bgp", "banner motd file",
                                           "log extended"))
        assert "Current configuration" in conf                             # the daemons still answer
        s.cmd("exit", "AS3> ")
        s.close()
    assert not os.path.exists(target)
    for router in ("3.C2", "4.D1"):
        assert not os.path.exists(os.path.join(frr_dir(lab, router), "pwned"))


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line.split()[1] for line in fh if line.startswith("Threads:")))


def test_the_relay_of_a_groups_vtysh_runs_in_that_groups_cgroup_not_in_the_broker(lab):
    """The vty guard relaying group 3's vtysh is a root process in group 3's cgroups (its session's
    sandbox's relay child): its threads appear there; the broker gains only the thread that waits
    for the session."""
    from minet_sdn.classroom import cgroups
    mode = cgroups.detect()
    if mode == "rlimits":
        pytest.skip("no cgroups on this machine")
    procs = cgroups.plan(mode, lab["topo"].tag, 3, Limits()).procs[0]
    rdir = os.path.join(os.environ.get("MINET_CLASS_RUN", "/run/minet-class"), lab["topo"].name)
    with open(os.path.join(rdir, "state.json")) as fh:
        broker = json.load(fh)["broker"]["pid"]
    with Door(lab, 3) as s:
        idle = threads(broker)                      # with the door's own (its `hello` stays open)
        s.cmd("goto C2", "AS3-C2# ")
        assert "Current configuration" in s.cmd("show running-config", "AS3-C2# ")
        with open(procs) as fh:
            members = [int(p) for p in fh.read().split()]
        relays = []
        for pid in members:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmd = fh.read()
                if b"minet_sdn.classroom.sandbox" in cmd and os.stat(f"/proc/{pid}").st_uid == 0 and threads(pid) > 1:
                    relays.append(pid)
            except OSError:
                pass
        assert relays, members                      # the guard's accept and relay threads, in group 3
        assert threads(broker) <= idle + 1          # the broker: the goto's waiting thread only
        s.cmd("exit", "AS3> ")
        s.close()


def test_a_group_sets_its_switch_vlans_and_its_host_reaches_its_router(lab):
    """goto SWITCH (the students' ovs-vsctl on that switch), goto HOST, as the course does it."""
    with Door(lab, 3) as s:
        assert "switches: S1" in s.welcome and "hosts: H3" in s.welcome and "T1" not in s.welcome
        s.cmd("goto C1", "AS3-C1# ")                                          # the gateway's VLAN 10 subinterface
        s.cmd("configure terminal", r"\(config\)# ")
        s.cmd("interface C1-L2.10", r"\(config-if\)# ")
        s.cmd("ip address 172.16.48.1/24", r"\(config-if\)# ")
        s.cmd("end", "AS3-C1# ")
        assert "saved" in s.cmd("write memory", "AS3-C1# ")
        s.cmd("exit", "AS3> ")
        h = r"AS3 H3\$ "
        s.cmd("goto H3", h)
        assert f"uid={group_uid(lab, 3)}." in s.cmd("echo uid=$(id -u).", h)
        s.cmd("ip addr add 172.16.48.2/24 dev 3-S1", h)
        assert "100% packet loss" in s.cmd("ping -c 1 -W 1 172.16.48.1 2>&1", h)   # untagged: in no VLAN yet
        s.cmd("exit", "AS3> ")
        sw = r"AS3-S1\$ "
        out = s.cmd("goto S1", sw)
        show = s.cmd("ovs-vsctl show", sw)
        assert "Bridge br0" in show and "Port 3-H3" in show and "Port C1router" in show
        assert "4-H4" not in show and "s1h1" not in show                  # no other group's port, no real name
        assert "ovs-vsctl:" not in s.cmd("ovs-vsctl set port 3-H3 tag=10", sw)
        assert "tag: 10" in s.cmd("ovs-vsctl show", sw)
        s.cmd("exit", "AS3> ")
        s.cmd("goto H3", h)
        out = s.cmd("for i in $(seq 30); do ping -c 1 -W 1 172.16.48.1 >/dev/null && break; done; echo reach=$?", h)
        assert "reach=0" in out                                              # in VLAN 10, across the trunk
        s.cmd("exit", "AS3> ")
        s.close()


def test_a_switch_session_refuses_everything_but_its_own_ovs_vsctl(lab):
    with Door(lab, 3) as s:
        assert "no device 'T1'" in s.door("goto T1")                         # another group's switch
        sw = r"AS3-S1\$ "
        s.cmd("goto S1", sw)
        for line in ("ovs-vsctl --db=unix:/run/openvswitch/db.sock show",   # the server's own OvS
                     "ovs-vsctl show --db=unix:/var/run/openvswitch/db.sock", "ovs-vsctl -- --id=@p create port name=x",
                     "ovs-vsctl add-br evil", "ovs-vsctl del-br br0", "ovs-vsctl del-port br0 3-H3",
                     "ovs-vsctl set bridge br0 fail_mode=secure", "ovs-vsctl set port 4-H4 tag=10",
                     "ovs-vsctl set port 3-H3 other_config:x=1", "ovs-vsctl set-controller br0 tcp:10.254.0.1:6653",
                     "ovs-vsctl set port 3-H3 'tag=1;id'", "ovs-ofctl dump-flows br0", "sh", "bash -i", "id"):
            out = s.cmd(line, sw)
            assert "ovs-vsctl: " in out and "uid=" not in out, (line, out)
        s.cmd("exit", "AS3> ")
        s.close()
    # the broker itself, asked directly by group 3's uid: no other group's switch, no sandbox on a switch
    import pwd
    pw = pwd.getpwnam(lab["doors"][3]["user"])
    sock = os.path.join(os.environ.get("MINET_CLASS_RUN", "/run/minet-class"), lab["topo"].name, "broker.sock")
    code = ("import json,socket,sys\n"
            "for req in ({'op':'vsctl','device':'T1','argv':['show']},{'op':'vsctl','device':'C1','argv':['show']},"
            "{'op':'vsctl','device':'S1','argv':['--db=unix:/run/openvswitch/db.sock','show']},"
            "{'op':'goto','device':'S1','term':'xterm'}):\n"
            " s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((json.dumps(req)+'\\n').encode())\n"
            " print(s.recv(4096).decode().strip())\n")
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    r = subprocess.run([python, "-I", "-c", code, sock], capture_output=True, text=True, timeout=30,
                       user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert answers[0] == {"error": "no such switch in your AS"} and answers[1] == {"error": "no such switch in your AS"}
    assert answers[2]["code"] == 2 and "not allowed" in answers[2]["err"]
    assert "error" in answers[3]
    t1 = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "exec", lab["path"], "4.T1", "--",
                         "ovs-vsctl", "show"], capture_output=True, text=True, timeout=60)
    assert t1.returncode == 0 and "Port 4-H4" in t1.stdout and "tag:" not in t1.stdout   # AS4's switch untouched


def test_configs_save_restore_and_kept_across_lab_down_and_up(lab, tmp_path):
    """Last: it takes the lab down and up again."""
    saved = tmp_path / "saved"
    r = minet("configs", "save", lab["path"], str(saved))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in saved.iterdir()) == ["as1", "as2", "as3", "as4"]
    assert "neighbor 100.64.0.5 remote-as 1" in (saved / "as3" / "C1.conf").read_text()
    assert "router bgp 1" in (saved / "as1" / "A1.conf").read_text()
    assert "ovs-vsctl set port 3-H3 tag=10" in (saved / "as3" / "S1.ovs").read_text()
    assert "tag=" not in (saved / "as4" / "T1.ovs").read_text()
    r = minet("configs", "restore", lab["path"], str(saved), "--group", "3")
    assert r.returncode == 0 and "restored 2 router configurations and 1 switch configurations" in r.stdout, \
        r.stdout + r.stderr
    (saved / "as4" / "T1.ovs").write_text("ovs-vsctl set port 4-H4 tag=20\novs-vsctl add-br evil\n")
    r = minet("configs", "restore", lab["path"], str(saved), "--group", "4")
    assert r.returncode == 1 and "T1.ovs: add-br evil" in r.stdout and "not allowed" in r.stdout
    (saved / "as4" / "T1.ovs").write_text("# nothing set\n")
    assert minet("configs", "restore", lab["path"], str(saved), "--group", "4").returncode == 0
    r = minet("configs", "restore", lab["path"], str(saved), "--group", "99")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--group '99' is not an AS" in r.stderr
    (saved / "as3" / "NOPE.conf").write_text("hostname x\n")
    r = minet("configs", "restore", lab["path"], str(saved))
    assert r.returncode == 2 and "NOPE.conf: not a configuration of a router of AS3" in r.stderr

    history = tmp_path / "history"                                   # snapshots into a real git repository
    r = minet("configs", "snapshot", lab["path"], str(history))
    assert r.returncode == 0 and "commit " in r.stdout, r.stdout + r.stderr
    r = minet("configs", "snapshot", lab["path"], str(history))
    assert r.returncode == 0 and "nothing changed" in r.stdout, r.stdout + r.stderr
    log = subprocess.run(["git", "-C", str(history), "log", "--format=%b"], capture_output=True, text=True).stdout
    assert "AS3: C1.conf, C2.conf, S1.ovs" in log and "AS4: D1.conf, T1.ovs" in log

    password = lab["doors"][3]["password"]
    assert Lab(lab["path"], progress=lambda m: None).down() == []
    Lab(lab["path"], progress=lambda m: print(m, flush=True)).up()
    # what group 3 saved is back; the session to AS1 comes up again without anyone typing it
    wait_until(lambda: established(lab, "1.A1", "100.64.0.6"), 90, 0.5, what="AS1-AS3 session after lab down/up")
    r = minet("class", "doors", lab["path"], "--json")
    again = {d["group"]: d for d in json.loads(r.stdout)["doors"]}
    assert again[3]["password"] == password and again[3]["known_hosts"] == lab["doors"][3]["known_hosts"]
    with Door(lab, 3) as s:                    # same password, same pinned host key
        conf = s.cmd("goto C1", "AS3-C1# ") + s.cmd("show running-config", "AS3-C1# ")
        assert "neighbor 100.64.0.5 remote-as 1" in conf and "ip address 172.16.48.1/24" in conf
        s.cmd("exit", "AS3> ")
        assert "tag: 10" in s.cmd("goto S1", r"AS3-S1\$ ") + s.cmd("ovs-vsctl show", r"AS3-S1\$ ")   # the switch too
        s.cmd("exit", "AS3> ")
        s.close()
