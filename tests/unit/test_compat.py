"""Framework selection: os-ken is preferred, Ryu is the fallback, neither is a clear error."""
import pytest

from minet_sdn import compat


def test_os_ken_is_preferred_when_both_are_installed():
    assert compat.pick_framework(lambda name: name in {"os_ken", "ryu"}) == "os_ken"


def test_ryu_is_used_where_os_ken_is_missing():
    assert compat.pick_framework(lambda name: name == "ryu") == "ryu"


def test_neither_framework_is_a_clear_import_error():
    with pytest.raises(ImportError, match="os-ken"):
        compat.pick_framework(lambda name: False)


def test_this_machine_runs_os_ken_and_the_app_imports_through_the_shim():
    assert compat.FRAMEWORK == "os_ken"
    from minet_sdn.apps import remote_links
    assert issubclass(remote_links.RemoteLinks, compat.BaseApp)
    assert remote_links.RemoteLinks.OFP_VERSIONS == [compat.ofproto_v1_3.OFP_VERSION]


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        compat.no_such_module  # noqa: B018
