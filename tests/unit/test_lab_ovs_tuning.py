"""A lab server's Open vSwitch settings (lab/servers.lab_ovs_other_config): the lab's by default
(measured: docs/scale.md, Steady CPU), Open vSwitch's own with MINET_LAB_OVS_TUNING=0."""
from __future__ import annotations

from minet_sdn.lab import servers


def test_lab_settings_by_default(monkeypatch):
    monkeypatch.delenv("MINET_LAB_OVS_TUNING", raising=False)
    got = dict(a.split("=", 1) for a in servers.lab_ovs_other_config())
    assert got["other_config:stats-update-interval"] == "30000"
    assert got["other_config:max-revalidator"] == "2000"
    assert got["other_config:max-idle"] == "60000"          # longer than the 10 s keepalive interval
    assert got["other_config:n-handler-threads"] == "1"
    assert got["other_config:n-revalidator-threads"] == "1"
    monkeypatch.setenv("MINET_LAB_OVS_TUNING", "1")
    assert servers.lab_ovs_other_config() == [f"{k}={v}" for k, v in got.items()]


def test_open_vswitch_defaults_on_request(monkeypatch):
    monkeypatch.setenv("MINET_LAB_OVS_TUNING", "0")
    assert servers.lab_ovs_other_config() == []
