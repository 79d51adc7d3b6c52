"""BFD dampening (core/damping.py) and what it changes in the core: a quiet tunnel's BFD-down fails
its links at once; the short downs of a flapping tunnel are held, a long one still counts."""
import pytest

from minet_sdn.core import damping
from minet_sdn.core.damping import HOLD, Damper
from minet_sdn.core.fabric import OFPPR_MODIFY, OFPPS_LIVE, FabricCore, PortInfo
from minet_sdn.core.views import link_view, metrics_text, switch_view
from minet_sdn.topology import parse_topology
from minet_sdn.topology.model import TUNNEL_OFPORT

TOPO = """
name: damp
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
links:
  - {a: 1.A, b: 2.B, rel: peer}
"""


def test_a_quiet_tunnel_is_believed_at_once():
    d = Damper()
    d.observe(1, True, 0.0)
    assert d.observe(1, False, 100.0) is True
    assert d.live(1, True) is False


def test_a_flapping_tunnel_holds_short_downs_and_counts_them():
    d = Damper()
    d.observe(1, True, 0.0)
    t, downs_acted = 10.0, 0
    for _ in range(10):                      # a blip every 2 s, each 0.3 s long
        if d.observe(1, False, t):
            downs_acted += 1
        assert d.due(t + 0.2) == []
        d.observe(1, True, t + 0.3)
        t += 2.0
    assert downs_acted <= 3                  # only the first ones, before it was known to flap
    assert d.view(1, t)["bfd_transitions"] == 20
    assert d.view(1, t)["bfd_holds"] == 10 - downs_acted


def _flapped(times: int) -> Damper:
    """A damper whose tunnel 1 went down and up again `times` times, once a second from t = 1."""
    d = Damper()
    d.observe(1, True, 0.0)
    for i in range(times):
        d.observe(1, False, 1.0 + i)
        d.observe(1, True, 1.5 + i)
    return d


def test_a_held_down_that_lasts_counts_after_the_hold():
    d = _flapped(3)
    assert d.observe(1, False, 5.0) is False     # held: the links stay up
    assert d.live(1, True) is True
    assert d.due(5.0 + HOLD - 0.01) == []
    assert d.due(5.0 + HOLD) == [1]              # a server really lost: seen HOLD later
    assert d.live(1, True) is False


def test_calm_makes_a_tunnel_trusted_again():
    d = _flapped(6)
    quiet = damping.HALF_LIFE * 5
    assert d.observe(1, False, 10.0 + quiet) is True


def _port(no, live):
    return PortInfo(no, f"p{no}", "00:00:00:00:00:01", 0, OFPPS_LIVE if live else 0)


def _synced_core():
    topo = parse_topology(TOPO)
    core = FabricCore(topo)
    for dpid, st in core.bridges.items():
        link = topo.links[0]
        core.connected(dpid, 0.0)
        core.synced(dpid, [_port(TUNNEL_OFPORT, True), _port(link.ofport, True)], [], 0.0)
    return topo, core


def test_core_links_survive_a_flapping_tunnels_blips_and_fail_on_a_lasting_down():
    topo, core = _synced_core()
    link = topo.links[0]
    dpid = next(iter(core.bridges))
    t = 1.0
    states = []
    for _ in range(6):
        core.port_status(dpid, OFPPR_MODIFY, _port(TUNNEL_OFPORT, False), t)
        states.append(core.link_state(link))
        core.tick(t + 0.3)
        core.port_status(dpid, OFPPR_MODIFY, _port(TUNNEL_OFPORT, True), t + 0.3)
        t += 1.0
    assert states[0] == "down" and states[-1] == "up"     # first believed; later blips held
    view = link_view(core, link)
    assert view["tunnel_flaps"]["bfd_transitions"] == 12 and view["tunnel_flaps"]["flapping"]
    core.port_status(dpid, OFPPR_MODIFY, _port(TUNNEL_OFPORT, False), t)
    assert core.link_state(link) == "up" and link_view(core, link)["tunnel_flaps"]["held"]
    out = core.tick(t + HOLD)
    assert core.link_state(link) == "down"
    assert out                                               # the far side is forced down now
    sw = {s["dpid"]: s for s in switch_view(core)}[f"{dpid:016x}"]
    assert sw["bfd_transitions"] == 13
    text = metrics_text(core, {}, {})
    assert 'minet_tunnel_bfd_transitions_total{server="VM1",peer="VM2"} 13' in text \
        or 'minet_tunnel_bfd_transitions_total{server="VM2",peer="VM1"} 13' in text


@pytest.mark.parametrize("written,expect", [({"bfd_interval_ms": 50}, 1), ({"bfd_interval_ms": 100}, 0),
                                            ({}, 0), ({"bfd_interval_ms": 1000}, 0)])
def test_validate_warns_of_a_written_bfd_interval_known_to_fail_at_size(written, expect):
    from minet_sdn.topology import validate
    from minet_sdn.topology.generate import class_topology
    topo = parse_topology(class_topology(60, 4), "class.yaml")
    lines = validate.scale_warnings(topo, written, cores=2)
    assert len(lines) == expect
    if expect:
        assert "\n" not in lines[0] and "fabric.bfd_interval_ms: 50 ms" in lines[0] and "240 routers per core" in lines[0]
    small = parse_topology(TOPO)
    assert validate.scale_warnings(small, written, cores=2) == []


def test_the_core_logs_each_bfd_change_it_receives(caplog):
    """The log line that times a server loss in the controller (bench/failover.py reads it)."""
    import logging
    topo, core = _synced_core()
    dpid = next(iter(core.bridges))
    with caplog.at_level(logging.INFO, logger="minet_sdn.core.fabric"):
        core.port_status(dpid, OFPPR_MODIFY, _port(TUNNEL_OFPORT, False), 100.0)
        core.port_status(dpid, OFPPR_MODIFY, _port(TUNNEL_OFPORT, True), 101.0)
    text = caplog.text
    name = core.bridges[dpid].bridge.name
    assert f"tunnel of {name}: BFD down" in text and f"tunnel of {name}: BFD up" in text
    assert "holding down port" in text


