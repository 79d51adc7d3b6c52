"""Students' doors on real servers, under `minet-provision --master` (docs/class.md).

A door lives on the server that hosts its AS (entering a device means joining its network
namespace, which only that server's kernel can do). The master (the TA's machine) is the one
source of the class's credentials: `minet class doors` lists them there. So after provisioning
every server, the master hands each server its groups' password *hashes* (SHA-512 crypt(3), a
fresh salt each time: what /etc/shadow holds and sshd checks; the password itself never leaves the
master) and door host keys, and the server makes its doors:

  master                                              server S (over the same SSH as provisioning)
  credentials.Store(instance): passwords, host keys   mktemp (0600) <- bundle JSON by SFTP
  bundle(topo, S): S's door groups only               minet-provision --topology T --server S
                                                         --doors BUNDLE --json
                                                      -> apply_bundle: users, cgroups, broker, one
                                                         sshd per door on class.listen; rm BUNDLE

`--down` runs the same with a bundle saying "down" before the servers' own teardown. A server
keeps nothing of the credentials but the users' password hashes (in /etc/shadow) and the doors'
host keys, under its doors' run directory (/run/minet-class/<instance>@<server>, root only).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, List, Optional

from ..topology.model import Topology

Progress = Callable[[str], None]
BUNDLE_VERSION = 2          # 2: password hashes (1 carried the passwords)


def door_servers(topo: Topology) -> List[str]:
    """The servers that host at least one door, in topology order."""
    if topo.classroom is None:
        return []
    asns = topo.classroom.door_asns(topo.ases)
    return [s for s in topo.servers if any(topo.ases[a].server == s for a in asns)]


def bundle(topo: Topology, server: str, down: bool, store=None) -> Dict:
    """What `server` needs to make (or remove) its doors: its groups' password hashes and host keys
    (private keys: the bundle is for that server only, sent over SSH and removed after use)."""
    from ..classroom import credentials, doors
    asns = doors.door_asns(topo, [server])
    doc: Dict = {"version": BUNDLE_VERSION, "instance": topo.name, "server": server,
                 "action": "down" if down else "up", "groups": {}}
    if down:
        return doc
    store = store or credentials.Store(topo.name)
    store.ensure(asns)
    for asn in asns:
        with open(store.host_key(asn)) as fh:
            key = fh.read()
        doc["groups"][str(asn)] = {"password_hash": store.crypt(asn), "host_key": key,
                                   "host_key_public": store.host_key_public(asn)}
    return doc


def run_dir(topo: Topology, server: str) -> str:
    from ..classroom import doors
    return doors.run_dir(f"{topo.name}@{server}")


class BundleError(ValueError):
    pass


def read_bundle(path: str, topo: Topology, server: str) -> Dict:
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a doors bundle ({exc})") from None
    if (not isinstance(doc, dict) or doc.get("version") != BUNDLE_VERSION or doc.get("instance") != topo.name
            or doc.get("server") != server or doc.get("action") not in ("up", "down")
            or not isinstance(doc.get("groups"), dict)):
        raise BundleError(f"{path}: not a doors bundle of {topo.name} for server {server}")
    return doc


def apply_bundle(topo: Topology, server: str, path: str, progress: Progress) -> Dict:
    """Server side: make or remove this server's doors from the master's bundle; a report."""
    from ..classroom import ClassError, credentials, doors
    from ..topology.places import build_places
    from .plan import state_root
    doc = read_bundle(path, topo, server)
    rdir = run_dir(topo, server)
    if doc["action"] == "down":
        problems = doors.down(topo, [server], rdir=rdir)
        return {"server": server, "action": "doors down", "ok": not problems, "problems": problems}
    wanted = doors.door_asns(topo, [server])
    given = {int(k): v for k, v in doc["groups"].items() if str(k).isdigit()}
    missing = [a for a in wanted if a not in given]
    if missing:
        raise BundleError(f"{path}: no credentials for AS {', '.join(map(str, missing))}")
    # the master's hashes and host keys, kept where root alone reads them
    try:
        store = credentials.Hashes(topo.name, os.path.join(rdir, "credentials"),
                                   {a: given[a].get("password_hash") for a in wanted})
    except ClassError as exc:
        raise BundleError(f"{path}: {exc}") from None
    for asn in wanted:
        g = given[asn]
        kdir = os.path.join(store.dir, "hostkeys")
        os.makedirs(kdir, mode=0o700, exist_ok=True)
        key = os.path.join(kdir, f"as{asn}_ed25519")
        fd = os.open(key + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(g["host_key"])
        os.replace(key + ".tmp", key)
        with open(key + ".pub", "w") as fh:
            fh.write(f"{g['host_key_public']} door-as{asn}\n")
    store.save()
    places = build_places(topo, state_root(), "netns", servers=[server])
    nodes = {node: (p.ns, p.frr_dir or p.l2_map) for node, p in places.items()}
    try:
        made = doors.up(topo, [server], nodes, progress=lambda m: progress(f"[{server}] {m}"),
                        store=store, rdir=rdir)
    except ClassError as exc:
        raise BundleError(f"doors: {exc}") from None
    return {"server": server, "action": "doors up", "ok": True,
            "doors": [{"group": d.asn, "user": d.user, "port": d.port} for d in made]}


# ---- master side ------------------------------------------------------------------------------

def push(topo: Topology, topo_path: str, down: bool, opts, progress: Progress,
         local_server: Optional[str] = None) -> List[Dict]:
    """Every door server, in parallel: send its bundle and run the server side; one result each
    ({"server", "ok", "error"?, "report"?})."""
    from . import ssh
    servers = door_servers(topo)
    if not servers:
        return []
    with open(topo_path) as fh:
        text = fh.read()
    bundles = {s: bundle(topo, s, down) for s in servers}        # read the store once, here

    def one(name: str) -> Dict:
        server = topo.servers[name]
        if name == local_server and not server.ssh:
            return _push_locally(topo_path, name, bundles[name], opts)
        return _push_over_ssh(server, text, bundles[name], opts, progress, ssh)

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        return list(pool.map(one, servers))


def _remote(opts, topo_path: str, server: str, bundle_path: str) -> str:
    argv = shlex.split(opts.remote_command) + ["--topology", topo_path, "--server", server,
                                               "--doors", bundle_path, "--json"]
    return " ".join(shlex.quote(a) for a in argv)


def _result(name: str, code: int, out: str, err: str) -> Dict:
    report = None
    for line in reversed(out.strip().splitlines()):
        try:
            report = json.loads(line)
            break
        except ValueError:
            continue
    ok = code == 0 and isinstance(report, dict) and report.get("ok", False)
    res = {"server": name, "ok": bool(ok), "report": report}
    if not ok:
        res["error"] = ((report or {}).get("error") or next((l for l in reversed(err.splitlines()) if l.strip()), None)
                        or f"exit status {code}")
    return res


def _push_locally(topo_path: str, name: str, doc: Dict, opts) -> Dict:
    import subprocess
    import sys
    import tempfile
    fd, path = tempfile.mkstemp(prefix="minet-doors.")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh)
        proc = subprocess.run([sys.executable, "-m", "minet_sdn.cli.provision", "--topology", topo_path,
                               "--server", name, "--doors", path, "--json"], capture_output=True, text=True,
                              timeout=opts.idle_timeout)
        return _result(name, proc.returncode, proc.stdout, proc.stderr)
    finally:
        os.unlink(path)


def _push_over_ssh(server, topo_text: str, doc: Dict, opts, progress: Progress, ssh) -> Dict:
    import paramiko
    t0 = time.monotonic()
    client = paramiko.SSHClient()
    try:
        error = ssh.connect(client, server, opts)
        if error:
            return {"server": server.name, "ok": False, "error": f"doors: {error}"}
        code, out, _ = ssh._exec(client, "mktemp -t minet-topology.XXXXXXXX && mktemp -t minet-doors.XXXXXXXX", 30)
        paths = out.split()
        if code != 0 or len(paths) != 2 or not all(p.startswith("/") for p in paths):
            return {"server": server.name, "ok": False, "error": f"doors: mktemp on the server failed (exit {code})"}
        try:
            with client.open_sftp() as sftp:
                with sftp.open(paths[0], "w") as fh:
                    fh.write(topo_text)
                with sftp.open(paths[1], "w") as fh:            # mktemp made it 0600
                    fh.write(json.dumps(doc))
            lines: List[str] = []

            def on_line(line: str) -> None:
                lines.append(line)
                progress(line if line.startswith(f"[{server.name}]") else f"[{server.name}] {line}")
            code, out, err = ssh._exec(client, _remote(opts, paths[0], server.name, paths[1]), opts.idle_timeout,
                                       on_stderr_line=on_line)
            res = _result(server.name, code, out, "\n".join(lines))
        finally:
            ssh._exec(client, "rm -f " + " ".join(shlex.quote(p) for p in paths), 30)
    except Exception as exc:            # one server's surprise must not take the others down
        res = {"server": server.name, "ok": False, "error": f"doors: {type(exc).__name__}: {exc}"}
    finally:
        client.close()
    res["seconds"] = round(time.monotonic() - t0, 3)
    return res
