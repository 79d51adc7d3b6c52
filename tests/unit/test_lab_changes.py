"""What `lab up` names when the file of a running lab changed (lab/changes.py), and how `lab status`
shows a flapping tunnel (lab.format_status)."""
from minet_sdn.lab.changes import differences
from minet_sdn.lab.lab import flap_note, format_status
from minet_sdn.topology import parse_topology

BASE = """
name: chg
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases:
  1: {server: VM1, routers: [A, B]}
  2: {server: VM2, routers: [C]}
links:
  - {a: 1.A, b: 2.C, rel: peer}
  - {a: 1.B, b: 2.C, rel: provider}
"""


def test_no_difference_for_a_comment():
    assert differences(parse_topology(BASE), parse_topology(BASE + "# a comment\n")) == []


def test_an_added_as_a_removed_link_and_a_renamed_router_are_named():
    now = parse_topology(BASE.replace("routers: [A, B]", "routers: [A, D]")
                         .replace("  - {a: 1.B, b: 2.C, rel: provider}\n", "")
                         .replace("  2: {server: VM2, routers: [C]}", "  2: {server: VM2, routers: [C]}\n  3: {server: VM2, routers: [E]}"))
    diff = differences(parse_topology(BASE), now)
    assert "ASes added: 3" in diff
    assert "routers added: 1.D, 3.E" in diff and "routers removed: 1.B" in diff
    assert "links removed: 1.B-2.C" in diff


def test_a_changed_relationship_and_fabric_are_named():
    now = parse_topology(BASE.replace("rel: provider", "rel: customer") + "fabric: {bfd_interval_ms: 300}\n")
    diff = differences(parse_topology(BASE), now)
    assert "fabric changed: bfd_interval_ms" in diff
    assert "links with another relationship or shaping: 2" in diff


def test_status_says_a_tunnel_flaps_and_when_a_down_is_held():
    assert flap_note(None) == "" and flap_note({"bfd_transitions": 0}) == ""
    assert "FLAPPING" not in flap_note({"bfd_transitions": 2, "held": False, "flapping": False})
    st = {"name": "chg", "phase": "up", "state_dir": "/x", "backend": "netns",
          "mgmt": {"ns": "chg-mgmt", "ip": "10.0.0.1", "subnet": "10.0.0.0/24", "controller": {"alive": True}},
          "servers": {}, "bgp": [], "problems": [], "notes": ["FILE changed since `lab up`"],
          "links": [{"id": 1, "a": "1.A", "b": "2.C", "rel": "peer", "servers": ["VM1", "VM2"], "remote": True,
                     "state": "up", "tunnel_live": True,
                     "tunnel_flaps": {"bfd_transitions": 9, "held": True, "flapping": True}}]}
    text = format_status(st)
    assert "9 BFD transitions: FLAPPING, a BFD-down is held before it fails the link" in text
    assert "note: FILE changed since" in text
