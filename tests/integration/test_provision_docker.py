"""minet-provision --backend docker for real, inside an emulated server (a namespace with its own OvS).

Topology (AS1 and AS2 on VM1; AS3 on VM2 is not provisioned here, it only gives VM1 a remote
bridge and a server-side veth end):

    AS1 [ZURI, GENE] --peer (link 1)-- AS2 [PARI]        AS1.GENE --peer (link 2, remote)-- AS3.NEWY

Every node is a container (`--network none`) of the locally built image; veths are made in the
server's namespace and their node ends moved into the containers' namespaces through their pids.
Needs root, Open vSwitch, FRR tools for the fixtures, and a docker engine (started here when none
runs; skipped with the reason when docker cannot be installed or started). Everything is removed
in finally, and the engine's `docker ps -a` is listed before a dockerd started here is stopped.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from provision_fixtures import Site, emulated_servers, sh, skip_reason, topology_yaml, write_topology
from tests.docker_engine import EngineUnavailable, docker_engine
from tests.polling import wait_until

from minet_sdn.provision import image as img
from minet_sdn.provision.docker import LABEL_INSTANCE, LABEL_NODE, LABEL_SERVER
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology

pytestmark = [pytest.mark.root, pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))]

ROUTERS = ["1.ZURI", "1.GENE", "2.PARI"]
NODES = ROUTERS + [f"{r}.host" for r in ROUTERS]


def topology(name: str) -> str:
    return topology_yaml(
        name, {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        {1: {"server": "VM1", "routers": ["ZURI", "GENE"]}, 2: {"server": "VM1", "routers": ["PARI"]},
         3: {"server": "VM2", "routers": ["NEWY"]}},
        [{"a": "1.ZURI", "b": "2.PARI", "rel": "peer"},       # 1: local, between two containers
         {"a": "1.GENE", "b": "3.NEWY", "rel": "peer"}])      # 2: remote: server end on VM1's bridge


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return sh("docker", *args, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def engine():
    try:
        with docker_engine() as eng:
            yield eng
    except EngineUnavailable as exc:
        pytest.skip(f"no docker engine: {exc}")


@pytest.fixture(scope="module")
def image(engine):
    name = img.default_image()
    t0 = time.monotonic()
    built = img.ensure_image(name, progress=lambda m: print(m, flush=True))
    print(f"image {name}: {'built in %.1f s' % built if built else 'present'} "
          f"(ensure_image took {time.monotonic() - t0:.1f} s)", flush=True)
    return name


class DockerSite(Site):
    """The site with the docker backend: every node a container named like its namespace."""

    def __init__(self, prefix, server, path, engine):
        super().__init__(prefix, server, path)
        self.engine = engine
        self.topo = load_topology(path)
        self.plan = build_plan(self.topo, "VM1", backend="docker", root=server.state_dir)

    def provision(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return super().provision("--backend", "docker", *args, **kw)

    def inspect(self, node: str) -> dict:
        return json.loads(docker("container", "inspect", self.ns(node)).stdout)[0]

    def pid(self, node: str) -> int:
        return self.inspect(node)["State"]["Pid"]

    def exec(self, node: str, *argv: str, check: bool = False, timeout: float = 30) -> subprocess.CompletedProcess:
        return docker("exec", self.ns(node), *argv, check=check, timeout=timeout)

    def vtysh(self, router: str, *commands: str) -> str:
        argv = ["vtysh", "--vty_socket", self.confdir(router)]
        for command in commands:
            argv += ["-c", command]
        return self.exec(router, *argv).stdout

    def our_containers(self) -> list:
        out = docker("ps", "-a", "--filter", f"label={LABEL_INSTANCE}={self.tag}", "--format", "{{.Names}}").stdout
        return sorted(out.split())

    def server_links(self) -> list:
        out = self.server.run("ip", "-j", "link", "show").stdout
        return [l["ifname"] for l in json.loads(out)]


@pytest.fixture(scope="module")
def site(engine, image):
    with emulated_servers(("VM1", "192.0.2.1")) as (prefix, (vm1,)):
        engine.prefixes.append(prefix.value)
        s = DockerSite(prefix, vm1, write_topology(vm1, topology(prefix.value)), engine)
        s.image = image
        try:
            t0 = time.monotonic()
            res = s.provision("--json")
            s.first_seconds = time.monotonic() - t0
            assert res.returncode == 0, res.stderr
            s.first_report = json.loads(res.stdout)
            print(f"docker backend up: {s.first_report['n_changes']} changes in {s.first_seconds:.1f} s", flush=True)
            yield s
        finally:
            s.provision("--down", check=False)


def test_every_node_is_a_labelled_container_without_network(site):
    assert site.first_report["ok"] and site.first_report["n_changes"] > 50
    assert site.our_containers() == sorted(site.ns(n) for n in NODES)
    for node in NODES:
        info = site.inspect(node)
        assert info["State"]["Running"]
        assert info["HostConfig"]["NetworkMode"] == "none"
        assert info["Config"]["Image"] == site.image
        labels = info["Config"]["Labels"]
        assert labels[LABEL_INSTANCE] == site.tag and labels[LABEL_SERVER] == "VM1" and labels[LABEL_NODE] == node
        assert labels.get("org.minet-sdn") == "1"           # from the image
        assert {c.replace("CAP_", "") for c in info["HostConfig"]["CapAdd"]} >= {"NET_ADMIN", "SYS_ADMIN"}
        marker = os.path.join(site.server.state_dir, site.tag, "VM1", "nodes", f"{site.ns(node)}.json")
        with open(marker) as fh:
            m = json.load(fh)
        assert m["identity"] == info["Id"] and m["backend"] == "docker" and m["instance"] == site.tag


def test_frr_runs_inside_the_router_containers(site):
    for router in ROUTERS:
        out = site.exec(router, "ps", "-eo", "comm").stdout.split()
        # staticd only if used; ospfd only with a link inside the AS (2.PARI is a one-router AS)
        assert ({"zebra", "bgpd"} | ({"ospfd"} if router.startswith("1.") else set())) <= set(out), (router, out)
        # the daemons are the image's, writing their pid files into the bind-mounted FRR directory
        with open(os.path.join(site.confdir(router), "bgpd.pid")) as fh:
            inner = int(fh.read())
        assert site.exec(router, "cat", f"/proc/{inner}/comm").stdout.strip() == "bgpd"
    for host in NODES[3:]:
        assert "zebra" not in site.exec(host, "ps", "-eo", "comm").stdout


def test_interfaces_match_the_plan(site):
    """Names, addresses, MACs and MTUs inside the containers are the plan's (as with netns)."""
    ends = [e for v in site.plan.veths for e in (v.a, v.b) if e.node is not None]
    assert ends
    by_node = {}
    for e in ends:
        by_node.setdefault(e.node, []).append(e)
    for node, wanted in by_node.items():
        links = {l["ifname"]: l for l in json.loads(sh("nsenter", f"--net=/proc/{site.pid(node)}/ns/net",
                                                       "ip", "-j", "addr", "show").stdout)}
        for e in wanted:
            link = links[e.ifname]
            assert link["mtu"] == e.mtu, (node, e.ifname)
            if e.mac:
                assert link["address"] == e.mac, (node, e.ifname)
            have = {f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"]}
            assert set(e.addresses) <= have, (node, e.ifname, have)
            assert "UP" in link["flags"]
    # the remote link's server end is in the server's namespace, on the remote bridge
    port = site.topo.link_port_name(2)
    assert port in site.server_links()
    assert port in site.server.vsctl("list-ports", site.topo.bridge("VM1", "VM2").name).split()


def test_bgp_sessions_establish_inside_the_containers(site):
    zuri_ext = site.topo.link(1).b.ip
    gene_lo = site.plan.addressing[1].routers["GENE"].loopback
    assert wait_until(lambda: {zuri_ext, gene_lo} <= site.established("1.ZURI"), 60, interval=0.5), \
        site.established("1.ZURI")
    assert wait_until(lambda: site.topo.link(1).a.ip in site.established("2.PARI"), 60, interval=0.5)


def test_hosts_ping_across_ases(site):
    hosts = {f"{asn}.{n}.host": r.host_ip for asn in (1, 2) for n, r in site.plan.addressing[asn].routers.items()}
    for a, b in (("1.ZURI.host", "2.PARI.host"), ("1.GENE.host", "2.PARI.host"), ("2.PARI.host", "1.GENE.host")):
        ok = wait_until(lambda: site.exec(a, "ping", "-c", "1", "-W", "1", hosts[b]).returncode == 0, 60,
                        interval=0.5)
        assert ok, f"{a} cannot reach {b} ({hosts[b]})"


def test_second_run_changes_nothing(site):
    t0 = time.monotonic()
    res = site.provision("--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    print(f"docker backend second up: {report['n_changes']} changes in {time.monotonic() - t0:.1f} s", flush=True)
    assert report["n_changes"] == 0, report["changes"]


def test_a_killed_container_and_a_killed_daemon_are_repaired(site):
    docker("kill", site.ns("2.PARI"))                   # its namespace goes, and link 1 with it
    with open(os.path.join(site.confdir("1.ZURI"), "ospfd.pid")) as fh:
        inner = int(fh.read())
    site.exec("1.ZURI", "kill", "-9", str(inner), check=True)
    res = site.provision("--json")
    assert res.returncode == 0, res.stderr
    changes = json.loads(res.stdout)["changes"]
    assert any("veth 1.ZURI:ext1 -- 2.PARI:ext1" in c for c in changes), changes
    assert any(c.startswith("created 2.PARI: bgpd") for c in changes), changes
    assert any(c.startswith("created 1.ZURI: ospfd") for c in changes), changes
    assert site.inspect("2.PARI")["State"]["Running"]
    assert wait_until(lambda: site.topo.link(1).b.ip in site.established("1.ZURI"), 60, interval=0.5)
    res = site.provision("--json")
    assert json.loads(res.stdout)["n_changes"] == 0


def test_a_container_of_the_same_name_that_is_not_ours_is_refused(site, engine):
    """Another instance whose node name is taken by a foreign container: refused, rolled back."""
    other = f"d{secrets.token_hex(2)}"
    engine.prefixes.append(other)
    path = write_topology(site.server, name="other.yaml", text=topology_yaml(
        other, {"VM1": {"underlay_ip": "192.0.2.1"}},
        {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM1", "routers": ["B"]}},
        [{"a": "1.A", "b": "2.B", "rel": "peer"}]))
    docker("run", "-d", "--name", f"{other}-2.B", "--network", "none", site.image, "sleep", "infinity")
    try:
        res = site.server.provision(path, "--backend", "docker")
        assert res.returncode == 1
        assert f"{other}-2.B exists but is not ours" in res.stderr
        assert "rolled back" in res.stderr
        names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert f"{other}-2.B" in names                      # the foreign one survives
        assert not [n for n in names if n.startswith(f"{other}-") and n != f"{other}-2.B"]
    finally:
        docker("rm", "-f", f"{other}-2.B", check=False)


def test_failure_half_way_rolls_back(site, engine):
    """An image without bgpd: zebra starts, bgpd does not; everything this run made goes again."""
    other = f"r{secrets.token_hex(2)}"
    engine.prefixes.append(other)
    broken = f"minet-test/nobgpd:{other}"
    tmp = f"{other}-build"
    docker("run", "--name", tmp, "--network", "none", site.image, "rm", "/usr/lib/frr/bgpd")
    docker("commit", tmp, broken)
    docker("rm", tmp)
    path = write_topology(site.server, name="broken.yaml", text=topology_yaml(
        other, {"VM1": {"underlay_ip": "192.0.2.1"}, "VM3": {"underlay_ip": "192.0.2.3"}},   # its own tunnel
        {1: {"server": "VM1", "routers": ["A"]}, 2: {"server": "VM3", "routers": ["B"]}},
        [{"a": "1.A", "b": "2.B", "rel": "peer"}]))
    try:
        before = set(site.server_links())
        res = site.server.provision(path, "--backend", "docker", "--image", broken)
        assert res.returncode == 1, res.stderr
        assert "did not start: bgpd (1)" in res.stderr and "rolled back" in res.stderr
        assert not [n for n in docker("ps", "-a", "--format", "{{.Names}}").stdout.split() if n.startswith(other)]
        assert set(site.server_links()) == before              # the server end of the remote link went too
        assert not os.path.exists(os.path.join(site.server.state_dir, other))
    finally:
        docker("rmi", "-f", broken, check=False)


def test_an_unknown_image_is_refused_before_anything_is_made(site):
    res = site.provision("--image", "registry.example.org/nope:1")
    assert res.returncode == 1
    assert "is not present on this machine" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_down_removes_only_our_containers(site):
    similar = f"{site.tag}-1.ZURI-x"                 # a foreign container with a similar name
    labelled = f"{site.tag}-9.ELSE"                  # labelled for this instance, but another server
    docker("run", "-d", "--name", similar, "--network", "none", site.image, "sleep", "infinity")
    docker("run", "-d", "--name", labelled, "--network", "none", "--label", f"{LABEL_INSTANCE}={site.tag}",
           "--label", f"{LABEL_SERVER}=VM2", site.image, "sleep", "infinity")
    try:
        t0 = time.monotonic()
        res = site.provision("--down", "--json")
        print(f"docker backend down: {time.monotonic() - t0:.1f} s", flush=True)
        assert res.returncode == 0, res.stderr
        names = docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert similar in names and labelled in names
        assert not [n for n in names if n in {site.ns(x) for x in NODES}]
        assert not [l for l in site.server_links() if l.startswith(site.tag)]
        assert not os.path.exists(os.path.join(site.server.state_dir, site.tag))
        res = site.provision("--down", "--json")
        assert res.returncode == 0 and json.loads(res.stdout)["n_changes"] == 0
    finally:
        docker("rm", "-f", similar, labelled, check=False)
