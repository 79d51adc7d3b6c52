"""The vty guard: what a student's vtysh may ask of their router's FRR daemons.

Every router's daemons run as the one `frr` user, which owns every router's FRR directory on the
server. vtysh runs as the student (sandbox.py), but some commands make a *daemon* open a file by a
path the student chooses (`log file PATH`, `dump bgp ... PATH`, `rpki cache ... ssh USER KEYFILE`,
`banner motd file`, a VRF's `netns NAME`...). The daemon would open it as `frr`, on the server's
filesystem: another router's `frr.conf`, a full disk. The sandbox cannot stop that (the daemon is
not in it), so the broker stands between vtysh and the daemons: for a router session, each daemon
socket the sandbox shows (`/run/frr/<daemon>.vty`) is a socket of this guard, which relays to the
real one what the ALLOW-list below lets through and answers everything else itself.

Why an allow-list and not per-group daemon users: a daemon running as the group's own user still
writes wherever that user may (the server's /tmp, a full disk), the routers' daemons start before
the doors' users exist, and the provisioner, the saved configurations and the servers under
--master all rely on `frr`. What may be *sent* is a property of the course (BGP, OSPF, interfaces,
route maps, show/clear) and fits one table; a command FRR adds tomorrow is refused until it is
added here.

The rule, word by word (FRR matches any unambiguous prefix of a keyword: `conf t`, `sh ip bgp`):
  - leading `do` and `no` are kept as they are;
  - the first word must be a keyword of ALLOWED or a prefix of one (the first in ALLOWED's order:
    `sh` is `show`), and never a prefix of a keyword FRR has and ALLOWED has not (`lo`: `log`);
    where ALLOWED gives the second words too, the second word likewise; the guard sends the
    daemon the keywords it resolved, never the student's abbreviation (`ban` could be `bandwidth`
    here and `banner` to the daemon);
  - `rpki cache` only in its TCP form (HOST PORT [source ADDR] preference N: no ssh key files);
  - no argument may look like a path (a word with a `/` that is not an address or prefix).

The vty protocol (FRR lib/vty.c, vtysh/vtysh.c): vtysh sends one command line ending in a NUL byte
and waits; the daemon answers with the output, then a 4-byte trailer `\\0\\0\\0<status>` (status 1:
a warning, printed by vtysh). The daemon may pass a file descriptor with the trailer (`terminal
monitor`), so the daemon-to-vtysh direction is relayed with its SCM_RIGHTS as it comes.
"""
from __future__ import annotations

import array
import contextlib
import ipaddress
import os
import shutil
import socket
import threading
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

CMD_WARNING = 1
ANY = None
_W = frozenset
# first keyword -> the second keywords allowed (ANY: whatever follows is the command's arguments,
# none of which opens a file in FRR 8.x/9.x; checked again by the path rule)
ALLOWED: Dict[str, Optional[FrozenSet[str]]] = {
    # the session: what vtysh itself sends (XFRR_*: vtysh -f/-b batches, `terminal monitor`: logs)
    "show": ANY, "configure": _W({"terminal"}), "end": _W(), "exit": _W(), "quit": _W(),
    "write": _W({"memory", "file", "terminal", "integrated"}), "enable": _W(), "disable": _W(),
    "terminal": _W({"length", "monitor", "paginate"}), "list": ANY, "echo": ANY,
    "XFRR_start_configuration": _W(), "XFRR_end_configuration": _W(),
    "clear": _W({"ip", "ipv6", "bgp", "route-map"}), "debug": ANY, "undebug": ANY,
    # the configuration node
    "hostname": ANY, "frr": _W({"version", "defaults"}), "service": _W({"integrated-vtysh-config", "advanced-vty"}),
    "router": _W({"bgp", "ospf", "ospf6"}), "interface": ANY, "vrf": ANY, "exit-vrf": _W(),
    "route-map": ANY, "ip": ANY, "ipv6": ANY, "bgp": ANY, "access-list": ANY, "mpls": ANY,
    "line": _W({"vty"}), "exec-timeout": ANY, "access-class": ANY,
    "key": ANY, "key-string": ANY, "accept-lifetime": ANY, "send-lifetime": ANY,
    "cryptographic-algorithm": ANY, "rpki": _W({"cache", "polling_period", "expire_interval", "retry_interval",
                                             "timeout", "initial-synchronisation-timeout", "start", "stop", "reset"}),
    # router bgp
    "neighbor": ANY, "network": ANY, "aggregate-address": ANY, "redistribute": ANY, "address-family": ANY,
    "exit-address-family": _W(), "timers": ANY, "distance": ANY, "maximum-paths": ANY, "table-map": ANY,
    "coalesce-time": ANY, "update-delay": ANY, "write-quanta": ANY, "read-quanta": ANY, "import": ANY,
    "export": ANY, "rd": ANY, "rt": ANY, "route-target": ANY, "label": ANY, "vni": ANY, "advertise": ANY,
    "advertise-all-vni": ANY, "advertise-default-gw": ANY, "advertise-subnet": ANY, "autort": ANY,
    "nexthop-group": ANY, "nexthop": ANY,
    # router ospf / ospf6
    "router-id": ANY, "ospf": ANY, "ospf6": ANY, "area": ANY, "passive-interface": ANY,
    "default-information": ANY, "default-metric": ANY, "auto-cost": ANY, "log-adjacency-changes": ANY,
    "max-metric": ANY, "capability": ANY, "compatible": ANY, "refresh": ANY, "distribute-list": ANY,
    "summary-address": ANY, "mpls-te": ANY,
    # interface
    "description": ANY, "shutdown": _W(), "link-detect": _W(), "bandwidth": ANY, "multicast": _W(),
    "link-params": _W(),
    # route-map
    "match": _W({"as-path", "community", "large-community", "extcommunity", "ip", "ipv6", "interface",
                 "metric", "tag", "local-preference", "origin", "peer", "source-protocol", "source-instance",
                 "rpki", "evpn", "mac", "alias", "probability", "src-peer", "ipv4", "source-vrf"}),
    "set": _W({"as-path", "community", "comm-list", "large-community", "large-comm-list", "extcommunity",
               "extended-comm-list", "local-preference", "metric", "origin", "weight", "ip", "ipv6", "tag", "src",
               "aggregator", "atomic-aggregate", "originator-id", "label-index", "distance", "table", "evpn",
               "l3vpn", "sr-te", "aigp-metric"}),
    "call": ANY, "on-match": ANY, "continue": ANY,
}
# FRR keywords a door never sends, by the keyword they follow ("": first words). Not the gate
# (ALLOWED is, and a word is always sent as the allowed keyword it resolved to): these only turn
# their exact spelling into a clear refusal rather than the daemon's "unknown command".
NOT_ALLOWED: Dict[str, Tuple[str, ...]] = {
    "": ("log", "dump", "banner", "netns", "agentx", "fpm", "zebra", "password", "username", "module",
         "table", "pbr-map", "bmp", "output", "copy", "destination", "script"),
    "match": ("script",), "clear": ("log",), "enable": ("password",), "service": ("password-encryption",),
}
MAX_COMMAND = 1 << 16
_BLANKS = str.maketrans("\t\r\n", "   ")        # vtysh ends some lines with "\n" ("do write terminal\n")


class Refusal(ValueError):
    """Why the daemons must not run a line; shown to the student after `% `."""


def _resolve(word: str, keywords: Sequence[str], what: str, never: Sequence[str] = ()) -> str:
    """The allowed keyword `word` stands for: itself, else the first keyword (in the order given,
    the course's most used first: `sh` is `show`) it is a prefix of. The line sent carries that
    keyword, so a guess is always an allowed word; `never` (keywords FRR has and a door does not
    send) only gives their exact spelling a clear refusal."""
    low = word.lower()
    if low in keywords:
        return low
    if low in never:
        raise Refusal(f"`{low}` is not something a door may send to the router's daemons")
    for k in keywords:
        if k.lower().startswith(low):
            return k
    raise Refusal(f"{what} {word!r} is not something a door may send to the router's daemons")


def _pathlike(word: str) -> bool:
    if "/" not in word:
        return False
    try:
        ipaddress.ip_network(word, strict=False)
        return False
    except ValueError:
        return True


def _rpki_cache(words: List[str], negated: bool) -> None:
    """rpki cache HOST PORT [source ADDR] preference N: the TCP form only (the ssh form makes
    bgpd read key files by the names given)."""
    rest = words[2:]
    if len(rest) >= 4 and rest[2] == "source":
        rest = rest[:2] + rest[4:]
    preference = len(rest) == 4 and rest[2] == "preference" and rest[3].isdigit()
    tcp = len(rest) >= 2 and rest[1].isdigit() and (preference or (negated and len(rest) == 2))
    if not tcp:
        raise Refusal("rpki cache: only HOST PORT [source ADDRESS] preference N (no ssh keys) from a door")


def check(line: str) -> str:
    """The line the daemons are sent for `line` typed in a student's vtysh (keywords resolved);
    Refusal when it is not allowed."""
    words = line.split()
    lead: List[str] = []
    while words and words[0] in ("do", "no"):
        lead.append(words.pop(0))
    if not words:
        if lead:
            raise Refusal(f"{' '.join(lead)} what?")
        return line
    first = _resolve(words[0], list(ALLOWED), "command", NOT_ALLOWED.get("", ()))
    out = [first]
    seconds = ALLOWED[first]
    rest = words[1:]
    if seconds is not ANY:
        if rest:
            if not seconds:
                raise Refusal(f"{first} takes no argument from a door")
            out.append(_resolve(rest[0], sorted(seconds, key=lambda k: (len(k), k)), first,
                                NOT_ALLOWED.get(first, ())))
            rest = rest[1:]
    for word in rest:
        if _pathlike(word):
            raise Refusal(f"{word!r} looks like a file path: nothing on the server's disk from a door")
    out += rest
    if out[:2] == ["rpki", "cache"]:
        _rpki_cache(out, "no" in lead)
    return " ".join(lead + out)


def refusal(line: str) -> Optional[str]:
    """Why the daemons must not run `line` from a student's vtysh, or None."""
    try:
        check(line)
        return None
    except Refusal as exc:
        return str(exc)


def _close(*socks) -> None:
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()


class Guard:
    """One router session's guarded daemon sockets: `sockets` [(daemon socket name, guard path)].
    It runs in a child of the session's sandbox process (sandbox.py), in the group's cgroups: the relaying
    of a group's vtysh is that group's CPU and memory, not the broker's. `start=False` binds the
    sockets only (the sandbox binds them, then forks the relay that serves them: start())."""

    def __init__(self, vty_dir: str, session_dir: str, gid: int, start: bool = True):
        self.vty_dir = vty_dir
        self.dir = session_dir
        self.listeners: List[socket.socket] = []
        self.conns: List[socket.socket] = []
        self.sockets: List[Tuple[str, str]] = []
        self.reals: List[str] = []
        self.lock = threading.Lock()
        os.makedirs(session_dir, mode=0o711)
        for name in sorted(os.listdir(vty_dir)):
            real = os.path.join(vty_dir, name)
            if not name.endswith(".vty") or not _is_socket(real):
                continue
            path = os.path.join(session_dir, name)
            srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            srv.bind(path)
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)          # the group's vtysh only (its gid), not the other groups
            srv.listen(8)
            self.listeners.append(srv)
            self.sockets.append((name, path))
            self.reals.append(real)
        if start:
            self.start()

    def start(self) -> None:
        for srv, real in zip(self.listeners, self.reals):
            threading.Thread(target=self._accept, args=(srv, real), daemon=True).start()

    def _accept(self, srv: socket.socket, real: str) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                daemon.connect(real)
            except OSError:
                _close(client, daemon)
                continue
            with self.lock:
                self.conns += [client, daemon]
            threading.Thread(target=self._to_daemon, args=(client, daemon), daemon=True).start()
            threading.Thread(target=self._to_client, args=(daemon, client), daemon=True).start()

    @staticmethod
    def _to_daemon(client: socket.socket, daemon: socket.socket) -> None:
        """vtysh -> daemon, one NUL-terminated command at a time; refused ones answered here."""
        buf = b""
        try:
            while True:
                chunk = client.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\0" in buf:
                    cmd, buf = buf.split(b"\0", 1)
                    try:
                        text = cmd.decode("ascii")
                        if not text.translate(_BLANKS).isprintable():
                            raise Refusal("only printable ASCII from a door")
                        daemon.sendall(check(text).encode() + b"\0")
                    except (Refusal, UnicodeDecodeError) as exc:
                        why = str(exc) if isinstance(exc, Refusal) else "only printable ASCII from a door"
                        client.sendall(f"% {why}\n".encode() + b"\0\0\0" + bytes([CMD_WARNING]))
                if len(buf) > MAX_COMMAND:
                    break
        except OSError:
            pass
        _close(client, daemon)

    @staticmethod
    def _to_client(daemon: socket.socket, client: socket.socket) -> None:
        """daemon -> vtysh as it comes, descriptors passed on."""
        fdsize = array.array("i").itemsize
        try:
            while True:
                data, anc, _flags, _addr = daemon.recvmsg(65536, socket.CMSG_SPACE(4 * fdsize))
                fds = array.array("i")
                for level, kind, payload in anc:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[:len(payload) - len(payload) % fdsize])
                try:
                    if not data and not fds:
                        break
                    if fds:
                        client.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
                    else:
                        client.sendall(data)
                finally:
                    for fd in fds:
                        with contextlib.suppress(OSError):
                            os.close(fd)
        except OSError:
            pass
        _close(client, daemon)

    def close(self) -> None:
        _close(*self.listeners)
        with self.lock:
            _close(*self.conns)
        shutil.rmtree(self.dir, ignore_errors=True)


def _is_socket(path: str) -> bool:
    import stat
    try:
        return stat.S_ISSOCK(os.lstat(path).st_mode)
    except OSError:
        return False


def mounts(guard: Optional[Guard]) -> Sequence[Tuple[str, str]]:
    """(guard socket, name in /run/frr) the sandbox binds over the daemons' sockets."""
    return [(path, name) for name, path in guard.sockets] if guard else []
