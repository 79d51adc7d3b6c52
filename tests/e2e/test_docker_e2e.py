"""End to end: `minet lab up FILE --backend docker` on two emulated servers, then `lab down`.

The lab's real path (emulated servers with their own OvS and sshd, the controller in the mgmt
namespace, `minet-provision --master --backend docker` over SSH), with every router and host a
container (`--network none`) wired through its pid's namespace to the server's remote bridge:

    VM1: AS1 [ZURI] --provider (link 3, local)-- AS3 [BERN]
    VM2: AS2 [PARI]
    remote links (GRE between the servers' OvS, isolated by the controller):
        link 1: 1.ZURI --peer-- 2.PARI        link 2: 2.PARI --provider-- 3.BERN

Needs root, Open vSwitch, FRR (the lab's fixtures), sshd, and a docker engine (started here when
none runs, stopped again by pid; skipped with the reason when docker cannot be installed or
started). The lab is removed in finally; no container, namespace or state is left.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from minet_sdn.topology import names
from minet_sdn import host
from minet_sdn.lab import LabError, controller, convergence, paths, places
from minet_sdn.lab.lab import Lab
from e2e_support import require_lab, session_drops_on_failed_link, wait_all
from tests.polling import wait_until
from minet_sdn.provision.docker import LABEL_INSTANCE, list_containers
from minet_sdn.topology import load_topology
from minet_sdn.topology.addressing import topology_addressing

pytestmark = pytest.mark.root

require_lab(host_frr=False)       # the routers run the image's FRR

from tests.docker_engine import EngineUnavailable, docker_engine  # noqa: E402

UP_BUDGET_S = 120.0          # the image is cached; a first build on a fresh machine is not counted


def topology(directory, name: str) -> str:
    data = {
        "name": name,
        "fabric": {"isolation": "key", "encapsulation": "gre", "underlay_mtu": 9000},
        "servers": {"VM1": {"underlay_ip": "192.0.2.1"}, "VM2": {"underlay_ip": "192.0.2.2"}},
        "ases": {1: {"server": "VM1", "routers": ["ZURI"]}, 2: {"server": "VM2", "routers": ["PARI"]},
                 3: {"server": "VM1", "routers": ["BERN"]}},
        "links": [{"a": "1.ZURI", "b": "2.PARI", "rel": "peer"},
                  {"a": "2.PARI", "b": "3.BERN", "rel": "provider"},
                  {"a": "1.ZURI", "b": "3.BERN", "rel": "provider"}],
    }
    path = os.path.join(str(directory), f"{name}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh, sort_keys=False)
    return path


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def _left(topo) -> list:
    """Everything of this lab still on the machine: containers, namespaces, state."""
    left = [f"container {c['name']}" for c in list_containers(topo.name)]
    if os.path.isdir(host.NETNS_DIR):
        left += [f"netns {ns}" for ns in os.listdir(host.NETNS_DIR) if ns.startswith(f"{topo.tag}-")]
    if os.path.exists(paths.state_dir(topo)):
        left.append(paths.state_dir(topo))
    return left


@pytest.fixture(scope="module")
def engine():
    try:
        with docker_engine() as eng:
            yield eng
    except EngineUnavailable as exc:
        pytest.skip(f"no docker engine: {exc}")


@pytest.fixture(scope="module")
def lab(engine, tmp_path_factory):
    name = f"dk{secrets.token_hex(2)}"
    engine.prefixes.append(name)
    path = topology(tmp_path_factory.mktemp("docker-lab"), name)
    topo = load_topology(path)
    try:
        t0 = time.monotonic()
        summary = Lab(path, progress=lambda m: print(m, flush=True)).up(backend="docker")
        elapsed = time.monotonic() - t0
        print(f"lab up (docker backend): {elapsed:.1f} s", flush=True)
        yield path, topo, summary, elapsed
    finally:
        t0 = time.monotonic()
        problems = Lab(path, progress=lambda m: print(m, flush=True)).remove()
        print(f"lab down (docker backend): {time.monotonic() - t0:.1f} s, problems: {problems}", flush=True)


def _in(topo, node: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return _docker("exec", names.container_name(names.node_ns(topo, node)), *argv, timeout=timeout)


def _vtysh_json(topo, router: str, command: str) -> dict:
    place = places.router_place(topo, router)
    out = _in(topo, router, *names.vtysh_argv(place.frr_dir, command)).stdout
    try:
        return json.loads(out)
    except ValueError:
        return {}


def test_up_with_the_docker_backend_establishes_bgp(lab):
    path, topo, summary, elapsed = lab
    assert summary["backend"] == "docker" and summary["already_up"] is False
    assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"] == 12   # 6 per family
    assert elapsed < UP_BUDGET_S
    # every node is a container of this instance on its server; none is a named namespace
    containers = {c["name"]: c for c in list_containers(topo.name)}
    expected = {f"{topo.tag}-{r}{suffix}": topo.server_of(r) for r in topo.routers for suffix in ("", ".host")}
    assert {n: c["server"] for n, c in containers.items()} == expected
    assert not [ns for ns in os.listdir(host.NETNS_DIR) if ns in expected]
    for name in expected:
        mode = _docker("container", "inspect", "-f", "{{.HostConfig.NetworkMode}}", name).stdout.strip()
        assert mode == "none"


def test_bgp_across_the_remote_links_through_the_controllers_bridges(lab):
    path, topo, _, _ = lab
    for link_id in (1, 2):
        link = topo.link(link_id)
        assert link.remote
        peers = _vtysh_json(topo, link.a.router, "show bgp summary json")["ipv4Unicast"]["peers"]
        assert peers[link.b.ip]["state"] == "Established", (link_id, peers)
    # the server ends of the remote links are ports of the remote bridges the controller holds
    code, body = controller.rest_call(path, "GET", "/v1/links")
    assert code == 200
    items = body.get("links", body) if isinstance(body, dict) else body
    states = {int(l["id"]): l for l in items}
    assert states[1]["state"] == states[2]["state"] == "up"
    assert states[1]["tunnel_live"] and states[2]["tunnel_live"]
    # AS3 learns AS2's prefix over link 2 (remote) and AS1's over link 3 (local); sessions
    # Established is not routes exchanged yet, so give the updates a moment
    addressing = topology_addressing(topo)
    wanted = {str(addressing[2].prefix), str(addressing[1].prefix)}

    def routes() -> set:
        return set(_vtysh_json(topo, "3.BERN", "show ip bgp json").get("routes", {}))
    assert wait_until(lambda: wanted <= routes(), 30, interval=0.5), sorted(routes())


def test_hosts_reach_each_other_across_servers(lab):
    path, topo, _, _ = lab
    addressing = topology_addressing(topo)
    hosts = {f"{asn}.{n}.host": r.host_ip for asn, a in addressing.items() for n, r in a.routers.items()}
    pairs = [("1.ZURI.host", "2.PARI.host"), ("3.BERN.host", "2.PARI.host"), ("2.PARI.host", "1.ZURI.host")]
    wait_all(pairs, lambda p: _in(topo, p[0], "ping", "-c", "1", "-W", "1", hosts[p[1]]).returncode == 0, 30,
             "hosts to reach each other")
    # a full-size packet across the GRE tunnel
    assert _in(topo, "1.ZURI.host", "ping", "-c", "1", "-W", "2", "-M", "do", "-s", "1472",
               hosts["2.PARI.host"]).returncode == 0


def test_exec_and_status_find_the_containers(lab):
    path, topo, _, _ = lab
    cli = [sys.executable, "-m", "minet_sdn.lab", "exec", path]
    out = subprocess.run(cli + ["2.PARI", "--", "vtysh", "-c", "show bgp summary json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ipv4Unicast"]["as"] == 2
    out = subprocess.run(cli + ["1.ZURI.host", "--", "hostname"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.strip() == "1.ZURI.host"
    st = Lab(path).status(json=True)
    assert st["backend"] == "docker" and st["problems"] == []
    assert all(convergence.bgp_converged(r) for r in st["bgp"])
    assert "nodes: docker" in Lab(path).status()


def test_a_failed_remote_link_reaches_the_container(lab):
    path, topo, _, _ = lab
    link = topo.link(1)

    def state() -> str:
        peers = _vtysh_json(topo, "1.ZURI", "show bgp summary json").get("ipv4Unicast", {}).get("peers", {})
        return peers.get(link.b.ip, {}).get("state", "absent")

    session_drops_on_failed_link(path, topo, link.id, state)


def test_up_again_is_a_noop_and_keeps_the_backend(lab):
    path, topo, _, _ = lab
    ids = sorted(c["id"] for c in list_containers(topo.name))
    summary = Lab(path, progress=lambda m: None).up(backend="docker")
    assert summary["already_up"] is True
    assert sorted(c["id"] for c in list_containers(topo.name)) == ids
    with pytest.raises(LabError, match="docker backend"):
        Lab(path, progress=lambda m: None).up(backend="netns")


def test_down_leaves_nothing(lab):
    path, topo, _, _ = lab
    foreign = f"{topo.tag}-1.ZURI-foreign"         # not ours: survives
    assert _docker("run", "-d", "--name", foreign, "--network", "none",
                   _docker("container", "inspect", "-f", "{{.Config.Image}}", f"{topo.tag}-1.ZURI").stdout.strip(),
                   "sleep", "infinity").returncode == 0
    try:
        problems = Lab(path, progress=lambda m: print(m, flush=True)).down()
        assert problems == []
        assert _left(topo) == []
        assert _docker("ps", "-a", "--filter", f"label={LABEL_INSTANCE}={topo.name}", "-q").stdout.strip() == ""
        assert foreign in _docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    finally:
        _docker("rm", "-f", foreign)
