"""Emulated servers for provisioning tests (root only).

`EmulatedServer` is one "server": a network namespace `mnt<random>-<NAME>` with its own
ovsdb-server/ovs-vswitchd (OVS_RUNDIR and friends in a temp dir, as PLATFORM-NOTES describe), and
an underlay veth whose address sits on the internal port of an OvS netdev bridge (`ul-br`), the
way the embedded lab prepares a server. `run()` runs a command inside it with the server's
environment (OVS_RUNDIR, MINET_STATE_DIR), e.g. the real `minet-provision` CLI.

Everything is removed in `close()`, which the fixtures call in `finally`, even when a test fails:
processes started in the server namespace and in every namespace whose name starts with the
fixture's unique prefix, those namespaces, and the temp dir.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Dict, List, Optional

from minet_sdn import host
from minet_sdn.topology import names

from tests.polling import wait_until

SCHEMA = host.OVS_SCHEMA
SSHD = "/usr/sbin/sshd"
SSH_PORT = 2222
NETNS_DIR = "/var/run/netns"
REQUIRED_TOOLS = ("ip", "nsenter", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "vtysh")
FRR_DAEMONS = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "/usr/lib/frr/ospfd", "/usr/lib/frr/ospf6d",
               "/usr/lib/frr/staticd")


def missing_tools() -> List[str]:
    missing = [t for t in REQUIRED_TOOLS if not shutil.which(t)]
    missing += [d for d in FRR_DAEMONS if not os.access(d, os.X_OK)]
    if not os.path.exists(SCHEMA):
        missing.append(SCHEMA)
    return missing


def skip_reason() -> Optional[str]:
    if os.geteuid() != 0:
        return "needs root"
    missing = missing_tools()
    return f"missing: {', '.join(missing)}" if missing else None


def provision_command() -> List[str]:
    """The real CLI, as installed next to this Python (falls back to `python -m`)."""
    exe = os.path.join(os.path.dirname(sys.executable), "minet-provision")
    return [exe] if os.access(exe, os.X_OK) else [sys.executable, "-m", "minet_sdn.cli.provision"]


def sh(*argv: str, check: bool = True, env: Optional[Dict[str, str]] = None, timeout: float = 60,
       input: Optional[str] = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(argv), capture_output=True, text=True, env=env, timeout=timeout, input=input)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def master(server: "EmulatedServer", topo_path: str, known_hosts: str, key: str, *args: str
           ) -> subprocess.CompletedProcess:
    """minet-provision --master, run from `server`'s namespace (where the servers' sshd are reachable)."""
    argv = [*provision_command(), "--topology", topo_path, "--master", "--known-hosts", known_hosts,
            "--identity", key, "--json", *args]
    return sh("nsenter", f"--net={NETNS_DIR}/{server.ns}", "--", *argv, check=False, timeout=300)


def ns_inode(path: str) -> Optional[str]:
    try:
        st = os.stat(path)
        return f"{st.st_dev}:{st.st_ino}"
    except OSError:
        return None


def pids_in_namespaces(inodes: set) -> List[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid() and ns_inode(f"/proc/{entry}/ns/net") in inodes:
            out.append(int(entry))
    return out


def kill_all(pids: List[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def gone() -> bool:
        for p in pids:       # reap our own children
            try:
                os.waitpid(p, os.WNOHANG)
            except ChildProcessError:
                pass
        return not any(os.path.exists(f"/proc/{p}") for p in pids)
    wait_until(gone, 5)


class Prefix:
    """A unique name prefix `mnt<hex>` for every namespace a test makes."""

    def __init__(self) -> None:
        self.value = f"mnt{secrets.token_hex(2)[:3]}"   # 6 characters: the topology tag is the name itself

    def namespaces(self) -> List[str]:
        try:
            return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(self.value))
        except FileNotFoundError:
            return []


class EmulatedServer:
    """One server: a namespace with its own OvS and an underlay address on an OvS internal port."""

    def __init__(self, prefix: Prefix, name: str, underlay_ip: str, underlay_plen: int = 24,
                 underlay_on_ovs: bool = True, mtu: int = 1500):
        self.prefix = prefix
        self.name = name
        self.ns = f"{prefix.value}-{name}"
        self.dir = tempfile.mkdtemp(prefix=f"{prefix.value}-{name}-")
        os.chmod(self.dir, 0o755)
        self.state_dir = os.path.join(self.dir, "state")
        self.underlay_ip = underlay_ip
        self.underlay_plen = underlay_plen
        self.uplink = "uplink0"
        self.peer_uplink = f"{prefix.value[-6:]}u{name[-3:]}"[:15]
        self.started = False
        self.underlay_on_ovs = underlay_on_ovs
        self.mtu = mtu

    @property
    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir, OVS_LOGDIR=self.dir, OVS_SYSCONFDIR=self.dir,
                   MINET_STATE_DIR=self.state_dir)
        return env

    def env_args(self) -> List[str]:
        return [f"{k}={self.env[k]}" for k in ("OVS_RUNDIR", "OVS_DBDIR", "OVS_LOGDIR", "OVS_SYSCONFDIR",
                                                "MINET_STATE_DIR")]

    def run(self, *argv: str, check: bool = True, timeout: float = 120, extra_env: Optional[Dict[str, str]] = None
            ) -> subprocess.CompletedProcess:
        # nsenter --net, not `ip netns exec`: that one runs in a private mount namespace, where the
        # namespaces provisioning creates (bind mounts under /var/run/netns) would not be seen outside
        envs = self.env_args() + [f"{k}={v}" for k, v in (extra_env or {}).items()]
        return sh("nsenter", f"--net={NETNS_DIR}/{self.ns}", "--", "env", *envs, *argv, check=check,
                  timeout=timeout)

    def vsctl(self, *args: str, check: bool = True) -> str:
        return self.run("ovs-vsctl", "--timeout=20", *args, check=check).stdout

    def start(self) -> "EmulatedServer":
        sh("ip", "netns", "add", self.ns)
        self.started = True
        sh("ip", "-n", self.ns, "link", "set", "lo", "up")
        # nsenter --net (see run): the daemons must see the namespaces provisioning creates
        host.start_ovs(self.dir, names.nsenter_prefix(f"{NETNS_DIR}/{self.ns}"), lambda argv: sh(*argv))
        return self

    def add_underlay(self, peer: Optional["EmulatedServer"] = None) -> None:
        """The underlay veth: to `peer`'s namespace if given, else to a stub end inside this namespace."""
        if peer is not None:
            sh("ip", "link", "add", "name", self.peer_uplink, "netns", self.ns, "type", "veth",
               "peer", "name", peer.peer_uplink, "netns", peer.ns)
            sh("ip", "-n", self.ns, "link", "set", self.peer_uplink, "name", self.uplink)
            sh("ip", "-n", peer.ns, "link", "set", peer.peer_uplink, "name", peer.uplink)
            for s in (self, peer):
                s._address_underlay()
        else:
            sh("ip", "-n", self.ns, "link", "add", "name", self.uplink, "type", "veth", "peer", "name", "uplink0p")
            sh("ip", "-n", self.ns, "link", "set", "uplink0p", "up")
            self._address_underlay()

    def _address_underlay(self) -> None:
        sh("ip", "-n", self.ns, "link", "set", self.uplink, "mtu", str(self.mtu), "up")
        sh("ip", "netns", "exec", self.ns, "ethtool", "-K", self.uplink, "tx", "off", "tso", "off", "gso", "off")
        cidr = f"{self.underlay_ip}/{self.underlay_plen}"
        if self.underlay_on_ovs:
            self.vsctl("--may-exist", "add-br", "ul-br", "--", "set", "bridge", "ul-br", "datapath_type=netdev",
                       "--", "--may-exist", "add-port", "ul-br", self.uplink)
            sh("ip", "-n", self.ns, "addr", "add", cidr, "dev", "ul-br")
            sh("ip", "-n", self.ns, "link", "set", "ul-br", "mtu", str(self.mtu), "up")
        else:
            sh("ip", "-n", self.ns, "addr", "add", cidr, "dev", self.uplink)

    def provision(self, topo_path: str, *args: str, check: bool = False, timeout: float = 180,
                  extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        return self.run(*provision_command(), "--topology", topo_path, "--server", self.name, *args,
                        check=check, timeout=timeout, extra_env=extra_env)

    def start_sshd(self, client_pub: str, port: int = SSH_PORT) -> str:
        """sshd inside the server namespace on underlay_ip:port, with a generated host key and an
        authorized key; its sessions get this server's environment (SetEnv). Returns the known_hosts line."""
        sd = os.path.join(self.dir, "ssh")
        os.makedirs(sd, mode=0o700)
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.ns, "-f", f"{sd}/host_key")
        with open(f"{sd}/authorized_keys", "w") as fh:
            fh.write(client_pub)
        os.chmod(f"{sd}/authorized_keys", 0o600)
        path = ":".join(dict.fromkeys([os.path.dirname(sys.executable), "/usr/local/sbin", "/usr/local/bin",
                                       "/usr/sbin", "/usr/bin", "/sbin", "/bin"]))
        setenv = " ".join(self.env_args() + [f"PATH={path}"])
        config = f"{sd}/sshd_config"
        with open(config, "w") as fh:
            fh.write("\n".join([
                f"ListenAddress {self.underlay_ip}:{port}", f"HostKey {sd}/host_key", f"PidFile {sd}/sshd.pid",
                f"AuthorizedKeysFile {sd}/authorized_keys", "PermitRootLogin prohibit-password",
                "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
                "StrictModes no", "Subsystem sftp internal-sftp", f"SetEnv {setenv}", ""]))
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)      # sshd's privilege separation dir
        sh("nsenter", f"--net={NETNS_DIR}/{self.ns}", "--", SSHD, "-f", config)
        wait_until(lambda: os.path.exists(f"{sd}/sshd.pid"), 10)
        with open(f"{sd}/host_key.pub") as fh:
            key_type, key = fh.read().split()[:2]
        self.ssh_spec = f"root@{self.underlay_ip}:{port}"
        return f"[{self.underlay_ip}]:{port} {key_type} {key}\n"

    def close(self) -> None:
        if self.started:
            inode = ns_inode(os.path.join(NETNS_DIR, self.ns))
            if inode:
                kill_all(pids_in_namespaces({inode}))
            sh("ip", "netns", "del", self.ns, check=False)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def cleanup_prefix(prefix: Prefix) -> List[str]:
    """Remove every namespace (and its processes) whose name starts with the prefix, and FRR's
    per-namespace run dirs; return the namespace names."""
    names = prefix.namespaces()
    inodes = {ns_inode(os.path.join(NETNS_DIR, n)) for n in names} - {None}
    kill_all(pids_in_namespaces(inodes))
    for n in names:
        sh("ip", "netns", "del", n, check=False)
    for d in frr_run_dirs(prefix):
        shutil.rmtree(d, ignore_errors=True)
    return names


def frr_processes(prefix: Prefix) -> List[int]:
    """Pids of FRR daemons started for namespaces of this prefix (their -N pathspace starts with it)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].startswith(b"/usr/lib/frr/") and any(a.startswith(prefix.value.encode()) for a in argv):
            out.append(int(entry))
    return out


def frr_run_dirs(prefix: Prefix) -> List[str]:
    try:
        return sorted(os.path.join("/var/run/frr", d) for d in os.listdir("/var/run/frr")
                      if d.startswith(prefix.value))
    except FileNotFoundError:
        return []


@contextmanager
def emulated_servers(*specs: tuple, connect: bool = False, underlay_on_ovs: bool = True):
    """Servers from (name, underlay_ip) pairs, each with an underlay; `connect` joins the first two
    by one underlay veth. Everything is removed on exit, whatever happened."""
    prefix = Prefix()
    servers = [EmulatedServer(prefix, name, ip, underlay_on_ovs=underlay_on_ovs) for name, ip in specs]
    try:
        for s in servers:
            s.start()
        if connect and len(servers) >= 2:
            servers[0].add_underlay(servers[1])
            for s in servers[2:]:
                s.add_underlay()
        else:
            for s in servers:
                s.add_underlay()
        yield prefix, servers
    finally:
        cleanup_prefix(prefix)
        for s in servers:
            s.close()


def topology_yaml(name: str, servers: Dict[str, dict], ases: Dict[int, dict], links: List[dict],
                  fabric: Optional[dict] = None) -> str:
    """A small YAML writer for test topologies (flow style, like topologies/minimal.yaml)."""
    def flow(d: dict) -> str:
        parts = []
        for k, v in d.items():
            if isinstance(v, list):
                v = "[" + ", ".join(str(x) for x in v) + "]"
            elif isinstance(v, bool):
                v = "true" if v else "false"
            parts.append(f"{k}: {v}")
        return "{" + ", ".join(parts) + "}"

    lines = [f"name: {name}"]
    if fabric:
        lines.append(f"fabric: {flow(fabric)}")
    lines.append("servers:")
    lines += [f"  {s}: {flow(spec)}" for s, spec in servers.items()]
    lines.append("ases:")
    lines += [f"  {asn}: {flow(spec)}" for asn, spec in ases.items()]
    lines.append("links:")
    lines += [f"  - {flow(link)}" for link in links]
    return "\n".join(lines) + "\n"


def write_topology(server: EmulatedServer, text: str, name: str = "topology.yaml") -> str:
    """`text` as a topology file in the server's directory; returns its path."""
    path = os.path.join(server.dir, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def json_or_empty(text: str) -> dict:
    """vtysh's JSON output, or {} while the daemon does not answer with JSON yet."""
    try:
        return json.loads(text)
    except ValueError:
        return {}


def established_peers(summary: dict) -> set:
    """The IPv4 BGP neighbours in state Established, from a `show bgp summary json` document."""
    peers = summary.get("ipv4Unicast", {}).get("peers", {})
    return {peer for peer, info in peers.items() if info.get("state") == "Established"}


def qdiscs(ns: str, dev: str) -> list:
    """`tc -j qdisc show dev DEV` in namespace `ns`."""
    return json.loads(sh("nsenter", f"--net={NETNS_DIR}/{ns}", "tc", "-j", "qdisc", "show", "dev", dev).stdout)


class Site:
    """What provisioning made on an emulated server from the topology file at `topo_path`: its
    nodes' namespaces and FRR directories, and what its routers say (netns backend; the docker
    tests read them inside containers instead, by overriding `vtysh`)."""

    def __init__(self, prefix: Prefix, server: EmulatedServer, topo_path: str):
        self.prefix, self.server, self.topo_path = prefix, server, topo_path
        self.tag = prefix.value

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    def confdir(self, router: str) -> str:
        return os.path.join(self.server.state_dir, self.tag, self.server.name, "frr", router)

    def vtysh(self, router: str, *commands: str) -> str:
        res = sh(*names.exec_prefix("netns", self.ns(router)), *names.vtysh_argv(self.confdir(router), *commands),
                 check=False)
        assert "vtysh.conf" not in res.stderr, res.stderr      # provisioning wrote an empty one
        return res.stdout

    def vtysh_json(self, router: str, command: str) -> dict:
        return json_or_empty(self.vtysh(router, command))

    def established(self, router: str) -> set:
        return established_peers(self.vtysh_json(router, "show bgp summary json"))

    def in_node(self, node: str, *argv: str, check: bool = False) -> subprocess.CompletedProcess:
        return sh(*names.exec_prefix("netns", self.ns(node)), *argv, check=check)

    def provision(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.server.provision(self.topo_path, *args, **kw)
