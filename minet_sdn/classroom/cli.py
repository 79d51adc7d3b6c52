"""What `minet class doors FILE [--json]`, `minet class passwd FILE ASN` and `minet configs ...` do
(their parsers: cli/classroom.py).

The listing says, for each door, what a TA mails to a group: where to connect from where the
command runs (the embedded lab: this machine's loopback; real servers: the server's address),
the user, the password, and the door's host key fingerprint (pinned: the same every `lab up`).
"""
from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, Dict, List

from . import ClassError, configs, credentials


def _load(path: str):
    from ..topology import TopologyError, load_topology
    try:
        return load_topology(path)
    except TopologyError as exc:
        raise ClassError(exc.problems[0])
    except OSError as exc:
        raise ClassError(f"{path}: {exc.strerror}")


def _in_lab(topo) -> bool:
    try:
        from ..lab.state import LabState
        return LabState.load(topo) is not None
    except Exception:                  # no lab package, or unreadable state: real servers
        return False


def door_address(topo, asn: int, lab: bool) -> str:
    """Where the TA (and students) connect for AS `asn`'s door."""
    if lab:
        return "127.0.0.1"
    settings = topo.classroom
    if settings.listen not in ("0.0.0.0", "::"):
        return settings.listen
    server = topo.servers[topo.ases[asn].server]
    if server.ssh:
        hostpart = server.ssh.rsplit("@", 1)[-1]
        hostpart = hostpart.rsplit(":", 1)[0] if not hostpart.startswith("[") else hostpart[1:].split("]")[0]
        return hostpart
    return server.underlay_ip


def listing(topo, store: credentials.Store, lab: bool) -> List[Dict[str, Any]]:
    out = []
    asns = topo.classroom.door_asns(topo.ases) if topo.classroom else []
    store.ensure(asns)
    for asn in asns:
        pub = store.host_key_public(asn)
        address = door_address(topo, asn, lab)
        port = topo.classroom.port(asn)
        user = credentials.user_name(topo.tag, asn)
        out.append({"group": asn, "server": topo.ases[asn].server, "address": address, "port": port,
                    "user": user, "password": store.passwords[asn],
                    "host_key": pub, "fingerprint": credentials.fingerprint(pub) if pub else None,
                    "ssh": f"ssh -p {port} {user}@{address}",
                    "known_hosts": f"[{address}]:{port} {pub}" if pub else None})
    return out


def cmd_doors(args) -> int:
    topo = _load(args.file)
    if topo.classroom is None:
        raise ClassError(f"{args.file}: no `class:` section: this topology has no doors "
                         "(add `class: {}` for the default: a door per configure: false AS)")
    _need_root()
    lab = _in_lab(topo)
    rows = listing(topo, credentials.Store(topo.name), lab)
    from .page_server import url as page_url          # the students' page (classroom/page.py)
    page = page_url(topo) if lab else None
    if args.json:
        print(json.dumps({"instance": topo.name, "doors": rows, "page": page}, indent=1))
        return 0
    if page:
        print(f"students' page: {page} ({'log in with the door user and password' if topo.classroom.page == 'groups' else 'public'})")
    if not rows:
        print(f"{topo.name}: no AS gets a door (class.doors: {topo.classroom.doors})")
        return 0
    print(f"doors of {topo.name} ({len(rows)}): connect with the ssh command, log in with the password")
    for r in rows:
        print(f"AS{r['group']:<6} {r['ssh']:<40} password {r['password']}  host key {r['fingerprint'] or '(made at lab up)'}")
    return 0


def cmd_passwd(args) -> int:
    topo = _load(args.file)
    if topo.classroom is None:
        raise ClassError(f"{args.file}: no `class:` section: this topology has no doors")
    try:
        asn = int(args.asn)
    except ValueError:
        raise ClassError(f"{args.asn!r} is not an AS number") from None
    if asn not in topo.classroom.door_asns(topo.ases):
        raise ClassError(f"AS {asn} has no door in {args.file} (doors: "
                         f"{', '.join(map(str, topo.classroom.door_asns(topo.ases))) or 'none'})")
    _need_root()
    store = credentials.Store(topo.name)
    password = store.rotate(asn)
    user = credentials.user_name(topo.tag, asn)
    from . import doors          # system users and sshd: only when a password changes (the CLI stays light)
    live = doors.ours(user, topo.name, asn) is not None
    if live:                                  # a running door takes the new password at once
        doors.set_password(user, password)
    print(f"AS{asn} {user}: new password {password}" + ("" if live else " (the door takes it at the next lab up)"))
    return 0


def _need_root() -> None:
    if os.geteuid() != 0:
        raise ClassError("the class credentials are readable by root only: run this as root")


def guarded(func):
    def run(args) -> int:
        try:
            return func(args)
        except ClassError as exc:
            print(f"minet class: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
    return run


# ---- minet configs save|restore (a running lab) -----------------------------------------------

def _lab(path: str):
    from ..lab import LabError
    from ..lab.lab import Lab
    try:
        lab = Lab(path, progress=lambda _m: None)
        lab.require()
        return lab
    except LabError as exc:
        raise ClassError(str(exc)) from None


def cmd_configs_save(args) -> int:
    lab = _lab(args.file)
    files = configs.save(lab.topo, lab.places(), args.dir)
    print(f"saved {configs.summary(files)} under {args.dir} (one folder per AS)")
    return 0


def cmd_configs_restore(args) -> int:
    lab = _lab(args.file)
    group = None
    if args.group is not None:
        if not re.fullmatch(r"[0-9]{1,10}", args.group) or int(args.group) not in lab.topo.ases:
            raise ClassError(f"--group {args.group!r} is not an AS of {args.file}")
        group = int(args.group)
    files = [f for _, _, f in configs.saved_files(lab.topo, args.dir, group)]
    done, problems = configs.restore(lab.topo, lab.places(), args.dir, group)
    for p in problems:
        print(f"minet configs restore: {p}")
    if problems:
        print(f"restored {done} of {len(files)} configurations from {args.dir}")
    else:
        print(f"restored {configs.summary(files)} from {args.dir}")
    return 1 if problems else 0


def cmd_configs_snapshot(args) -> int:
    import time
    lab = _lab(args.file)
    if args.every is not None and args.every < 60:
        raise ClassError(f"--every {args.every:g}: at least 60 seconds")
    while True:
        when = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        commit = configs.snapshot(lab.topo, lab.places(), args.repo, when)
        print(f"{when}: " + (f"commit {commit[:12]} in {args.repo}" if commit else "nothing changed"), flush=True)
        if args.every is None:
            return 0
        time.sleep(args.every)
