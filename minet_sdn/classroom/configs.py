"""Routers' and switches' configurations kept: `minet configs save FILE DIR`, `minet configs
restore FILE DIR [--group ASN]`, and the doors' own keeping across `lab down` / `lab up`.

    DIR/as<ASN>/<ROUTER>.conf      one folder per group, each router's running configuration
    DIR/as<ASN>/<SWITCH>.ovs       each layer-2 switch's VLAN settings, as the students' ovs-vsctl
                                   commands that make them (`ovs-vsctl set port 3-H3 tag=10`)

A switch's file is read back through the students' ovs-vsctl itself (provision/l2ctl.py), so a
restore can do nothing a student could not: it clears tag, trunks and vlan_mode on every port of
the switch, then runs the file's lines.

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


SWITCH_COLUMNS = ("tag", "trunks", "vlan_mode")


def _switches(topo, asns: Optional[Iterable[int]]) -> List[Tuple[int, str]]:
    chosen = sorted(topo.ases) if asns is None else sorted(asns)
    return [(asn, s.name) for asn in chosen if getattr(topo.ases[asn], "layer2", None) is not None
            for s in topo.ases[asn].layer2.switches]


def switch_config(place) -> str:
    """A switch's VLAN settings as students' ovs-vsctl commands (student port names)."""
    from ..provision import l2ctl, l2switchd
    try:
        sw = l2ctl.Switch(place.l2_map, place.id)
        rows = sw.port_rows()
    except (l2ctl.Refused, l2switchd.SwitchdProblem, OSError) as exc:
        raise ClassError(f"{place.id}: cannot read the switch: {exc}") from None
    lines = [f"# switch {place.id}: VLAN settings (minet configs save); `ovs-vsctl` commands on its ports"]
    for port in sorted(rows):
        sets = []
        for col in SWITCH_COLUMNS:
            v = rows[port].get(col)
            if v in (None, [], {}):
                continue
            if col == "trunks":
                v = ",".join(str(x) for x in (v if isinstance(v, list) else [v]))
            sets.append(f"{col}={v}")
        if sets:
            lines.append(f"ovs-vsctl set port {port} {' '.join(sets)}")
    return "\n".join(lines) + "\n"


def _write(directory: str, asn: int, fname: str, text: str) -> str:
    gdir = os.path.join(directory, f"as{asn}")
    os.makedirs(gdir, mode=0o700, exist_ok=True)
    path = os.path.join(gdir, fname)
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)
    return path


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
    """Write every router's running configuration and every switch's VLAN settings (of `asns`,
    default all) under `directory`; the files written."""
    asns = None if asns is None else list(asns)
    written = []
    for asn, name in _routers(topo, asns):
        place = places.get(f"{asn}.{name}")
        if place is None or not place.runs_frr:
            continue
        written.append(_write(directory, asn, f"{name}.conf", running_config(place)))
    for asn, name in _switches(topo, asns):
        place = places.get(f"{asn}.{name}")
        if place is None or not place.l2_map:
            continue
        written.append(_write(directory, asn, f"{name}.ovs", switch_config(place)))
    return written


def saved_files(topo, directory: str, group: Optional[int] = None) -> List[Tuple[int, str, str]]:
    """(asn, router or switch name, file) of every saved configuration under `directory` that names
    a router (NAME.conf) or a switch (NAME.ovs) of `topo` (of AS `group` only, when given);
    ClassError for a file that names nothing."""
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
        switches = [s for a, s in _switches(topo, [asn])]
        for fname in sorted(os.listdir(gdir)):
            stem, _, ext = fname.rpartition(".")
            known = topo.ases[asn].routers if ext == "conf" else switches if ext == "ovs" else ()
            if not NAME_RE.fullmatch(stem) or stem not in known:
                raise ClassError(f"{os.path.join(gdir, fname)}: not a configuration of a router of AS{asn} "
                                 f"(routers: {', '.join(topo.ases[asn].routers)})"
                                 + (f" or of a switch (NAME.ovs; switches: {', '.join(switches)})" if switches else ""))
            out.append((asn, stem, os.path.join(gdir, fname)))
    return out


def switch_commands(path: str, text: str) -> List[List[str]]:
    """The ovs-vsctl argument lists of a saved switch file; ClassError naming the line otherwise
    (the allow-list itself is l2ctl's, applied when they run)."""
    import shlex
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise ClassError(f"{path}:{n}: {exc}") from None
        if words[:1] != ["ovs-vsctl"] or len(words) < 2:
            raise ClassError(f"{path}:{n}: not an `ovs-vsctl ...` line")
        out.append(words[1:])
    return out


def restore_switch(place, path: str, text: str) -> Optional[str]:
    """Clear tag, trunks and vlan_mode on every port of switch `place`, then run the saved
    commands through the students' ovs-vsctl; a problem, or None."""
    from ..provision import l2ctl
    try:
        commands = switch_commands(path, text)
    except ClassError as exc:
        return str(exc)
    code, out, err = l2ctl.execute(place.l2_map, place.id, ["list-ports", "br0"])
    if code != 0:
        return f"{place.id}: {err.strip()}"
    for port in out.split():
        code, _, err = l2ctl.execute(place.l2_map, place.id, ["clear", "port", port, *SWITCH_COLUMNS])
        if code != 0:
            return f"{place.id}: {err.strip()}"
    for argv in commands:
        code, _, err = l2ctl.execute(place.l2_map, place.id, argv)
        if code != 0:
            return f"{path}: {' '.join(argv)[:80]}: {err.strip()}"
    return None


def restore_one(place, path: str) -> Optional[str]:
    """Put the configuration in `path` on router or switch `place` (a router: as its frr.conf and
    into its daemons); a problem, or None."""
    st = os.lstat(path)
    if not os.path.isfile(path) or os.path.islink(path) or st.st_size > MAX_CONF:
        return f"{path}: not a regular file of at most {MAX_CONF >> 20} MB"
    with open(path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    if place.l2_map:
        return restore_switch(place, path, text)
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
        if place is None or not (place.runs_frr or place.l2_map):
            problems.append(f"{path}: {asn}.{name} is not running here")
            continue
        problem = restore_one(place, path)
        if problem:
            problems.append(problem)
        else:
            done += 1
    return done, problems


def summary(files: Iterable[str]) -> str:
    """`N router configurations[ and M switch configurations]` of a list of saved files."""
    files = list(files)
    switches = sum(1 for f in files if f.endswith(".ovs"))
    text = f"{len(files) - switches} router configurations"
    return text + (f" and {switches} switch configurations" if switches else "")


# ---- snapshots into a git repository: what changed, per group, over time ----------------------

GIT_IDENTITY = ("-c", "user.name=minet-sdn", "-c", "user.email=minet-sdn@localhost")


def _git(repo: str, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", repo, *GIT_IDENTITY, *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise ClassError(f"{repo}: git {args[0]} failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    return proc


def commit_snapshot(repo: str, when: str) -> Optional[str]:
    """Commit what changed under `repo` (as<ASN>/ folders), the message naming each group's changed
    files; the new commit's hash, or None when nothing changed."""
    if not os.path.isdir(os.path.join(repo, ".git")):
        os.makedirs(repo, mode=0o700, exist_ok=True)
        _git(repo, "init", "-q")
    _git(repo, "add", "-A", "--", ".")
    changed = [line[3:] for line in _git(repo, "status", "--porcelain").stdout.splitlines() if line[3:]]
    if not changed:
        return None
    groups: dict = {}
    for path in changed:
        folder, _, fname = path.strip('"').partition("/")
        m = re.fullmatch(r"as([0-9]+)", folder)
        key = f"AS{m.group(1)}" if m else folder
        groups.setdefault(key, []).append(fname or folder)
    order = sorted(groups, key=lambda k: (not k.startswith("AS"), int(k[2:]) if k[2:].isdigit() else 0, k))
    body = "\n".join(f"{k}: {', '.join(sorted(groups[k]))}" for k in order)
    _git(repo, "commit", "-q", "-m", f"snapshot {when}: {len(order)} groups changed", "-m", body)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def snapshot(topo, places, repo: str, when: str, asns: Optional[Iterable[int]] = None) -> Optional[str]:
    """Save every router's and switch's configuration into git repository `repo` (made when
    missing) and commit what changed; the commit, or None."""
    save(topo, places, repo, asns)
    return commit_snapshot(repo, when)
