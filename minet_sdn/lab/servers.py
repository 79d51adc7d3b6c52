"""The emulated servers: on one machine, every server of a topology becomes a network namespace
with its own Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath) and its own sshd,
joined by the underlay and the management network (networks.py).

build_servers records everything in lab.json as soon as it exists, so `teardown` removes exactly
that (and nothing with a merely similar name), even after a failure half-way.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

from .. import host
from ..provision import netlink as nlk
from ..topology import Topology, names
from . import LabError, Progress, paths, quiet
from .effective import load, write_effective_topology
from .networks import (DEFAULT_MGMT_SUBNET, build_mgmt, build_shared, build_underlay, check_addressing,
                       mgmt_addresses, mgmt_network)
from .sshd import SSH_PORT, SSHD, host_key_line, make_client_key, start_sshd
from .state import LabState, ProcessRecord, ServerRecord, SshRecord, topology_digest
from .system import create_netns, delete_netns, namespaces_pids, netns_exists, read_pidfile, run

REQUIRED_TOOLS = ("ip", "nsenter", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd",
                  "ovs-vsctl", "ssh-keygen")


def check_host() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, Open vSwitch, sshd)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if not os.path.exists(SSHD):
        missing.append(SSHD)
    if not os.path.exists(host.OVS_SCHEMA):
        missing.append(host.OVS_SCHEMA)
    if missing:
        raise LabError(f"missing on this machine: {', '.join(missing)} "
                       f"(apt-get install openvswitch-switch openssh-server iproute2 util-linux)")


SERVER_SYSCTLS = (("net.ipv4.ip_forward", "0"), ("net.ipv6.conf.all.forwarding", "0"),
                  ("net.ipv6.conf.default.forwarding", "0"))


def no_forwarding(ns: str) -> None:
    """Forwarding off in `ns`, both families (a new namespace here starts with ip_forward=1)."""
    try:
        nlk.ensure_sysctls(host.netns_path(ns), SERVER_SYSCTLS, ns)
    except OSError as exc:
        raise LabError(f"cannot turn forwarding off in {ns}: {exc}") from None


def planned_namespaces(topo: Topology) -> List[str]:
    return [names.mgmt_ns(topo), names.underlay_ns(topo)] + [names.server_ns(topo, s) for s in topo.servers]


@dataclass
class ServersInfo:
    state: LabState
    addresses: Dict[str, str]
    effective_topology: str


# An emulated server's Open vSwitch serves one lab of mostly idle links (hellos and keepalives), on a
# machine that runs several of them, and every wake-up of its main loop polls every port: write
# interface statistics to the database every 30 s, not every 5 s (nothing reads them from there: the
# controller asks over OpenFlow), dump the datapath's flows for revalidation every 2 s, not every
# 0.5 s (a flow table change still revalidates at once; flow counters lag up to 2 s), keep an idle
# datapath flow 60 s, not 10 s (a keepalive every 10 s would otherwise go up to the slow path each
# time), and one handler and one revalidator thread. MINET_LAB_OVS_TUNING=0 keeps Open vSwitch's
# own (to compare: bench/cpu_breakdown.py --compare-ovs).
LAB_OVS_OTHER_CONFIG = (("stats-update-interval", "30000"), ("max-revalidator", "2000"), ("max-idle", "60000"),
                        ("n-handler-threads", "1"), ("n-revalidator-threads", "1"))


def lab_ovs_other_config() -> List[str]:
    """The `ovs-vsctl set Open_vSwitch .` arguments for a lab server's Open vSwitch."""
    if os.environ.get("MINET_LAB_OVS_TUNING", "") == "0":
        return []
    return [f"other_config:{k}={v}" for k, v in LAB_OVS_OTHER_CONFIG]


def start_ovs(topo: Topology, server: str, state: LabState) -> None:
    """ovsdb-server and ovs-vswitchd of `server`, inside its namespace, in its own directory."""
    def started(daemon: str, pidfile: str) -> None:
        state.add_process(ProcessRecord.of(f"{server}/{daemon}", read_pidfile(pidfile), pidfile))

    d = paths.server_dir(topo, server)
    prefix = names.exec_prefix("netns", names.server_ns(topo, server))
    f = host.start_ovs(d, prefix, lambda argv: run(argv), started)
    tuning = lab_ovs_other_config()
    if tuning:                         # ovs-vswitchd applies these on the fly
        run([*prefix, "env", *(f"{k}={v}" for k, v in host.ovs_env(d).items()), "ovs-vsctl",
             f"--db=unix:{f.db_sock}", "--timeout=60", "set", "Open_vSwitch", ".", *tuning])


def restart_vswitchd(topo: Topology, server: str, state: LabState) -> None:
    """ovs-vswitchd of `server` again, after it died: its bridges, ports and tunnels are in its
    ovsdb (still running), so the new one rebuilds them from there; the controller, seeing the
    bridges reconnect, puts the flows back."""
    d = paths.server_dir(topo, server)
    f = host.OvsFiles(d)
    env = ["env", *(f"{k}={v}" for k, v in host.ovs_env(d).items())]
    run([*names.exec_prefix("netns", names.server_ns(topo, server)), *env, *host.OVS_NICE, "ovs-vswitchd", f"unix:{f.db_sock}",
         f"--pidfile={f.pidfile('ovs-vswitchd')}", "--detach", f"--log-file={f.log('ovs-vswitchd')}",
         "--unixctl", f"{d}/ovs-vswitchd.ctl"])
    state.add_process(ProcessRecord.of(f"{server}/ovs-vswitchd", read_pidfile(f.pidfile("ovs-vswitchd")),
                                       f.pidfile("ovs-vswitchd")))


def build_servers(topo_path: str, *, mgmt_subnet: str = DEFAULT_MGMT_SUBNET,
                  progress: Progress = quiet) -> ServersInfo:
    """Create the lab's networks and every emulated server (OvS + sshd), without provisioning.

    On any failure everything made so far is removed before the error propagates. Call with the
    lab lock held (lab_lock) when other lab operations may run concurrently.
    """
    check_host()
    topo = load(topo_path)
    check_addressing(topo, mgmt_subnet)
    addresses = mgmt_addresses(topo, mgmt_subnet)
    prefixlen = mgmt_network(mgmt_subnet).prefixlen
    sdir = paths.state_dir(topo)
    if os.path.exists(paths.lab_json_path(topo)):
        raise LabError(f"a lab named {topo.name} already has state in {sdir}")
    if os.path.exists(sdir):
        raise LabError(f"{sdir} exists but holds no lab state; remove it if it is stale")
    clashes = [ns for ns in planned_namespaces(topo) if netns_exists(ns)]
    if clashes:
        raise LabError(f"network namespace {clashes[0]} already exists and is not part of a lab of "
                       f"{topo.name}; rename the topology or remove that namespace")
    os.makedirs(sdir, mode=0o755)
    state = LabState(
        path=paths.lab_json_path(topo), name=topo.name, tag=topo.tag, topology=os.path.abspath(topo_path),
        topology_sha256=topology_digest(topo_path), effective_topology=paths.effective_topology_path(topo),
        mgmt_subnet=str(mgmt_network(mgmt_subnet)), created=time.time(),
        ssh=SshRecord(key=paths.client_key_path(topo), known_hosts=paths.known_hosts_path(topo), port=SSH_PORT))
    state.save()
    try:
        for ns in (names.mgmt_ns(topo), names.underlay_ns(topo)):
            create_netns(ns)
            state.add_namespace(ns)
        build_shared(topo, state, addresses["mgmt"], prefixlen)
        make_client_key(topo)
        progress(f"networks: mgmt {mgmt_network(mgmt_subnet)} in {names.mgmt_ns(topo)}, "
                 f"underlay in {names.underlay_ns(topo)}")
        known_hosts = []
        for name, server in topo.servers.items():
            ns = names.server_ns(topo, name)
            create_netns(ns)
            state.add_namespace(ns)
            # a server does not route (a new namespace inherits ip_forward=1): off, both families,
            # before any port exists, so no router frame is ever routed by the server's kernel
            no_forwarding(ns)
            state.servers[name] = ServerRecord(
                ns=ns, index=server.index, dir=paths.server_dir(topo, name),
                state_dir=paths.provision_state_dir(topo, name), mgmt_ip=addresses[name],
                underlay_ip=server.underlay_ip, ssh=f"root@{addresses[name]}:{SSH_PORT}")
            state.save()
            os.makedirs(paths.provision_state_dir(topo, name), mode=0o755, exist_ok=True)
            os.chmod(paths.server_dir(topo, name), 0o755)
            start_ovs(topo, name, state)
            build_underlay(topo, name, state)
            build_mgmt(topo, name, state, addresses[name], prefixlen)
            start_sshd(topo, name, state, addresses[name])
            known_hosts.append(host_key_line(topo, name, addresses[name]))
            progress(f"server {name}: namespace {ns}, OvS, underlay {server.underlay_ip}, "
                     f"ssh root@{addresses[name]}")
        paths.write_atomic(paths.known_hosts_path(topo), "\n".join(known_hosts) + "\n")
        eff = write_effective_topology(topo_path, topo, addresses)
        state.phase = "servers"
        state.save()
        return ServersInfo(state=state, addresses=addresses, effective_topology=eff)
    except BaseException as exc:
        progress(f"failed ({exc}); removing what was made")
        teardown(topo, state)
        raise


def stray_processes(state: LabState) -> List[int]:
    """Processes still inside the lab's namespaces (e.g. SSH sessions, daemons started over SSH)."""
    return namespaces_pids(state.namespaces)


def teardown(topo: Topology, state: Optional[LabState] = None, progress: Progress = quiet) -> List[str]:
    """Remove exactly what lab.json records: processes (newest first), namespaces, then files.

    Returns the problems met (best effort: a problem does not stop the rest of the teardown).
    Call with the lab's lock held (state.lab_lock).
    """
    problems: List[str] = []
    if state is None:
        state = LabState.load(topo)
        if state is None:
            return problems
    for record in reversed(list(state.processes)):
        try:
            record.stop()
        except OSError as exc:
            problems.append(f"stopping {record.name} (pid {record.pid}): {exc}")
        if record.alive():
            problems.append(f"{record.name} (pid {record.pid}) did not stop")
        else:
            state.drop_process(record.name)
    strays = stray_processes(state)
    if strays:
        progress(f"stopping {len(strays)} leftover process(es) in the lab's namespaces: "
                 f"{' '.join(map(str, strays))}")
        records = [ProcessRecord.of("stray", pid) for pid in strays]
        for r in records:              # all at once first: one timeout for all, not one each
            with contextlib.suppress(OSError):
                os.kill(r.pid, signal.SIGTERM)
        for r in records:
            r.stop(timeout=3.0)
    for ns in reversed(list(state.namespaces)):
        delete_netns(ns)
        if netns_exists(ns):
            problems.append(f"network namespace {ns} could not be deleted")
        else:
            state.namespaces.remove(ns)
            state.save()
    if not problems:
        shutil.rmtree(os.path.dirname(state.path), ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir(paths.lab_root())            # only if no other lab is left
    return problems
