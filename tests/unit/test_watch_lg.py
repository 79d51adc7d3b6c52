"""Looking glass allow-list: read-only `show` commands pass, everything else is refused."""
from __future__ import annotations

import os

import pytest

from minet_sdn.cli.main import main
from minet_sdn.topology import load_topology
from minet_sdn.watch import lg

DEMO = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "demo.yaml")


@pytest.mark.parametrize("cmd", ["show bgp summary", "show bgp summary json", "show ip route",
                                 "show ip bgp 10.5.0.0/16", "show bgp ipv4 unicast neighbors 100.64.0.2 routes",
                                 "show ipv6 route", "show interface brief", "show bfd peers", "show version",
                                 "SHOW BGP SUMMARY", "  show   ip route  "])
def test_allowed(cmd):
    assert lg.check_command(cmd)[0].lower() == "show"


@pytest.mark.parametrize("cmd,why", [
    ("configure terminal", "only `show`"),
    ("clear bgp *", "only letters"),
    ("clear ip bgp all", "only `show`"),
    ("write memory", "only `show`"),
    ("show running-config", "configuration is not shown"),
    ("show run", "not on the allow-list"),
    ("show startup-config", "configuration"),
    ("show bgp summary | include Est", "only letters"),
    ("show bgp summary; conf t", "only letters"),
    ("show bgp summary\nconf t", "control characters"),
    ("show `id`", "only letters"),
    ("show thread cpu", "not on the allow-list"),
    ("sh bgp summary", "only `show`"),
    ("", "empty"),
    ("show bgp " + "x" * 300, "longer than"),
])
def test_refused(cmd, why):
    with pytest.raises(lg.Refused) as exc:
        lg.check_command(cmd)
    assert why in str(exc.value)


def test_newline_never_reaches_vtysh():
    # split() would turn a newline into a word break; the joined words are what runs
    with pytest.raises(lg.Refused):
        lg.check_command("show bgp\nsummary\nconfigure terminal")


def test_resolve_router():
    topo = load_topology(DEMO)
    assert lg.resolve_router(topo, "1") == "1.ZURI"
    assert lg.resolve_router(topo, "1", "GENE") == "1.GENE"
    assert lg.resolve_router(topo, "2.LOND") == "2.LOND"
    for bad in ("99", "1.NOPE", "x"):
        with pytest.raises(lg.Refused):
            lg.resolve_router(topo, bad)
    with pytest.raises(lg.Refused):
        lg.resolve_router(topo, "1", "PARI")


def test_cli_refuses_non_show_with_exit_2(capsys):
    assert main(["lg", DEMO, "1", "configure", "terminal"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minet lg: refused:")
    assert main(["lg", DEMO, "1", "show running-config"]) == 2
    assert main(["lg", DEMO, "42", "show bgp summary"]) == 2
