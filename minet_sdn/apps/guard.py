"""Hardening os-ken's OpenFlow listener: installed explicitly by the controller (guard.install(),
called when the app is made and by `minet controller`), never by an import.

os-ken (and Ryu) trust whoever connects to the OpenFlow port. install() patches, once:
  * the message parser: every message is checked first (minet_sdn.core.ofcheck); a malformed
    one drops the connection, one os-ken has no business parsing is skipped; HELLO elements are
    walked with their padding and NX actions other than those of our own flows stay opaque, so
    no length field can make a parser spin;
  * Datapath.serve: when the receive side ends (peer closed, bad message, dropped as dead) the
    connection is reported DEAD at once and its send thread is woken and joined, so a closed
    connection frees both of its threads (os-ken 4's native hub cannot kill a thread, so its
    own serve() waited forever for a send thread blocked on an empty queue);
  * StreamServer.serve_forever: accept errors (out of descriptors, out of threads) are logged
    and retried instead of ending the listener; connections beyond CONNECTION_LIMITS are
    refused; if the loop ends anyway, LISTENER says so and its watchers are told.
CONNECTIONS.sweep(now), called periodically by the app, drops connections that never finish
the handshake, and sends echo requests to silent switches and drops those that stay silent.
"""
from __future__ import annotations

import errno as _errno
import importlib
import logging as _logging
import socket as _socket
import threading as _threading
import time as _time

from ..compat import FRAMEWORK

_LOG = _logging.getLogger("minet_sdn.openflow")

# Connections in all / before the switch has said who it is (no MAIN_DISPATCHER yet).
CONNECTION_LIMITS = {"total": 1024, "handshaking": 256}     # the app sizes them to its topology
HANDSHAKE_TIMEOUT = 10.0         # seconds from accept to MAIN_DISPATCHER
SEND_JOIN_TIMEOUT = 10.0
# NX action subtypes parsed structurally (the only one our flows use: reg_move); any other stays an
# opaque NXActionUnknown, which is all a foreign flow needs to be recognised as foreign.
SAFE_NX_SUBTYPES = frozenset({6})
_TRANSIENT_ACCEPT = {_errno.EMFILE, _errno.ENFILE, _errno.ENOBUFS, _errno.ENOMEM, _errno.ECONNABORTED,
                     _errno.EPROTO, _errno.EPERM, _errno.EINTR, _errno.EAGAIN}


class Listener:
    """State of the OpenFlow listener: 'starting', 'serving' or 'dead' (with the error)."""

    def __init__(self):
        self.state = "starting"
        self.address = None
        self.error = None
        self.accept_errors = 0
        self.refused = 0
        self._watchers = []

    def watch(self, callback) -> None:
        """callback(listener) once the listener is dead."""
        self._watchers.append(callback)
        if self.state == "dead":
            callback(self)

    def died(self, exc: BaseException) -> None:
        self.state, self.error = "dead", f"{type(exc).__name__}: {exc}"
        _LOG.critical("the OpenFlow listener on %s died: %s", self.address, self.error)
        for callback in list(self._watchers):
            try:
                callback(self)
            except Exception:
                _LOG.exception("listener watcher failed")


class Connections:
    """Every OpenFlow connection being served, for limits and liveness."""

    def __init__(self):
        self._lock = _threading.Lock()
        self._live: set = set()
        self.echo_interval = 5.0         # seconds of silence before an echo request
        self.dead_after = 3              # echo intervals of silence before the connection is dropped
        self.dropped = {"handshake_timeout": 0, "silent": 0, "send_failed": 0, "bad_message": 0}

    def add(self, dp) -> None:
        with self._lock:
            self._live.add(dp)

    def discard(self, dp) -> None:
        with self._lock:
            self._live.discard(dp)

    def all(self) -> list:
        with self._lock:
            return list(self._live)

    def counts(self):
        live = self.all()
        main = _handler_module().MAIN_DISPATCHER
        return len(live), sum(1 for dp in live if dp.state != main)

    def sweep(self, now: float) -> None:
        """Drop what is stuck or silent; ping what has been quiet for an echo interval."""
        h = _handler_module()
        for dp in self.all():
            state = getattr(dp, "state", None)
            if state == h.DEAD_DISPATCHER or getattr(dp, "minet_dropped", False):
                continue
            heard = getattr(dp, "minet_heard", now)
            if state != h.MAIN_DISPATCHER:
                if now - getattr(dp, "minet_accepted", now) > HANDSHAKE_TIMEOUT:
                    self.drop(dp, "handshake_timeout", f"no handshake within {HANDSHAKE_TIMEOUT:g}s")
                continue
            if getattr(dp, "send_q", True) is None:
                self.drop(dp, "send_failed", "its send side failed")
            elif now - heard > self.echo_interval * self.dead_after:
                self.drop(dp, "silent", f"silent for {now - heard:.1f}s (echo requests unanswered)")
            elif now - heard > self.echo_interval and now - getattr(dp, "minet_echoed", 0.0) > self.echo_interval:
                dp.minet_echoed = now
                try:
                    dp.send_msg(dp.ofproto_parser.OFPEchoRequest(dp, data=b"minet"))
                except Exception as exc:
                    self.drop(dp, "send_failed", f"echo request failed: {exc}")

    def drop(self, dp, why: str, text: str) -> None:
        dp.minet_dropped = True
        self.dropped[why] = self.dropped.get(why, 0) + 1
        dpid = getattr(dp, "id", None)
        _LOG.warning("dropping OpenFlow connection %s%s: %s", getattr(dp, "address", "?"),
                     f" (switch {dpid:016x})" if dpid is not None else "", text)
        try:
            dp.socket.shutdown(_socket.SHUT_RDWR)        # the receive loop sees EOF at once
        except (OSError, AttributeError):
            pass


LISTENER = Listener()
CONNECTIONS = Connections()
_HARDENED = False


def _handler_module():
    return importlib.import_module(f"{FRAMEWORK}.controller.handler")


def _round8(n: int) -> int:
    return (n + 7) & ~7


def _patch_hello(mod) -> None:
    """OFPHello.parser that steps over element padding (os-ken steps by the unpadded length, so a
    padded or zero-length element made it read the same bytes forever)."""
    import struct
    cls = getattr(mod, "OFPHello", None)
    bitmap = getattr(mod, "OFPHelloElemVersionBitmap", None)
    if cls is None or bitmap is None or getattr(cls, "_minet_patched", False):
        return
    ofp = mod.ofproto

    def parser(klass, datapath, version, msg_type, msg_len, xid, buf):
        msg = super(cls, klass).parser(datapath, version, msg_type, msg_len, xid, buf)
        offset, elements = ofp.OFP_HELLO_HEADER_SIZE, []
        while offset + 4 <= msg.msg_len:
            type_, length = struct.unpack_from("!HH", msg.buf, offset)
            if length < 4 or offset + length > msg.msg_len:
                break
            if type_ == ofp.OFPHET_VERSIONBITMAP:
                elements.append(bitmap.parser(msg.buf, offset))
            offset += _round8(length)
        msg.elements = elements
        return msg

    cls.parser = classmethod(parser)
    table = getattr(mod, "_MSG_PARSERS", None)      # dispatch goes through this table, not the class
    if table is not None and table.get(ofp.OFPT_HELLO) is not None:
        table[ofp.OFPT_HELLO] = cls.parser
    cls._minet_patched = True


def _patch_nx_actions(mod) -> None:
    nx = getattr(mod, "NXAction", None)
    unknown = getattr(mod, "NXActionUnknown", None)
    if nx is None or unknown is None or getattr(nx, "_minet_patched", False):
        return
    import struct
    original = nx.parse

    def parse(klass, buf):
        (subtype,) = struct.unpack_from("!H", buf, 0)
        if subtype not in SAFE_NX_SUBTYPES:
            return unknown(subtype, bytes(buf[2:]))
        return original(buf)

    nx.parse = classmethod(parse)
    nx._minet_patched = True


def installed() -> bool:
    return _HARDENED


def install() -> None:
    """Patch os-ken's OpenFlow listener as described above (idempotent)."""
    global _HARDENED
    if _HARDENED:
        return
    from ..core import ofcheck
    ofproto_parser = importlib.import_module(f"{FRAMEWORK}.ofproto.ofproto_parser")
    importlib.import_module(f"{FRAMEWORK}.base.app_manager")      # before controller: they import each other
    controller = importlib.import_module(f"{FRAMEWORK}.controller.controller")
    hub = importlib.import_module(f"{FRAMEWORK}.lib.hub")
    h = _handler_module()
    for name in ("ofproto_v1_3_parser", "ofproto_v1_4_parser", "ofproto_v1_5_parser"):
        try:
            mod = importlib.import_module(f"{FRAMEWORK}.ofproto.{name}")
        except ImportError:
            continue
        _patch_hello(mod)
        _patch_nx_actions(mod)

    parse = ofproto_parser.msg
    v13 = importlib.import_module(f"{FRAMEWORK}.ofproto.ofproto_v1_3_parser")

    def _WIRE_FLOW_STATS() -> bool:     # core.wire's decoder installed: it walks each entry itself
        return getattr(v13.OFPFlowStatsReply.cls_stats_body_cls, "minet_checks_entries", False)


    def guarded_msg(datapath, version, msg_type, msg_len, xid, buf):
        if not getattr(datapath, "minet_guarded", False):      # not from a connection serve() runs
            return parse(datapath, version, msg_type, msg_len, xid, buf)
        datapath.minet_heard = _time.monotonic()
        raw = bytes(buf[:msg_len])
        if len(raw) >= 4 and raw[2] << 8 | raw[3] < 8:
            raise ofcheck.BadMessage(f"header length {raw[2] << 8 | raw[3]} is shorter than the header itself")
        handshake = getattr(datapath, "state", None) == h.HANDSHAKE_DISPATCHER
        agreed = getattr(getattr(datapath, "ofproto", None), "OFP_VERSION", ofcheck.OFP13)
        # flow-stats entries are framed here and walked by core.wire before os-ken parses any
        if ofcheck.check(raw, handshake, agreed, flow_entries=not _WIRE_FLOW_STATS()) == ofcheck.SKIP:
            return None
        return parse(datapath, version, msg_type, msg_len, xid, buf)

    guarded_msg.minet_original = parse
    ofproto_parser.msg = guarded_msg

    Datapath = controller.Datapath

    def serve(self):
        self.minet_accepted = self.minet_heard = _time.monotonic()
        self.minet_guarded = True
        CONNECTIONS.add(self)
        send_thread = hub.spawn(self._send_loop)
        try:
            self.send_msg(self.ofproto_parser.OFPHello(self))
            self._recv_loop()
        except ofcheck.BadMessage as exc:
            CONNECTIONS.dropped["bad_message"] += 1
            _LOG.warning("dropping OpenFlow connection %s: %s", self.address, exc)
        except Exception as exc:            # a malformed message os-ken choked on, a handler's bug
            _LOG.warning("dropping OpenFlow connection %s: %s: %s", self.address, type(exc).__name__, exc)
            _LOG.debug("details", exc_info=True)
        finally:
            try:
                self.socket.close()
            except OSError:
                pass
            self.set_state(h.DEAD_DISPATCHER)       # tell the app now, not when a write fails
            _wake_sender(self)
            send_thread.join(SEND_JOIN_TIMEOUT)
            CONNECTIONS.discard(self)
            self.is_active = False

    Datapath.serve = serve

    def serve_forever(self):
        LISTENER.address = _address(self.server)
        LISTENER.state = "serving"
        backoff = 0.05
        try:
            while True:
                try:
                    sock, addr = self.server.accept()
                except OSError as exc:
                    if exc.errno not in _TRANSIENT_ACCEPT:
                        raise
                    _accept_trouble(exc, backoff)
                    _time.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                total, handshaking = CONNECTIONS.counts()
                if total >= CONNECTION_LIMITS["total"] or handshaking >= CONNECTION_LIMITS["handshaking"]:
                    LISTENER.refused += 1
                    if LISTENER.refused in (1, 10, 100) or LISTENER.refused % 1000 == 0:
                        _LOG.warning("refusing OpenFlow connection from %s: %d connections, %d of them "
                                     "handshaking (limits %s); %d refused so far", addr, total, handshaking,
                                     CONNECTION_LIMITS, LISTENER.refused)
                    _close_quietly(sock)
                    continue
                try:
                    hub.spawn(self.handle, sock, addr)
                except (RuntimeError, MemoryError) as exc:    # can't start new thread
                    _close_quietly(sock)
                    _accept_trouble(exc, backoff)
                    _time.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                    continue
                backoff = 0.05
        except BaseException as exc:
            LISTENER.died(exc)
            raise

    hub.StreamServer.serve_forever = serve_forever
    _HARDENED = True


def _address(sock):
    try:
        return sock.getsockname()
    except OSError:
        return None


def _accept_trouble(exc: BaseException, backoff: float) -> None:
    LISTENER.accept_errors += 1
    n = LISTENER.accept_errors
    if n in (1, 10, 100) or n % 1000 == 0:
        _LOG.error("OpenFlow listener: cannot take a connection (%s); retrying in %.2fs (%d times so far)",
                   exc, backoff, n)


def _close_quietly(sock) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _wake_sender(dp) -> None:
    """Unblock a send loop waiting on an empty queue: an empty write that asks it to stop."""
    q = getattr(dp, "send_q", None)
    sem = getattr(dp, "_send_q_sem", None)
    if q is None or sem is None:
        return
    if sem.acquire(blocking=False):
        try:
            q.put_nowait((b"", True))
        except Exception:
            sem.release()
