"""A lab server's Open vSwitch settings (lab/servers.lab_ovs_other_config): Open vSwitch's own
unless MINET_LAB_OVS_TUNING=1 asks for the lab's (not measured yet, so not the default)."""
from __future__ import annotations

from minet_sdn.lab import servers


def test_lab_settings_on_request(monkeypatch):
    monkeypatch.setenv("MINET_LAB_OVS_TUNING", "1")
    got = dict(a.split("=", 1) for a in servers.lab_ovs_other_config())
    assert got["other_config:stats-update-interval"] == "30000"
    assert got["other_config:max-revalidator"] == "2000"
    assert got["other_config:n-handler-threads"] == "1"


def test_open_vswitch_defaults_otherwise(monkeypatch):
    monkeypatch.delenv("MINET_LAB_OVS_TUNING", raising=False)
    assert servers.lab_ovs_other_config() == []
    monkeypatch.setenv("MINET_LAB_OVS_TUNING", "0")
    assert servers.lab_ovs_other_config() == []
