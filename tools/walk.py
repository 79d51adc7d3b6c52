"""How many times a reader walking `minet lab up` to one server's provisioning changes file.

The walk follows execution, as a reader would follow the code: every function of the package is
read once, where execution first reaches it, in that order; a "stop" is each time the next
function lives in another file than the one before, and a "return" is a stop in a file already
read earlier in the walk. Module bodies and what they call while being imported, and
comprehensions, are not stops; functions called again later (a loop over servers) are not read
twice. Two walks are counted: along the call path (the functions on the path to the target and
what each of them calls directly: what a reader following `lab up` opens) and through everything
that ran before the target (every helper, at any depth).

The walk crosses three processes, as `lab up` does, each traced with sys.setprofile:
  1. `minet lab up FILE`, up to lab/provisioning.py's run_provision (the hand-off to
     minet-provision --master); the lab then comes up untraced;
  2. `minet-provision --master` in the mgmt namespace, up to the first SSH connection to a server
     (provision/ssh.py provision_over_ssh), then stopped;
  3. `minet-provision --server S --json` in that server's namespace with its environment (what its
     sshd runs), up to Provisioner.up (the server's provisioning starts), then stopped.
The lab is removed at the end (also on failure). Needs root; run it under the machine's heavy lock:

    flock /work/heavy.lock python tools/walk.py topologies/demo.yaml --name walkdemo [--json OUT]

Leg mode (used for legs 2 and 3): python tools/walk.py --leg TARGET OUT -- ARGV...
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import runpy
import subprocess
import sys
import tempfile
import threading
from typing import Dict, List, Optional, Tuple

PACKAGE = os.path.dirname(os.path.abspath(__import__("minet_sdn").__file__))
NOT_READ = ("<module>", "<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>")


class Walk:
    """Records the package functions in the order execution first reaches them (each with the
    package function that called it), until `target` ("relative/file.py:qualname") is reached; then
    calls `at_target`. Calls made while a package module is being imported are left out."""

    def __init__(self, target: str, at_target) -> None:
        self.target, self.at_target = target, at_target
        self.seen: set = set()
        self.order: List[Tuple[str, str, Optional[str]]] = []     # (file, qualname, caller "file:qualname")
        self.done = False

    @staticmethod
    def _where(code) -> Tuple[str, str]:
        return os.path.relpath(code.co_filename, PACKAGE), code.co_qualname

    def profile(self, frame, event, _arg) -> None:
        if event != "call" or self.done:
            return
        code = frame.f_code
        if code in self.seen or code.co_name in NOT_READ or not code.co_filename.startswith(PACKAGE):
            return
        caller = None
        f = frame.f_back
        while f is not None:
            c = f.f_code
            if c.co_filename.startswith(PACKAGE):
                if c.co_name == "<module>":
                    return                     # import time: not part of the walk (read again later)
                if caller is None and c.co_name not in NOT_READ:
                    caller = "%s:%s" % self._where(c)
            f = f.f_back
        self.seen.add(code)
        where = self._where(code)
        self.order.append((where[0], where[1], caller))
        if f"{where[0]}:{where[1]}" == self.target:
            self.done = True
            sys.setprofile(None)
            threading.setprofile(None)
            self.at_target(self)

    def start(self) -> None:
        threading.setprofile(self.profile)
        sys.setprofile(self.profile)


Record = Tuple[str, str, Optional[str]]


def stops(order: List[Record]) -> List[str]:
    """The files of the walk, one entry per change of file."""
    out: List[str] = []
    for path, _, _ in order:
        if not out or out[-1] != path:
            out.append(path)
    return out


def on_the_path(order: List[Record]) -> List[Record]:
    """The functions a reader following the call path to the target reads: those on the path (the
    target, its caller, that one's caller...; a function run in a thread continues at the function
    that defines it) and every function they call."""
    by_name = {f"{p}:{q}": caller for p, q, caller in order}
    path, name = set(), (f"{order[-1][0]}:{order[-1][1]}" if order else None)
    while name and name not in path:
        path.add(name)
        caller = by_name.get(name)
        if caller is None and ".<locals>." in name:          # started in a thread: its definer
            caller = name.rsplit(".<locals>.", 1)[0]
        name = caller
    return [r for r in order if f"{r[0]}:{r[1]}" in path or r[2] in path]


def _figures(legs: Dict[str, List[Record]]) -> dict:
    walk = [f for leg in legs.values() for f in stops(leg)]
    visits = collections.Counter(walk)
    return {"stops": len(walk), "files": len(visits), "returns": len(walk) - len(visits),
            "legs": {name: {"functions": len(order), "stops": len(stops(order))} for name, order in legs.items()},
            "visits": dict(visits.most_common()), "walk": walk}


def summary(legs: Dict[str, List[Record]]) -> dict:
    """The walk along the path (`path`) and through everything that ran (`everything`)."""
    return {"path": _figures({n: on_the_path(o) for n, o in legs.items()}), "everything": _figures(legs),
            "functions": {name: [f"{p}:{q} <- {c}" for p, q, c in order] for name, order in legs.items()}}


# ---- leg mode: one process traced until its target, then ended -----------------------------

def leg(target: str, out: str, argv: List[str]) -> None:
    def write_and_exit(w: Walk) -> None:
        with open(out, "w") as fh:
            json.dump(w.order, fh)
        os._exit(0)          # nothing has been made yet at the target: stop the process here
    sys.argv = argv
    Walk(target, write_and_exit).start()
    runpy.run_path(argv[0], run_name="__main__")
    sys.setprofile(None)
    raise SystemExit(f"walk: {target} was never reached")


def _leg_argv(target: str, out: str, argv: List[str]) -> List[str]:
    return [sys.executable, os.path.abspath(__file__), "--leg", target, out, "--", *argv]


def _read_leg(path: str) -> List[Record]:
    with open(path) as fh:
        return [tuple(x) for x in json.load(fh)]


# ---- the whole walk -----------------------------------------------------------------------

def run(topo_file: str, name: Optional[str]) -> dict:
    from minet_sdn.cli.main import main as minet
    from minet_sdn.lab import paths
    from minet_sdn.lab.state import LabState
    from minet_sdn.lab.system import console_argv, nsenter_argv
    from minet_sdn.topology import load_topology, names

    tmp = tempfile.mkdtemp(prefix="walk-")
    path = topo_file
    if name:                                   # a copy under another name: no clash with a demo that runs
        import yaml
        with open(topo_file) as fh:
            doc = yaml.safe_load(fh)
        doc["name"] = name
        path = os.path.join(tmp, os.path.basename(topo_file))
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False)
    legs: Dict[str, List[Record]] = {}
    lab1 = Walk("lab/provisioning.py:run_provision", lambda w: legs.__setitem__("lab up", list(w.order)))
    try:
        lab1.start()
        rc = minet(["lab", "up", path])
        sys.setprofile(None)
        threading.setprofile(None)
        if rc != 0 or "lab up" not in legs:
            raise SystemExit(f"walk: `minet lab up {path}` exit {rc}")
        topo = load_topology(path)
        state = LabState.load(topo)
        server = next(iter(topo.servers))
        found = console_argv("minet-provision", "minet_sdn.cli.provision")
        if len(found) != 2:
            raise SystemExit("walk: run it with the Python of an installation that has minet-provision")
        script = found[1]
        master = [script, "--topology", state.effective_topology, "--master",
                  "--known-hosts", state.ssh.known_hosts, "--identity", state.ssh.key]
        out2 = os.path.join(tmp, "master.json")
        subprocess.run(nsenter_argv(names.mgmt_ns(topo), _leg_argv("provision/ssh.py:provision_over_ssh", out2, master)),
                       check=True, cwd=tmp)
        legs["minet-provision --master"] = _read_leg(out2)
        remote = [script, "--topology", state.effective_topology, "--server", server, "--json"]
        env = [f"{k}={v}" for k, v in paths.server_env(topo, server).items()]
        out3 = os.path.join(tmp, "server.json")
        subprocess.run(nsenter_argv(names.server_ns(topo, server),
                                    ["env", *env, *_leg_argv("provision/apply.py:Provisioner.up", out3, remote)]),
                       check=True, cwd=tmp)
        legs[f"minet-provision --server {server}"] = _read_leg(out3)
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        minet(["lab", "down", path])
    return summary(legs)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--leg":
        leg(argv[1], argv[2], argv[4:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("topology")
    p.add_argument("--name", help="run the lab under this name (a copy of the file)")
    p.add_argument("--json", help="write the whole walk (files and functions) here")
    p.add_argument("-v", "--verbose", action="store_true", help="print the walk file by file")
    args = p.parse_args(argv)
    s = run(args.topology, args.name)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(s, fh, indent=1)
    for kind, what in (("path", "along the call path (its functions and what they call)"),
                       ("everything", "through every function that ran")):
        f = s[kind]
        if args.verbose:
            print(" -> ".join(f["walk"]))
        print(f"{what}: {f['stops']} stops in {f['files']} files, {f['returns']} returns to a file already read")
        for leg_name, x in f["legs"].items():
            print(f"  {leg_name}: {x['functions']} functions, {x['stops']} stops")
        print("  most visited: " + ", ".join(f"{p} {n}" for p, n in list(f["visits"].items())[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
