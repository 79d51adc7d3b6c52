"""One error type for what the user did wrong (minet_sdn/errors.py): every exception class of the
package is listed here as the user's fault (derives from UserError, told by the CLI's top level in
one line, exit 2) or not (the machine's or a peer's fault, with its own handling); a new class must
be put on one side. The CLI's top level catches the one base."""
from __future__ import annotations

import ast
import importlib
import os

import pytest

import minet_sdn
from minet_sdn.errors import UserError

ROOT = os.path.dirname(os.path.abspath(minet_sdn.__file__))

USER_FACING = {
    "minet_sdn.topology.loader.TopologyError",          # a topology file is not valid
    "minet_sdn.topology.addressing.AddressingError",    # the topology cannot be numbered
    "minet_sdn.topology.generate.GenerateError",        # `minet generate class` arguments
    "minet_sdn.topology.places.AmbiguousNode",          # a node name several ASes have
    "minet_sdn.importers.ImportProblem",                # an input folder or file cannot be imported
    "minet_sdn.importers.cli.CommandError",             # `minet import`/`partition` arguments
    "minet_sdn.lab.LabError",                           # a refused or failed lab operation
    "minet_sdn.classroom.ClassError",                   # `minet class`/`configs` input
    "minet_sdn.watch.cli.WatchUsage",                   # `minet matrix|measure|graph|lg` input
    "minet_sdn.watch.lg.Refused",                       # a looking-glass command that is not `show`
    "minet_sdn.watch.matrix.FamilyError",               # `minet matrix -6` on an IPv4-only topology
    "minet_sdn.watch.measure.MeasureError",             # `minet measure` arguments
    "minet_sdn.watch.nodes.NodeError",                  # no such node
    "minet_sdn.cli.main.UsageError",                    # a wrong command-line argument
}
NOT_USER_FACING = {
    # answered over HTTP by the controller (status codes), never reach a command line
    "minet_sdn.core.errors.ControllerError": "REST: 4xx answers",
    "minet_sdn.core.errors.NotFound": "REST: 404",
    "minet_sdn.core.errors.Conflict": "REST: 409",
    "minet_sdn.core.errors.Invalid": "REST: 400",
    "minet_sdn.rest.api.ApiError": "REST: an HTTP status and a message",
    "minet_sdn.rest.bodies.BadBody": "REST: a request body refused with 400",
    "minet_sdn.classroom.page.HttpError": "the students' page: an HTTP status and a message",
    # what a peer sent (a switch, a controller), not what the user typed
    "minet_sdn.core.ofcheck.BadMessage": "a malformed OpenFlow message from a switch",
    "minet_sdn.core.wire._Unknown": "an OpenFlow message the decoder does not know",
    "minet_sdn.core.wire.BadFlowEntry": "a flow entry from a switch the decoder cannot read",
    "minet_sdn.rest.client.ControllerUnreachable": "exit 1: nothing answers",
    "minet_sdn.rest.client.NotOurApi": "exit 1: something else answers",
    "minet_sdn.rest.client.OtherInstance": "another instance's controller (the CLI says so, exit 2)",
    # the machine's failures: their commands report them with exit 1 and roll back
    "minet_sdn.provision.journal.ProvisionError": "exit 1, rolled back",
    "minet_sdn.provision.ssh.Interrupted": "the master interrupted: every server stopped and rolled back, exit 130",
    "minet_sdn.provision.doors_remote.BundleError": "the master's doors bundle: reported per server, exit 1",
    "minet_sdn.provision.image.ImageProblem": "building the docker image failed",
    "minet_sdn.provision.netlink.NetlinkProblem": "the kernel refused",
    "minet_sdn.provision.ovs.OvsProblem": "Open vSwitch refused",
    "minet_sdn.provision.l2switchd.SwitchdProblem": "a students' switch daemon failed",
    "minet_sdn.host.Busy": "a lock held by another process",
    "minet_sdn.cli.output.OutputError": "our own stdout failed (closed pipe: 141)",
    "minet_sdn.lab.state._Shape": "internal: becomes a LabError naming the state file",
    # students' tools answer in the students' shells, with those tools' own exit codes
    "minet_sdn.classroom.goto.Refused": "the door shell shows it to the student",
    "minet_sdn.classroom.vtyguard.Refusal": "the vty guard answers it to the student's vtysh as a warning",
    "minet_sdn.provision.l2ctl.Refused": "the students' ovs-vsctl prints it",
}


def _exception_classes():
    """module.Class of every class the package defines that derives (as written) from an exception:
    read from the source, then confirmed by importing the module."""
    defined = {}
    for dirpath, _dirs, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".py") or f == "__main__.py":
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].split(os.sep)
            mod = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
            with open(path, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), path)
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.bases:
                    bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                    defined[f"{mod}.{node.name}"] = bases
    names = {"Exception", "ValueError", "KeyboardInterrupt", "UserError", "OSError", "RuntimeError"}
    found = set()
    while True:                       # classes deriving from classes found so far
        more = {q for q, bases in defined.items() if q not in found and any(b in names for b in bases)}
        if not more:
            break
        found |= more
        names |= {q.rpartition(".")[2] for q in more}
    out = set()
    for qual in found:
        mod, _, name = qual.rpartition(".")
        obj = getattr(importlib.import_module(mod), name)
        if isinstance(obj, type) and issubclass(obj, BaseException) and obj.__module__ == mod:
            out.add(qual)
    return out


def _cls(qual):
    mod, _, name = qual.rpartition(".")
    return getattr(importlib.import_module(mod), name)


def test_every_exception_class_is_classified():
    found = _exception_classes()
    assert "minet_sdn.lab.LabError" in found and "minet_sdn.core.errors.NotFound" in found    # the scan works
    found.discard("minet_sdn.errors.UserError")
    found.discard("minet_sdn.lab.cli.Terminated")        # SIGTERM as Ctrl-C (a KeyboardInterrupt)
    unclassified = found - USER_FACING - set(NOT_USER_FACING)
    assert unclassified == set(), "put each on one side: USER_FACING or NOT_USER_FACING"
    assert not (USER_FACING & set(NOT_USER_FACING))


@pytest.mark.parametrize("qual", sorted(USER_FACING))
def test_user_facing_errors_derive_from_the_base(qual):
    cls = _cls(qual)
    assert issubclass(cls, UserError) and cls.exit_code == 2


@pytest.mark.parametrize("qual", sorted(NOT_USER_FACING))
def test_the_machines_failures_are_not_user_errors(qual):
    assert not issubclass(_cls(qual), UserError)


def test_value_errors_stay_value_errors():
    """Callers that catch ValueError (argparse types, older code) still catch these."""
    for qual in ("minet_sdn.topology.generate.GenerateError", "minet_sdn.topology.places.AmbiguousNode",
                 "minet_sdn.watch.lg.Refused", "minet_sdn.watch.measure.MeasureError"):
        assert issubclass(_cls(qual), ValueError)


def test_where_and_message():
    exc = UserError("t.yaml: line 3: bad\nt.yaml: links.2: worse", file="t.yaml", line=3, key="links")
    assert (exc.file, exc.line, exc.key) == ("t.yaml", 3, "links")
    assert exc.one_line() == "t.yaml: line 3: bad"
    from minet_sdn.topology import TopologyError
    assert str(TopologyError(["a: x", "a: y"])) == "a: x\na: y"      # messages are unchanged


def test_minet_top_level_catches_the_base(monkeypatch, capsys):
    """A UserError of any package, raised anywhere under a command, is one line and exit 2."""
    from minet_sdn.cli import main
    from minet_sdn.lab import LabError
    from minet_sdn.topology.places import AmbiguousNode
    for exc in (LabError("lab.json: state unreadable"), AmbiguousNode("node name ZURI is ambiguous: 1.ZURI, 2.ZURI")):
        def boom(args, exc=exc):
            raise exc
        monkeypatch.setattr(main, "cmd_validate", boom)
        assert main.main(["validate", "x.yaml"]) == 2
        err = capsys.readouterr().err
        assert err == f"{exc}\n" and "Traceback" not in err


def test_minet_provision_top_level_catches_the_base(monkeypatch, capsys):
    from minet_sdn.cli import provision
    from minet_sdn.topology import TopologyError

    def bad(path):
        raise TopologyError([f"{path}: servers.VM1: not a mapping"])
    monkeypatch.setattr(provision.validate, "load_valid", bad)
    assert provision.main(["--topology", "t.yaml", "--server", "VM1"]) == 2
    assert capsys.readouterr().err == "t.yaml: servers.VM1: not a mapping\n"

    def worse(path):
        raise UserError("t.yaml: line 2: something new")
    monkeypatch.setattr(provision.validate, "load_valid", worse)
    assert provision.main(["--topology", "t.yaml", "--server", "VM1"]) == 2
    assert capsys.readouterr().err == "t.yaml: line 2: something new\n"
