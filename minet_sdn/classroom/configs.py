"""Routers' configurations kept: `minet configs save FILE DIR`, `minet configs restore FILE DIR
[--group ASN]`, and the doors' own keeping across `lab down` / `lab up`.

    DIR/as<ASN>/<ROUTER>.conf      one folder per group, each router's running configuration

save asks each router's FRR (`show running-config`); restore writes the file as the router's
frr.conf (what a restart reads) and applies it to the running daemons (`vtysh -f`: on top of what
runs, so on a fresh router, as after `lab up`, exactly the saved configuration).

A lab keeps its door routers' configurations itself: `lab down` saves them into the instance's class
directory ($MINET_CLASS_DIR/<instance>/configs, root only) and the next `lab up` puts them back on
the freshly provisioned routers, so what a group saved survives the lab going down.
"""
from __future__ import annotations

import os
import re
import subprocess
from typing import Iterable, List, Optional, Tuple

from . import ClassError, credentials

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,15}")
MAX_CONF = 4 << 20


def kept_dir(instance: str) -> str:
    return os.path.join(credentials.instance_dir(instance), "configs")


def _routers(topo, asns: Optional[Iterable[int]]) -> List[Tuple[int, str]]:
    chosen = sorted(topo.ases) if asns is None else sorted(asns)
    return [(asn, name) for asn in chosen for name in topo.ases[asn].routers]


def running_config(place) -> str:
    proc = subprocess.run(place.vtysh_argv("show running-config"),
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or "Current configuration" not in proc.stdout:
        raise ClassError(f"{place.id}: show running-config failed: "
                         f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no answer']}")
    lines = proc.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Current configuration"))
    return "\n".join(lines[start + 1:]).strip("\n") + "\n"


def save(topo, places, directory: str, asns: Optional[Iterable[int]] = None) -> List[str]:
    """Write every router's running configuration (of `asns`, default all) under `directory`;
    the files written."""
    written = []
    for asn, name in _routers(topo, asns):
        place = places.get(f"{asn}.{name}")
        if place is None or not place.runs_frr:
            continue
        text = running_config(place)
        gdir = os.path.join(directory, f"as{asn}")
        os.makedirs(gdir, mode=0o700, exist_ok=True)
        path = os.path.join(gdir, f"{name}.conf")
        with open(path + ".tmp", "w") as fh:
            fh.write(text)
        os.chmod(path + ".tmp", 0o600)
        os.replace(path + ".tmp", path)
        written.append(path)
    return written


def saved_files(topo, directory: str, group: Optional[int] = None) -> List[Tuple[int, str, str]]:
    """(asn, router name, file) of every saved configuration under `directory` that names a router
    of `topo` (of AS `group` only, when given); ClassError for a file that names nothing."""
    if not os.path.isdir(directory):
        raise ClassError(f"{directory}: no such directory")
    out = []
    for entry in sorted(os.listdir(directory)):
        m = re.fullmatch(r"as([0-9]{1,10})", entry)
        gdir = os.path.join(directory, entry)
        if not os.path.isdir(gdir):
            continue
        if m is None or int(m.group(1)) not in topo.ases:
            raise ClassError(f"{gdir}: not a folder of an AS of {topo.name} (as<ASN>)")
        asn = int(m.group(1))
        if group is not None and asn != group:
            continue
        for fname in sorted(os.listdir(gdir)):
            name = fname[:-5] if fname.endswith(".conf") else None
            if name is None or not NAME_RE.fullmatch(name) or name not in topo.ases[asn].routers:
                raise ClassError(f"{os.path.join(gdir, fname)}: not a configuration of a router of AS{asn} "
                                 f"(routers: {', '.join(topo.ases[asn].routers)})")
            out.append((asn, name, os.path.join(gdir, fname)))
    return out


def restore_one(place, path: str) -> Optional[str]:
    """Put the configuration in `path` on router `place`: as its frr.conf and into its daemons;
    a problem, or None."""
    st = os.lstat(path)
    if not os.path.isfile(path) or os.path.islink(path) or st.st_size > MAX_CONF:
        return f"{path}: not a regular file of at most {MAX_CONF >> 20} MB"
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    conf = os.path.join(place.frr_dir, "frr.conf")
    tmp = conf + ".restore"
    with open(tmp, "w") as fh:
        fh.write(text)
    dst = os.stat(place.frr_dir)
    try:
        import pwd
        os.chown(tmp, pwd.getpwnam("frr").pw_uid, dst.st_gid)
    except (KeyError, OSError):
        pass
    os.chmod(tmp, 0o660)
    os.replace(tmp, conf)
    proc = subprocess.run(place.vtysh_argv() + ["-f", conf], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        return f"{place.id}: vtysh -f {path}: {(proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['failed']}"
    return None


def restore(topo, places, directory: str, group: Optional[int] = None) -> Tuple[int, List[str]]:
    """Restore every saved configuration (of AS `group` only, when given); (restored, problems)."""
    done, problems = 0, []
    for asn, name, path in saved_files(topo, directory, group):
        place = places.get(f"{asn}.{name}")
        if place is None or not place.runs_frr:
            problems.append(f"{path}: router {asn}.{name} is not running here")
            continue
        problem = restore_one(place, path)
        if problem:
            problems.append(problem)
        else:
            done += 1
    return done, problems
