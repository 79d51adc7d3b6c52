"""A lab server's Open vSwitch settings (lab/servers.lab_ovs_other_config): the lab's own by default,
Open vSwitch's defaults when MINET_LAB_OVS_DEFAULTS asks for them."""
from __future__ import annotations

from minet_sdn.lab import servers


def test_lab_settings_by_default(monkeypatch):
    monkeypatch.delenv("MINET_LAB_OVS_DEFAULTS", raising=False)
    got = dict(a.split("=", 1) for a in servers.lab_ovs_other_config())
    assert got["other_config:stats-update-interval"] == "30000"
    assert got["other_config:max-revalidator"] == "2000"
    assert got["other_config:n-handler-threads"] == "1"
    monkeypatch.setenv("MINET_LAB_OVS_DEFAULTS", "0")
    assert servers.lab_ovs_other_config()


def test_defaults_on_request(monkeypatch):
    monkeypatch.setenv("MINET_LAB_OVS_DEFAULTS", "1")
    assert servers.lab_ovs_other_config() == []
