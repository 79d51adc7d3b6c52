"""The lab's emulated servers, without provisioning: namespaces, per-server OvS, underlay, sshd.

Needs root, Open vSwitch, sshd and ethtool. Traffic stays inside the namespaces the tests make.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import textwrap

import pytest

from minet_sdn import host
from minet_sdn.lab import LabError, networks, paths, quiet, servers, sshd, system
from minet_sdn.lab.lab import Lab
from minet_sdn.lab.state import LabState, ProcessRecord, lab_lock
from minet_sdn.topology import load_topology, names

pytestmark = pytest.mark.root

if os.geteuid() != 0:
    pytest.skip("needs root", allow_module_level=True)
for _tool in ("ovs-vsctl", "ovs-vswitchd", "ovsdb-server", "ip", "nsenter", "ethtool", "ssh-keygen"):
    if shutil.which(_tool) is None:
        pytest.skip(f"{_tool} is not installed", allow_module_level=True)
if not os.path.exists(sshd.SSHD):
    pytest.skip("sshd is not installed", allow_module_level=True)

import paramiko  # noqa: E402  (a declared dependency: missing means a broken install, which must fail)


def _write_topology(directory, name: str, ip1: str = "192.0.2.1", ip2: str = "192.0.2.2") -> str:
    path = os.path.join(str(directory), f"{name}.yaml")
    with open(path, "w") as fh:
        fh.write(textwrap.dedent(f"""\
            name: {name}
            fabric: {{underlay_mtu: 9000}}
            servers:
              VM1: {{underlay_ip: {ip1}}}
              VM2: {{underlay_ip: {ip2}}}
            ases:
              1: {{server: VM1, routers: [A]}}
              2: {{server: VM2, routers: [B]}}
            links:
              - {{a: 1.A, b: 2.B, rel: peer}}
            """))
    return path


def _sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, **kw)


def _leftovers(topo):
    """Everything of this lab that still exists: namespaces, state dir."""
    out = [ns for ns in servers.planned_namespaces(topo) if system.netns_exists(ns)]
    if os.path.exists(paths.state_dir(topo)):
        out.append(paths.state_dir(topo))
    return out


@pytest.fixture
def topo_path(tmp_path):
    """A fresh 2-server topology with a unique name; whatever a test builds of it is removed."""
    name = f"lt{secrets.token_hex(2)}"
    path = _write_topology(tmp_path, name)
    try:
        yield path
    finally:
        Lab(path, progress=quiet).remove()


@pytest.fixture
def lab(topo_path):
    info = servers.build_servers(topo_path)
    return load_topology(topo_path), info


def _ssh(topo, server: str, known_hosts: str = None):
    address = networks.mgmt_addresses(topo)[server]
    sock = host.netns_connect(names.mgmt_ns(topo), address, sshd.SSH_PORT)
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts or paths.known_hosts_path(topo))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, port=sshd.SSH_PORT, username="root", key_filename=paths.client_key_path(topo),
                       sock=sock, allow_agent=False, look_for_keys=False, timeout=10)
    except BaseException:
        sock.close()
        raise
    return client


def _run(client, command: str) -> str:
    _, out, err = client.exec_command(command, timeout=20)
    text = out.read().decode()
    assert out.channel.recv_exit_status() == 0, err.read().decode()
    return text


# ---- the running lab ------------------------------------------------------------------------

def test_each_server_has_its_own_ovs(lab):
    topo, info = lab
    uuids = set()
    for server in topo.servers:
        d = paths.server_dir(topo, server)
        out = _sh("ip", "netns", "exec", names.server_ns(topo, server), "env", f"OVS_RUNDIR={d}",
                  "ovs-vsctl", "--timeout=5", "show").stdout
        assert f"Bridge {names.phy_bridge(topo)}" in out
        assert "datapath_type: netdev" in out
        assert f"Port {names.underlay_ifname(topo)}" in out
        uuids.add(out.split()[0])
        ext = _sh("ovs-vsctl", f"--db=unix:{d}/db.sock", "get", "bridge", names.phy_bridge(topo),
                  "external_ids:minet-lab").stdout.strip().strip('"')
        assert ext == topo.name
    assert len(uuids) == len(topo.servers)          # separate databases, not one shared OvS
    assert info.state.phase == "servers"


def test_underlay_addresses_reach_each_other_with_jumbo_frames(lab):
    topo, _ = lab
    ns1 = names.server_ns(topo, "VM1")
    addr = _sh("ip", "-n", ns1, "-br", "addr", "show", "dev", names.phy_bridge(topo)).stdout
    assert topo.servers["VM1"].underlay_ip in addr
    _sh("ip", "netns", "exec", ns1, "ping", "-c", "2", "-i", "0.2", "-W", "2", topo.servers["VM2"].underlay_ip)
    # 9000-byte frames end to end: a full 1500-byte inner frame fits after GRE
    _sh("ip", "netns", "exec", ns1, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(9000 - 28),
        topo.servers["VM2"].underlay_ip)
    mtu = _sh("ip", "-n", names.server_ns(topo, "VM2"), "-o", "link", "show", names.underlay_ifname(topo)).stdout
    assert "mtu 9000" in mtu


def _offloads_on(ns: str, ifname: str) -> list:
    """The TX checksum/segmentation features of `ifname` that are on, or requested on."""
    out = _sh("ip", "netns", "exec", ns, "ethtool", "-k", ifname).stdout
    wanted = ("tx-checksum-", "tx-tcp-segmentation", "tx-tcp6-segmentation", "tx-tcp-ecn-segmentation",
              "tx-generic-segmentation")
    return [line.strip() for line in out.splitlines()
            if line.strip().startswith(wanted) and "[fixed]" not in line
            and (": on" in line or "[requested on]" in line)]


def test_underlay_ports_have_offloads_off_and_the_underlay_mtu_and_mgmt_ports_their_bridge(lab):
    """TCP through the userspace datapath stalls with TX offloads on (PLATFORM-NOTES): off on both
    ends of every server's underlay veth and on its OvS internal port, requested off too."""
    topo, _ = lab
    uns, mns = names.underlay_ns(topo), names.mgmt_ns(topo)
    for server in topo.servers:
        ns = names.server_ns(topo, server)
        ul, peer = names.underlay_ifname(topo), names.underlay_peer_ifname(topo, server)
        for where, ifname in ((ns, ul), (uns, peer), (ns, names.phy_bridge(topo))):
            assert _offloads_on(where, ifname) == [], (where, ifname)
            assert "mtu 9000" in _sh("ip", "-n", where, "-o", "link", "show", ifname).stdout
        assert f"master {names.underlay_bridge(topo)} " in _sh("ip", "-n", uns, "-o", "link", "show", peer).stdout
        mg_peer = _sh("ip", "-n", mns, "-o", "link", "show", names.mgmt_peer_ifname(topo, server)).stdout
        assert f"master {names.mgmt_bridge(topo)} " in mg_peer and "mtu 1500" in mg_peer
        for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):     # a server does not route
            assert _sh("ip", "netns", "exec", ns, "sysctl", "-n", key).stdout.strip() == "0"
    assert "mtu 9000" in _sh("ip", "-n", uns, "-o", "link", "show", names.underlay_bridge(topo)).stdout


def test_mgmt_network_and_effective_topology(lab):
    topo, info = lab
    eff = load_topology(info.effective_topology)
    mgmt_ip = info.addresses["mgmt"]
    assert (eff.controller.ofp_host, eff.controller.rest_host) == (mgmt_ip, mgmt_ip)
    for name, server in eff.servers.items():
        assert server.ssh == f"root@{info.addresses[name]}:22"
        assert server.underlay_ip == topo.servers[name].underlay_ip
        _sh("ip", "netns", "exec", names.mgmt_ns(topo), "ping", "-c", "1", "-W", "2", info.addresses[name])
    assert eff.name == topo.name and len(eff.links) == len(topo.links)


def test_sshd_accepts_the_lab_key_and_sets_the_server_environment(lab):
    topo, _ = lab
    for server in topo.servers:
        client = _ssh(topo, server)
        try:
            env = _run(client, "echo $OVS_RUNDIR; echo $MINET_STATE_DIR").split()
            assert env == [paths.server_dir(topo, server), paths.provision_state_dir(topo, server)]
            out = _run(client, "ovs-vsctl --timeout=5 br-exists %s && echo yes; "
                               "ip -br addr show dev %s" % (names.phy_bridge(topo), names.phy_bridge(topo)))
            assert out.startswith("yes")
            assert topo.servers[server].underlay_ip in out     # the command runs in that server's netns
        finally:
            client.close()


def test_ssh_refuses_a_wrong_host_key(lab, tmp_path):
    topo, _ = lab
    addresses = networks.mgmt_addresses(topo)
    wrong = tmp_path / "known_hosts"
    line = sshd.host_key_line(topo, "VM2", addresses["VM2"]).split(" ", 1)[1]
    wrong.write_text(f"{addresses['VM1']} {line}\n")      # VM2's key claimed for VM1
    with pytest.raises(paramiko.BadHostKeyException):
        _ssh(topo, "VM1", known_hosts=str(wrong))


def test_sshd_listens_on_the_mgmt_address_only(lab):
    topo, _ = lab
    ns = names.server_ns(topo, "VM1")
    out = _sh("ip", "netns", "exec", ns, "ss", "-Htln").stdout
    listeners = [line.split()[3] for line in out.splitlines() if line.split()[3].endswith(":22")]
    assert listeners == [f"{networks.mgmt_addresses(topo)['VM1']}:22"]


# ---- teardown -------------------------------------------------------------------------------

def test_down_removes_everything_and_spares_foreign_things(topo_path, tmp_path):
    topo = load_topology(topo_path)
    foreign_ns = f"{topo.tag}-VM1x"
    foreign_dir = tmp_path / "foreign-ovs"
    foreign_dir.mkdir()
    d = str(foreign_dir)
    foreign_pid = None
    assert not system.netns_exists(foreign_ns)
    _sh("ip", "netns", "add", foreign_ns)
    try:
        # a foreign namespace with a similar name, holding a Linux bridge named like the lab's
        _sh("ip", "-n", foreign_ns, "link", "add", names.mgmt_bridge(topo), "type", "bridge")
        # a foreign OvS (database only) with a bridge named like the lab's phy bridge
        _sh("ovsdb-tool", "create", f"{d}/conf.db", host.OVS_SCHEMA)
        _sh("ovsdb-server", f"--remote=punix:{d}/db.sock", f"--pidfile={d}/ovsdb.pid", "--detach",
            f"--log-file={d}/ovsdb.log", "--unixctl", f"{d}/ovsdb.ctl", f"{d}/conf.db")
        foreign_pid = system.read_pidfile(f"{d}/ovsdb.pid")
        _sh("ovs-vsctl", f"--db=unix:{d}/db.sock", "--no-wait", "init")
        _sh("ovs-vsctl", f"--db=unix:{d}/db.sock", "--no-wait", "add-br", names.phy_bridge(topo))

        info = servers.build_servers(topo_path)
        records = list(info.state.processes)
        assert len(records) == 3 * len(topo.servers)              # ovsdb, vswitchd, sshd each
        assert all(r.alive() for r in records)
        with lab_lock(topo):
            assert servers.teardown(topo) == []
        assert _leftovers(topo) == []
        assert not any(r.alive() for r in records)
        assert system.netns_exists(foreign_ns)
        assert names.mgmt_bridge(topo) in _sh("ip", "-n", foreign_ns, "-br", "link").stdout
        _sh("ovs-vsctl", f"--db=unix:{d}/db.sock", "br-exists", names.phy_bridge(topo))
    finally:
        if foreign_pid is not None:
            ProcessRecord.of("foreign-ovsdb", foreign_pid).stop()
        _sh("ip", "netns", "delete", foreign_ns, check=False)


def test_failure_half_way_leaves_nothing(topo_path, monkeypatch):
    """sshd of the second server refuses its configuration: everything made so far goes away."""
    topo = load_topology(topo_path)
    started = []
    real_add = LabState.add_process

    def spy(self, record):
        started.append(record)
        real_add(self, record)
    monkeypatch.setattr(LabState, "add_process", spy)
    real_config = sshd.sshd_config_text

    def broken_config(topo_, server, address):
        text = real_config(topo_, server, address)
        return text + "NoSuchSshdOption yes\n" if server == "VM2" else text
    monkeypatch.setattr(sshd, "sshd_config_text", broken_config)

    with pytest.raises(LabError, match="sshd"):
        servers.build_servers(topo_path)
    assert len(started) >= 4                 # VM1's three daemons and VM2's OvS had started
    assert not any(r.alive() for r in started)
    assert _leftovers(topo) == []


def test_clashes_are_refused_before_anything_is_made(topo_path, tmp_path):
    topo = load_topology(topo_path)
    # an underlay address inside the management subnet
    (tmp_path / "bad").mkdir()
    bad = _write_topology(tmp_path / "bad", topo.name, ip1="10.254.0.3")
    with pytest.raises(LabError, match="management subnet"):
        servers.build_servers(bad)
    assert _leftovers(topo) == []
    # a foreign namespace with the very name of a lab server
    taken = names.server_ns(topo, "VM2")
    _sh("ip", "netns", "add", taken)
    try:
        with pytest.raises(LabError, match=taken):
            servers.build_servers(topo_path)
        assert system.netns_exists(taken)
        assert [x for x in _leftovers(topo) if x != taken] == []
    finally:
        _sh("ip", "netns", "delete", taken, check=False)


def test_a_custom_mgmt_subnet(topo_path):
    topo = load_topology(topo_path)
    info = servers.build_servers(topo_path, mgmt_subnet="172.31.250.0/28")
    assert info.addresses == {"mgmt": "172.31.250.1", "VM1": "172.31.250.2", "VM2": "172.31.250.3"}
    client = _ssh_at(topo, "VM2", "172.31.250.3")
    try:
        assert _run(client, "echo ok").strip() == "ok"
    finally:
        client.close()


def _ssh_at(topo, server, address):
    sock = host.netns_connect(names.mgmt_ns(topo), address, sshd.SSH_PORT)
    client = paramiko.SSHClient()
    client.load_host_keys(paths.known_hosts_path(topo))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(address, username="root", key_filename=paths.client_key_path(topo), sock=sock,
                   allow_agent=False, look_for_keys=False, timeout=10)
    return client


# ---- the file a lab was built from (issue 21: same name, edited file) -----------------------

def test_another_file_with_the_same_name_does_not_act_on_the_lab(topo_path, tmp_path):
    Lab(topo_path, progress=quiet).up(provision=False)
    topo = load_topology(topo_path)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = _write_topology(other_dir, topo.name, ip1="192.0.2.11")     # same name:, other content
    for act in (lambda: Lab(other, progress=quiet).down(), lambda: Lab(other, progress=quiet).status(),
                lambda: Lab(other, progress=quiet).up(provision=False)):
        with pytest.raises(LabError, match="is not the file the lab .* was built from"):
            act()
    assert LabState.load(topo).phase == "up"                     # the lab is untouched
    assert all(system.netns_exists(ns) for ns in servers.planned_namespaces(topo))


def test_an_edited_file_is_refused_by_up_naming_the_change_and_status_shows_what_runs(topo_path):
    Lab(topo_path, progress=quiet).up(provision=False)
    with open(topo_path, "a") as fh:
        fh.write("  - {a: 1.A, b: 2.B, rel: customer}\n")             # one more link
    with pytest.raises(LabError, match=r"runs an older version .*links added: 1\.A-2\.B"):
        Lab(topo_path, progress=quiet).up(provision=False)
    st = Lab(topo_path, progress=quiet).status(json=True)
    assert [l["id"] for l in st["links"]] == [1]                  # the links that run, not the file's two
    assert st["notes"] and "changed since" in st["notes"][0]
    assert Lab(topo_path, progress=quiet).down() == []           # its own file, edited: down still works


def test_the_lab_underlay_defaults_to_jumbo_frames(tmp_path):
    name = f"lt{secrets.token_hex(2)}"
    path = str(tmp_path / f"{name}.yaml")
    with open(_write_topology(tmp_path, name)) as fh:
        text = fh.read().replace("fabric: {underlay_mtu: 9000}\n", "")
    with open(path, "w") as fh:
        fh.write(text)
    try:
        servers.build_servers(path)
        topo = load_topology(path)
        eff = load_topology(paths.effective_topology_path(topo))
        assert eff.fabric.underlay_mtu == 9000 and eff.fabric.link_mtu == 1500
        out = _sh("ip", "-n", names.server_ns(topo, "VM1"), "link", "show", names.underlay_ifname(topo)).stdout
        assert "mtu 9000" in out
    finally:
        Lab(path, progress=quiet).remove()


def test_up_restarts_a_killed_ovs_vswitchd_and_its_bridges_come_back(topo_path):
    import signal as signals
    Lab(topo_path, progress=quiet).up(provision=False)
    topo = load_topology(topo_path)
    rec = LabState.load(topo).process("VM1/ovs-vswitchd")
    os.kill(rec.pid, signals.SIGKILL)
    for _ in range(100):
        if not rec.alive():
            break
        import time
        time.sleep(0.05)
    assert any("ovs-vswitchd" in p for p in Lab(topo_path, progress=quiet).health())   # reported
    Lab(topo_path, progress=quiet).up(provision=False)                                    # repaired in place
    assert Lab(topo_path, progress=quiet).health() == []
    new = LabState.load(topo).process("VM1/ovs-vswitchd")
    assert new.pid != rec.pid and new.alive()
    d = paths.server_dir(topo, "VM1")
    out = _sh(*names.exec_prefix("netns", names.server_ns(topo, "VM1")), "env", *(f"{k}={v}" for k, v in host.ovs_env(d).items()),
              "ovs-appctl", "-t", f"{d}/ovs-vswitchd.ctl", "dpif/show").stdout
    assert names.phy_bridge(topo) in out                   # the datapath has its bridge again
