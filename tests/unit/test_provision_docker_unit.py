"""The docker backend's pure parts: container names, image choice, mirror, engine check (no root, no docker)."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minet_sdn.lab import provisioning
from minet_sdn.lab.state import LabState
from minet_sdn.provision import image as img
from minet_sdn.provision.apply import Provisioner, make_backend
from minet_sdn.provision.docker import DockerBackend, container_name
from minet_sdn.provision.netns import NetnsBackend
from minet_sdn.provision.plan import Node, build_plan
from minet_sdn.topology.places import NodePlace
from minet_sdn.topology.loader import NAME_RE, ROUTER_RE, load_topology

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")

TOPO = """
name: dkunit
servers:
  VM1: {underlay_ip: 192.0.2.1}
ases:
  1: {server: VM1, routers: [ZURI]}
  2: {server: VM1, routers: [PARI]}
links:
  - {a: 1.ZURI, b: 2.PARI, rel: peer}
"""


def node(ns: str) -> Node:
    return Node(id="1.X", kind="router", asn=1, ns=ns, forwarding=True)


@given(st.from_regex(NAME_RE, fullmatch=True), st.integers(0, 4294967295), st.from_regex(ROUTER_RE, fullmatch=True),
       st.booleans())
def test_every_node_name_is_a_valid_docker_name_unchanged(tag, asn, router, host):
    ns = f"{tag}-{asn}.{router}" + (".host" if host else "")
    assert container_name(node(ns)) == ns
    assert DOCKER_NAME.fullmatch(ns)


def test_other_names_are_sanitised_deterministically():
    assert container_name(node("a b/c")) == "a_b_c"
    assert container_name(node("-x")) == "m-x"
    assert container_name(node("a b/c")) == container_name(node("a b/c"))


def test_image_choice_option_then_env_then_default():
    assert img.image_name("mine:1", {img.IMAGE_ENV: "env:2"}) == "mine:1"
    assert img.image_name(None, {img.IMAGE_ENV: "env:2"}) == "env:2"
    assert img.image_name(None, {}) == img.default_image()
    assert img.default_image().startswith("minet-sdn/frr:")
    assert img.is_ours(img.default_image()) and not img.is_ours("frrouting/frr:v8.4.0")


def test_mirror_comes_from_apt_sources(tmp_path):
    d = tmp_path / "apt"
    (d / "sources.list.d").mkdir(parents=True)
    (d / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# http://snapshot\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n")
    assert img.debian_mirror({}, str(d)) == "http://mirror.example/debian"
    assert img.debian_mirror({img.MIRROR_ENV: "http://x/debian"}, str(d)) == "http://x/debian"
    (d / "sources.list").write_text("# c\ndeb [arch=amd64] http://one.example/debian/ bookworm main\n")
    assert img.debian_mirror({}, str(d)) == "http://one.example/debian"
    assert img.debian_mirror({}, str(tmp_path / "none")) == img.DEFAULT_MIRROR


def test_rootfs_cache_depends_on_the_package_set(tmp_path):
    a = img.rootfs_dir(str(tmp_path))
    assert a == img.rootfs_dir(str(tmp_path))
    assert a != img.rootfs_dir(str(tmp_path), img.PACKAGES + ("iperf3",))


def test_frr_ids_from_a_root_filesystem(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nfrr:x:101:104:FRR:/nonexistent:/bin/false\n")
    assert img.frr_ids_in(str(tmp_path)) == (101, 104)
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    with pytest.raises(img.ImageProblem, match="no user frr"):
        img.frr_ids_in(str(tmp_path))


def test_engine_not_running_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr(img, "DOCKER_SOCKET", str(tmp_path / "docker.sock"))
    monkeypatch.setattr(img, "docker_cli", lambda: "/usr/bin/docker")
    why = img.docker_problem()
    assert why == f"the docker engine is not running ({tmp_path}/docker.sock is missing): start dockerd"
    monkeypatch.setattr(img, "docker_cli", lambda: None)
    assert "package docker.io" in img.docker_problem()


def test_the_same_plan_drives_both_backends(tmp_path, monkeypatch):
    path = tmp_path / "t.yaml"
    path.write_text(TOPO)
    topo = load_topology(str(path))
    netns = build_plan(topo, "VM1", root=str(tmp_path))
    docker = build_plan(topo, "VM1", backend="docker", root=str(tmp_path))
    assert (netns.nodes, netns.veths, netns.routers) == (docker.nodes, docker.veths, docker.routers)
    assert isinstance(make_backend(netns), NetnsBackend)
    backend = make_backend(docker, image="some/image:1")      # nothing is asked of docker yet
    assert isinstance(backend, DockerBackend) and backend.image == "some/image:1"
    assert backend.exec_args(docker.nodes[0], ["true"])[-3:] == ["exec", "dkunit-1.ZURI", "true"]
    assert not backend.uses_host_frr and NetnsBackend.uses_host_frr
    monkeypatch.setenv(img.IMAGE_ENV, "from/env:2")
    assert Provisioner(docker).backend.image == "from/env:2"


def test_lab_passes_its_backend_to_provisioning(tmp_path):
    state = LabState(path=str(tmp_path / "lab.json"))
    assert provisioning.backend_args(state) == []
    state.backend = "docker"
    assert provisioning.backend_args(state) == ["--backend", "docker"]
    state.image = "x/y:1"
    assert provisioning.backend_args(state) == ["--backend", "docker", "--image", "x/y:1"]
    place = NodePlace(id="1.ZURI", kind="router", asn=1, server="VM1", ns="t-1.ZURI", frr_dir="/d", backend="docker")
    assert place.exec_prefix() == ["docker", "exec", "t-1.ZURI"]
    assert NodePlace("1.ZURI", "router", 1, "VM1", "t-1.ZURI", "/d").exec_prefix() == ["ip", "netns", "exec", "t-1.ZURI"]
