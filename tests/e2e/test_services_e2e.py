"""End to end: a small mini-Internet lab with its services (tests/fixtures/services/dns.yaml).

AS 1 runs the DNS server in ZURI's host (`services: {ZURI: [dns, matrix]}`), BASE is its
MATRIX_TARGET and MEASUREMENT router, AS 3 has none. Brought up with `Lab.up()`: the DNS server
answers a router interface name and a reverse lookup over the mini-Internet's routing (from AS 3),
every host resolves through it (resolv.conf), traceroute prints names, `minet measure` works, the
matrix runs over the MATRIX / MATRIX_TARGET hosts; `lab remove` leaves no nsd and no resolv.conf.
Needs root, OvS, FRR, sshd, nsd and dig.
"""
from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from e2e_support import live_processes, require_lab
from minet_sdn.cli.main import main
from minet_sdn.lab import quiet
from minet_sdn.lab.lab import Lab
from minet_sdn.lab.places import lab_places
from minet_sdn.topology import load_topology
from minet_sdn.watch import matrix as M
from minet_sdn.watch import nodes

pytestmark = pytest.mark.root

require_lab("nsd", "dig", "host", "traceroute")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "services" / "dns.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    data = yaml.safe_load(FIXTURE.read_text())
    data["name"] = f"sv{secrets.token_hex(2)}"
    path = str(tmp_path_factory.mktemp("services") / "dns.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh)
    topo = load_topology(path)
    try:
        summary = Lab(path, progress=lambda m: print(m, flush=True)).up()
        assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"]
        yield path, topo, lab_places(topo)
    finally:
        Lab(path, progress=quiet).remove()
        # nothing of ours is left: no resolv.conf under /etc/netns, no nsd of this lab
        left = [d for d in os.listdir("/etc/netns") if d.startswith(topo.tag + "-")] if os.path.isdir("/etc/netns") else []
        assert left == []
        assert live_processes(lambda cmd: cmd.startswith("nsd") and f"/{topo.name}/" in cmd) == []


def run_in(places, node, *argv, timeout=60):
    return subprocess.run(nodes.exec_argv(places, node, list(argv)), capture_output=True, text=True,
                          timeout=timeout)


def test_dns_answers_names_and_reverse_lookups_from_another_as(lab):
    _, _, places = lab
    out = run_in(places, "3.MUNI.host", "dig", "+short", "+time=2", "+tries=3", "@1.101.0.1", "zuri.group1", "A")
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == {"1.0.1.1", "1.101.0.2", "1.151.0.1", "179.1.3.1"}
    out = run_in(places, "3.MUNI.host", "dig", "+short", "+time=2", "+tries=3", "@1.101.0.1", "-x", "179.1.3.3")
    assert out.stdout.split() == ["muni.group3."]
    out = run_in(places, "3.MUNI.host", "dig", "+short", "+time=2", "+tries=3", "@1.101.0.1", "-x", "1:101::1")
    assert out.stdout.split() == ["host.zuri.group1."]


def test_hosts_resolve_through_it(lab):
    _, _, places = lab
    out = run_in(places, "3.MUNI.host", "host", "-t", "A", "host.base.group1")    # no server given: resolv.conf
    assert out.returncode == 0, out.stdout + out.stderr
    assert "host.base.group1 has address 1.102.0.1" in out.stdout
    out = run_in(places, "1.BASE", "host", "1.101.0.1")                           # a router resolves too
    assert "host.zuri.group1" in out.stdout


def test_traceroute_prints_names(lab):
    _, _, places = lab
    out = run_in(places, "3.MUNI.host", "traceroute", "-q", "1", "-w", "2", "host.base.group1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "muni.group3 (3.101.0.2)" in lines[1]
    assert "zuri.group1 (179.1.3.1)" in lines[2]
    assert "host.base.group1 (1.102.0.1)" in lines[-1]


def test_minet_measure(lab, capsys):
    path, _, _ = lab
    assert main(["measure", path, "--from", "3", "host.zuri.group1"]) == 0
    out = capsys.readouterr().out
    assert "host.zuri.group1 (1.101.0.1)" in out.splitlines()[-1]
    assert main(["measure", path, "--from", "1", "--ping", "-c", "1", "muni.group3"]) == 0
    assert "1 received" in capsys.readouterr().out
    assert main(["measure", path, "--from", "1", "$(reboot)"]) == 2


def test_matrix_over_the_matrix_hosts(lab):
    _, topo, places = lab
    tg = {t.asn: t for t in M.targets(topo)}
    assert (tg[1].from_node, tg[1].node) == ("1.ZURI.host", "1.BASE.host")
    m = M.run_matrix(places)
    assert m.ok_count == m.total == 2, m.to_json()


# ---- the docker backend: the same services with every node a container ----------------------------

@pytest.fixture(scope="module")
def docker_lab(tmp_path_factory):
    from tests.docker_engine import EngineUnavailable, docker_engine
    try:
        engine = docker_engine()
        eng = engine.__enter__()
    except EngineUnavailable as exc:
        pytest.skip(f"no docker engine: {exc}")
    data = yaml.safe_load(FIXTURE.read_text())
    data["name"] = f"sd{secrets.token_hex(2)}"
    eng.prefixes.append(data["name"])
    path = str(tmp_path_factory.mktemp("services-docker") / "dns.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(data, fh)
    topo = load_topology(path)
    try:
        summary = Lab(path, progress=lambda m: print(m, flush=True)).up(backend="docker")
        assert summary["bgp_sessions"]["established"] == summary["bgp_sessions"]["expected"]
        yield path, topo, lab_places(topo)
    finally:
        try:
            Lab(path, progress=quiet).remove()
            # our nsd (run from the host) is gone
            assert live_processes(lambda cmd: cmd.startswith("nsd") and f"/{topo.name}/" in cmd) == []
        finally:
            engine.__exit__(None, None, None)


def test_docker_nodes_resolve_and_trace_with_names(docker_lab):
    path, _, places = docker_lab
    # the image has no dig: glibc's resolver reads the container's resolv.conf
    # (`hosts` would prefer the AAAA record in a dual-stack container: ask for the IPv4 one)
    out = run_in(places, "3.MUNI.host", "getent", "ahostsv4", "host.base.group1")
    assert out.stdout.split()[0] == "1.102.0.1" and "host.base.group1" in out.stdout, out.stdout + out.stderr
    out6 = run_in(places, "3.MUNI.host", "getent", "ahostsv6", "host.base.group1")
    assert out6.stdout.split()[0] == "1:102::1", out6.stdout + out6.stderr
    out = run_in(places, "3.MUNI.host", "traceroute", "-4", "-q", "1", "-w", "2", "host.zuri.group1")
    assert "zuri.group1 (179.1.3.1)" in out.stdout and "host.zuri.group1 (1.101.0.1)" in out.stdout, out.stdout
    assert main(["measure", path, "--from", "3", "-n", "--ping", "-c", "1", "host.zuri.group1"]) == 0
