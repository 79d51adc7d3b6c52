"""The os-ken application: a thin shell around minet_sdn.core.fabric.FabricCore.

It decodes OpenFlow events, calls the core, sends the messages the core returns and starts the
syncs it asks for (Out.syncs); what is in flight with the switches (syncs, multipart replies,
counter polls, bundles) is kept by core/exchanges.py. It serves the REST API and polls flow
counters on demand. All logic lives in the core, which has no socket. The hardening of os-ken's
OpenFlow listener (apps/guard.py) is installed when the app is made, not by an import.

Run it with `minet controller --topology FILE` (os-ken, the supported runtime). On a legacy host
with Ryu, `MINET_TOPOLOGY=FILE ryu-manager minet_sdn.apps.remote_links` also works.
"""
from __future__ import annotations

import functools
import gc
import json
import logging
import os
import threading
import time
from collections import Counter
from typing import Dict, List, Optional

from ..compat import BaseApp, handler, ofp_event, ofproto_v1_3
from ..core import flows, ofmsg, wire
from ..core.exchanges import Exchanges
from ..core.fabric import FabricCore, Out, PortInfo, ids_for_keys
from ..core.flows import link_flows
from ..core.views import Counters, link_counters, link_view, metrics_text, switch_view
from ..core.errors import Conflict, Invalid, NotFound
from ..rest.api import make_app
from ..rest import auth as rest_auth
from ..rest.bodies import matrix_body_bound
from ..rest.server import MAX_BODY, serve_in_thread
from ..topology import TopologyError, load_topology
from . import guard

MAIN, DEAD = handler.MAIN_DISPATCHER, handler.DEAD_DISPATCHER
TICK_SECONDS = 0.25
STATS_TIMEOUT = 3.0

# Set by `minet controller` before the app starts; MINET_TOPOLOGY / MINET_REST / MINET_CONTROLLER_STATE
# serve ryu-manager. echo_interval: seconds of silence before a switch is sent an echo request (it is
# dropped after 3 such intervals); on_fatal(reason): called when the process cannot go on (the
# OpenFlow listener died), `minet controller` exits non-zero. rest_names: DNS names clients may put in
# Host besides addresses and localhost (rest/server.check_host; MINET_REST_NAMES, comma-separated).
CONFIG: Dict[str, object] = {"topology": None, "rest": None, "state": None, "echo_interval": None,
                             "on_fatal": None, "rest_names": None}


def default_state_path(name: str) -> str:
    """Where the controller keeps what must survive a restart (operator failures)."""
    root = os.environ.get("MINET_STATE_DIR") or "/var/lib/minet-sdn"
    return os.path.join(root, name, "controller-state.json")


def load_failed(path: str, topo, logger) -> List[int]:
    """Link ids the state file says an operator failed, in `topo`'s numbering.

    The file names each link by its endpoints ({"a", "b", "n"}: see core.fabric.link_keys), so a
    failure follows its link when the topology file changed while the controller was away. The
    older form (`failed_links`: ids) is still read. Anything else is not trusted: a warning, and
    the file is ignored as a whole."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(STATE_MAX_BYTES + 1)
    except FileNotFoundError:
        return []
    except OSError as exc:
        logger.warning("ignoring unreadable controller state %s: %s", path, exc.strerror or exc)
        return []
    try:
        if len(raw) > STATE_MAX_BYTES:
            raise ValueError(f"larger than {STATE_MAX_BYTES} bytes")
        data = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
        return sorted(_failed_ids(data, topo))
    except (ValueError, RecursionError) as exc:          # JSONDecodeError and UnicodeDecodeError are ValueErrors
        logger.warning("ignoring controller state %s: %s", path, str(exc).splitlines()[0][:200])
        return []


STATE_MAX_BYTES = 16 << 20


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number")


def _failed_ids(data, topo) -> set:
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    if "topology" in data and data["topology"] != topo.name:
        raise ValueError(f"it belongs to topology {data['topology']!r}, not {topo.name!r}")
    if "failed" in data:
        entries = data["failed"]
        if not isinstance(entries, list):
            raise ValueError("'failed' is not a list")
        keys = []
        for i, entry in enumerate(entries, start=1):
            if not (isinstance(entry, dict) and isinstance(entry.get("a"), str) and isinstance(entry.get("b"), str)
                    and _plain_int(entry.get("n", 0)) and entry.get("n", 0) >= 0):
                raise ValueError(f"failed[{i}] is not {{\"a\": ROUTER, \"b\": ROUTER, \"n\": N}}")
            a, b = sorted((entry["a"], entry["b"]))
            keys.append((a, b, entry.get("n", 0)))
        return ids_for_keys(topo, keys) & {link.id for link in topo.tunnelled}
    ids = data.get("failed_links", [])
    if not isinstance(ids, list):
        raise ValueError("'failed_links' is not a list")
    for lid in ids:
        if not (_plain_int(lid) and 1 <= lid <= len(topo.link_by_id)):     # links, then IXP segments
            raise ValueError(f"'failed_links' holds {json.dumps(lid)[:40]}, not a link id of {topo.name} "
                             f"(1..{len(topo.link_by_id)})")
    return set(ids) & {link.id for link in topo.tunnelled}


def _plain_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def guarded(method):
    """An event handler that holds the core's lock and logs a failure instead of taking the
    controller down (os-ken 4 runs handlers, REST requests and the tick on separate threads)."""
    @functools.wraps(method)
    def wrapper(self, ev):
        try:
            with self.lock:
                method(self, ev)
        except Exception:
            self.extra["handler_error"] += 1
            self.logger.exception("error handling %s", type(ev).__name__)
    return wrapper


def port_info(port) -> PortInfo:
    name = port.name.decode(errors="replace") if isinstance(port.name, bytes) else str(port.name)
    return PortInfo(port_no=port.port_no, name=name, hw_addr=port.hw_addr, config=port.config, state=port.state)


def prepare_flows(topo) -> int:
    """Derive (core/flows.py) and encode (core/wire.py) every flow of every bridge of `topo` at
    load time, as Faucet does on a config load, so that a (re)sync only compares and writes."""
    flows.prepare(topo)
    n = 0
    for bridge in topo.bridges.values():
        for lid in bridge.link_ids:
            for flow in link_flows(topo, bridge, topo.link(lid)):
                wire.flow_mod_bytes(flow, ofproto_v1_3.OFPFC_ADD)
                n += 1
    return n


def settle_heap() -> None:
    """Move what is alive now (the topology: ~1 KB of objects per link) out of the cyclic GC's
    sight. Without this, the objects a sync creates (tens of thousands of flows, all alive until
    it ends) trigger full collections that walk the whole topology again and again."""
    gc.collect()
    gc.freeze()


class RemoteLinks(BaseApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        install()
        path = CONFIG.get("topology") or os.environ.get("MINET_TOPOLOGY")
        if not path:
            raise RuntimeError("no topology: run `minet controller --topology FILE` or set MINET_TOPOLOGY")
        self.topo_path = str(path)
        self.topo = load_topology(self.topo_path)
        self.state_path = str(CONFIG.get("state") or os.environ.get("MINET_CONTROLLER_STATE")
                              or default_state_path(self.topo.name))
        failed = load_failed(self.state_path, self.topo, self.logger)
        try:        # the REST token beside the state file (rest/auth.py): writes need it
            self.rest_token: Optional[str] = rest_auth.ensure_token(os.path.dirname(os.path.abspath(self.state_path)))
        except OSError as exc:
            self.logger.error("no REST token (%s): every REST request that changes state is refused", exc)
            self.rest_token = None
        self.core = FabricCore(self.topo, failed=failed)
        prepare_flows(self.topo)
        settle_heap()
        if self.core.failed:
            self.logger.warning("links still failed by an operator: %s", sorted(self.core.failed))
        self.lock = threading.RLock()
        self.datapaths: Dict[int, object] = {}
        self.extra: Counter = Counter()
        self.exchanges = Exchanges()        # syncs, multipart replies, counter polls, bundles in flight
        self._warned: set = set()
        self._bundle_seq = 0
        rest = CONFIG.get("rest") or os.environ.get("MINET_REST")
        self.rest_addr = rest or (self.topo.controller.rest_host, self.topo.controller.rest_port)
        self.rest_server = None
        echo = CONFIG.get("echo_interval") or os.environ.get("MINET_ECHO_INTERVAL")
        if echo:
            guard.CONNECTIONS.echo_interval = float(echo)
        self._size_connection_limits()
        if os.environ.get("MINET_OFP_HANDSHAKE_TIMEOUT"):           # tests: seconds to finish the handshake
            guard.HANDSHAKE_TIMEOUT = float(os.environ["MINET_OFP_HANDSHAKE_TIMEOUT"])

    def _size_connection_limits(self) -> None:
        """Room for every bridge of the topology to connect (twice: a reconnect may overlap the
        old connection) plus strangers; the handshaking bound stays small."""
        guard.CONNECTION_LIMITS["total"] = max(1024, 2 * len(self.topo.bridges) + 64)
        guard.CONNECTION_LIMITS["handshaking"] = max(256, len(self.topo.bridges) // 4)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self):
        thread = super().start()
        if self.rest_addr:
            names = CONFIG.get("rest_names") or os.environ.get("MINET_REST_NAMES", "").split(",")
            self.rest_server = serve_in_thread(tuple(self.rest_addr), make_app(self),
                                               names=[n for n in names if n],
                                               max_body=max(MAX_BODY, matrix_body_bound(len(self.topo.ases))))
            self.logger.info("REST API on http://%s:%s", *self.rest_addr)
        threading.Thread(target=self._tick_loop, name="minet-tick", daemon=True).start()
        guard.LISTENER.watch(self._listener_died)
        return thread

    def _listener_died(self, listener) -> None:
        """Without its OpenFlow listener the controller is useless: say so, and stop the process."""
        self.logger.critical("OpenFlow listener dead (%s): the controller stops", listener.error)
        on_fatal = CONFIG.get("on_fatal")
        if callable(on_fatal):
            # a moment for /healthz to say why before the process goes away
            timer = threading.Timer(1.0, on_fatal, args=(f"the OpenFlow listener died: {listener.error}",))
            timer.daemon = True
            timer.start()

    def _tick_loop(self):
        while True:
            time.sleep(TICK_SECONDS)
            try:
                guard.CONNECTIONS.sweep(time.monotonic())
                with self.lock:
                    self._send(self.core.tick(time.monotonic()))
            except Exception:
                self.logger.exception("periodic tick failed")

    # ---- sending -----------------------------------------------------------------------------
    def _send(self, out: Out) -> None:
        """Start the syncs the core asked for (Out.syncs), then send its messages, packed into
        ~64 KiB writes (one queue hand-over and one syscall per chunk instead of per message: tens
        of thousands of FlowMods on a resync), every run of FlowMods inside one atomic bundle
        (core/wire.py: Packer)."""
        for dpid, requests in out.syncs.items():
            dp = self.datapaths.get(dpid)
            if dp is not None:
                self._start_sync(dp, requests)
        for dpid, msgs in out.items():
            dp = self.datapaths.get(dpid)
            if dp is None or not msgs:
                continue

            def other(msg, xid, dp=dp):
                msg.datapath = dp
                msg.xid = None
                msg.set_xid(xid)
                msg.serialize()
                self.extra["sent_" + (ofmsg.kind(msg) or "msg")] += 1
                return msg.buf

            packer = wire.Packer(dp.xid, self._next_bundle_id)
            for chunk in packer.stream(msgs, other):         # the switch parses while we pack
                dp.send(chunk)
            dp.xid = packer.xid & ofproto_v1_3.MAX_XID         # as os-ken's Datapath.set_xid counts
            mods = sum(1 for m in msgs if type(m) is wire.PackedFlowMod)
            if mods:
                self.extra["sent_FlowMod"] += mods
            for bid, commit_xid, n in packer.bundles:
                self.extra["sent_bundle"] += 1
                self.exchanges.bundle_sent(dpid, commit_xid, bid, n)

    def _next_bundle_id(self) -> int:
        self._bundle_seq = (self._bundle_seq + 1) & 0xFFFFFFFF
        return self._bundle_seq

    def _send_one(self, dp, msg) -> None:
        msg.datapath = dp
        dp.send_msg(msg)
        self.extra["sent_" + (ofmsg.kind(msg) or "msg")] += 1

    # ---- OpenFlow events ---------------------------------------------------------------------
    @handler.set_ev_cls(ofp_event.EventOFPStateChange, [MAIN, DEAD])
    @guarded
    def state_change(self, ev):
        dp = ev.datapath
        dpid = dp.id
        if ev.state == DEAD:
            if dpid is not None and self.datapaths.get(dpid) is dp:
                del self.datapaths[dpid]
                self.exchanges.disconnected(dpid)
                self._send(self.core.disconnected(dpid, time.monotonic()))
                self.logger.warning("switch %016x disconnected", dpid)
            return
        if not self.core.known(dpid):
            self.extra["unknown_switch"] += 1
            if dpid not in self._warned:
                self._warned.add(dpid)
                self.logger.warning("switch %016x is not in topology %s; leaving it alone", dpid, self.topo.name)
            return
        self.datapaths[dpid] = dp
        self._send(self.core.connected(dpid, time.monotonic()))          # its sync: Out.syncs
        self.logger.info("switch %016x (%s) connected; reading its ports and flows", dpid,
                         self.topo.bridges[dpid].name)

    def _start_sync(self, dp, requests: List[object]) -> None:
        """Send the core's sync requests (ports, flows) and wait for their answers (_sync_part);
        a sync already in flight is superseded (its late answers are ignored)."""
        for msg in requests:
            self._send_one(dp, msg)
        self.exchanges.sync_started(dp.id, [(msg.xid, ofmsg.kind(msg)) for msg in requests])

    def _multipart(self, ev) -> Optional[list]:
        """All parts of a multipart reply, once the last one is in."""
        msg = ev.msg
        return self.exchanges.part(msg.datapath.id, msg.xid, msg.body,
                                   bool(msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE))

    @handler.set_ev_cls(ofp_event.EventOFPPortDescStatsReply, MAIN)
    @guarded
    def port_desc_reply(self, ev):
        body = self._multipart(ev)
        if body is not None:
            self._sync_part(ev.msg.datapath.id, ev.msg.xid, [port_info(p) for p in body])

    @handler.set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN)
    @guarded
    def flow_stats_reply(self, ev):
        body = self._multipart(ev)
        if body is None:
            return
        dpid, xid = ev.msg.datapath.id, ev.msg.xid
        if self.exchanges.waited(dpid, xid, body):          # a counter poll's
            return
        self._sync_part(dpid, xid, [ofmsg.flow_from_stats(s) for s in body])

    @handler.set_ev_cls(ofp_event.EventOFPAggregateStatsReply, MAIN)
    @guarded
    def aggregate_reply(self, ev):
        """The answer to the core's periodic audit: how many flows the switch holds."""
        dpid = ev.msg.datapath.id
        if dpid is None or self.datapaths.get(dpid) is not ev.msg.datapath:
            return
        body = ev.msg.body
        count = getattr(body, "flow_count", None)
        if not isinstance(count, int):
            return
        self._send(self.core.audited(dpid, count, time.monotonic()))     # guarded holds the lock

    def _sync_part(self, dpid: int, xid: int, value: list) -> None:
        done = self.exchanges.answered(dpid, xid, value)
        if done is not None:
            was = gc.isenabled()
            gc.disable()        # tens of thousands of flows and messages, all alive until sent
            try:
                out = self.core.synced(dpid, done.ports, done.flows, time.monotonic(), later=done.later)
                sent = sum(len(m) for m in out.values())
                self._send(out)
            finally:
                if was:
                    gc.enable()
            self.logger.info("switch %016x synced: %d messages", dpid, sent)

    @handler.set_ev_cls(ofp_event.EventOFPPortStatus, MAIN)
    @guarded
    def port_status(self, ev):
        msg = ev.msg
        dpid = msg.datapath.id
        if not self.core.known(dpid):
            return
        # a sync in flight takes it (before the port list: superseded; after: applied on top)
        if self.exchanges.port_event(dpid, msg.reason, port_info(msg.desc)):
            return
        self._send(self.core.port_status(dpid, msg.reason, port_info(msg.desc), time.monotonic()))

    @handler.set_ev_cls(ofp_event.EventOFPPacketIn, MAIN)
    @guarded
    def packet_in(self, ev):
        # No flow of ours sends to the controller; a packet-in means someone else's flow or a bug.
        self.extra["packet_in"] += 1
        if self.extra["packet_in"] in (1, 10, 100, 1000) or self.extra["packet_in"] % 10000 == 0:
            self.logger.warning("unexpected packet-in #%d from %s (ignored)", self.extra["packet_in"],
                                getattr(ev.msg.datapath, "id", "?"))

    @handler.set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN)
    @guarded
    def error_msg(self, ev):
        msg = ev.msg
        self.extra["error"] += 1
        bundle = self.exchanges.refused_bundle(msg.datapath.id, msg.xid)
        if bundle is not None:
            self.extra["bundle_refused"] += 1
            self.logger.error("switch %016x refused bundle %d (%d FlowMods) at commit: none of it was "
                              "applied, its table is the one before", msg.datapath.id or 0, *bundle)
        # code is None for experimenter errors: format with %s, never %d
        self.logger.error("switch %016x: OpenFlow error type=%s code=%s", msg.datapath.id or 0,
                          msg.type, msg.code)
        dpid = msg.datapath.id
        if self.core.known(dpid) and self.datapaths.get(dpid) is msg.datapath:
            out = self.core.refused(dpid, time.monotonic())     # its table may not be what we think
            if out:
                self.logger.warning("switch %016x: reading its ports and flows again after the error", dpid)
            self._send(out)

    # ---- service for the REST API ------------------------------------------------------------
    def _link(self, link_id: int):
        link = self.topo.link_by_id.get(link_id)
        if link is None:
            raise NotFound(f"no link {link_id} (links are 1..{len(self.topo.links)})")
        return link

    def _counters(self) -> Counters:
        """Packet/byte counters of our flows, read from every connected bridge now."""
        waits = []
        with self.lock:
            for dpid, dp in list(self.datapaths.items()):
                msg = ofmsg.flow_stats_request(ours_only=True)
                msg.datapath = dp
                dp.set_xid(msg)
                waiter = self.exchanges.wait(dpid, msg.xid)
                self._send_one(dp, msg)
                waits.append((dpid, msg.xid, waiter))
        out: Counters = {}
        deadline = time.monotonic() + STATS_TIMEOUT
        for dpid, xid, waiter in waits:
            if not waiter.done.wait(max(0.0, deadline - time.monotonic())):
                with self.lock:
                    self.exchanges.give_up(dpid, xid)
                continue
            bridge = self.topo.bridges[dpid]
            counted = link_counters(waiter.body)
            for lid in bridge.link_ids:
                out.setdefault(lid, {})[bridge.server] = counted.get(lid, {"packets": 0, "bytes": 0})
        return out

    def health(self) -> dict:
        listener = guard.LISTENER
        total, handshaking = guard.CONNECTIONS.counts()
        openflow = {"listener": listener.state, "connections": total, "handshaking": handshaking,
                    "refused": listener.refused, "accept_errors": listener.accept_errors,
                    "dropped": dict(guard.CONNECTIONS.dropped)}
        if listener.error:
            openflow["error"] = listener.error
        with self.lock:
            return {"status": "error" if listener.state == "dead" else "ok", "topology": self.topo.name,
                    "switches": len(self.topo.bridges), "connected": len(self.datapaths),
                    "synced": sum(1 for st in self.core.bridges.values()
                                  if st.connected and st.synced and st.table_ok),
                    "openflow": openflow}

    def links(self) -> list:
        counters = self._counters()
        with self.lock:
            return [link_view(self.core, link, counters) for link in self.topo.links + self.topo.ixp_segments]

    def link(self, link_id: int) -> dict:
        link = self._link(link_id)
        counters = self._counters()
        with self.lock:
            return link_view(self.core, link, counters)

    def switches(self) -> list:
        with self.lock:
            return switch_view(self.core)

    def _admin(self, link_id: int, fail: bool) -> dict:
        link = self._link(link_id)
        if not link.remote:
            raise Conflict(f"link {link_id} is local ({link.a.router} and {link.b.router} are both on "
                                f"{link.a.server}); only remote links pass through the controller")
        with self.lock:
            now = time.monotonic()
            out = self.core.fail_link(link_id, now) if fail else self.core.restore_link(link_id, now)
            self._save_state()
            self._send(out)
            self.logger.warning("link %d %s by operator", link_id, "failed" if fail else "restored")
            return link_view(self.core, link)

    def _save_state(self) -> None:
        """Persist operator failures atomically; a failure to write is reported, not fatal."""
        try:
            os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
            tmp = self.state_path + ".tmp"
            with open(tmp, "w") as fh:
                failed = [{"a": a, "b": b, "n": n} for a, b, n in self.core.failed_keys()]
                json.dump({"topology": self.topo.name, "failed": failed,
                           "failed_links": sorted(self.core.failed)}, fh)   # ids: for people reading it
            os.replace(tmp, self.state_path)
        except OSError as exc:
            self.extra["state_write_error"] += 1
            self.logger.error("cannot save controller state to %s: %s", self.state_path, exc)

    def fail_link(self, link_id: int) -> dict:
        return self._admin(link_id, True)

    def restore_link(self, link_id: int) -> dict:
        return self._admin(link_id, False)

    def reload(self) -> dict:
        """Re-read the topology file and converge every switch to it (links added or removed).

        A bridge that appears in the new topology is picked up when it connects; the addresses of
        the listeners do not change without a restart.
        """
        try:
            topo = load_topology(self.topo_path)
        except TopologyError as exc:
            raise Invalid("; ".join(exc.problems))
        if topo.name != self.topo.name:
            raise Conflict(f"{self.topo_path} now describes instance {topo.name}, not {self.topo.name}")
        with self.lock:
            out = self.core.reload(topo, time.monotonic())
            self.topo = topo
            self._size_connection_limits()
            self._save_state()
            self._send(out)
            sent = sum(len(m) for m in out.values())
            self.logger.warning("topology reloaded: %d links, %d messages", len(topo.links), sent)
            return {"links": len(topo.links), "switches": len(topo.bridges), "messages": sent}

    def metrics(self) -> str:
        counters = self._counters()
        with self.lock:
            return metrics_text(self.core, counters, dict(self.extra))


def install() -> None:
    """What the app needs of os-ken before any switch connects, installed by the app itself when it
    is made (idempotent): the listener's hardening (apps/guard.py) and core/wire.py's flow-stats
    decoder (replies decoded by struct, straight into Flows)."""
    guard.install()
    wire.install_flow_stats_decoder()
    logging.getLogger("os_ken.controller.controller").setLevel(logging.WARNING)
