"""A provisioning failure is one bounded line; the whole text goes to a file the line names."""
from minet_sdn.messages import ERROR_LINE_LIMIT, clip_line
from minet_sdn.provision.apply import Provisioner
from minet_sdn.provision.plan import build_plan
from minet_sdn.topology import load_topology
from minet_sdn.provision import ssh


def test_clip_line():
    assert clip_line("a\n  b") == "a b"
    long = "x" * 50_000
    out = clip_line(long, 100)
    assert len(out) == 100 and out.endswith("[49900 more characters]")


def test_a_huge_error_is_one_line_naming_the_full_text(tmp_path):
    plan = build_plan(load_topology("topologies/demo.yaml"), "VM1", root=str(tmp_path))
    prov = Provisioner(plan)
    what = "ovs-vsctl failed: " + " -- add-port b p" * 5000 + "\nline two"
    line = prov._bounded(what)
    assert "\n" not in line and len(line) <= ERROR_LINE_LIMIT
    path = prov.error_log_path()
    assert path in line and open(path).read() == what + "\n"
    assert prov._bounded("short error") == "short error"


def test_master_result_line_is_bounded():
    r = ssh.ServerResult(server="VM1", ok=False, via="ssh", error="boom " * 20_000)
    assert len(r.line()) < ERROR_LINE_LIMIT + 100
