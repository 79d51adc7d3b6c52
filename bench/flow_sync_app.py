"""Bench-only os-ken app: the real RemoteLinks, told that every link port of its bridges exists.

Used by bench/flow_sync.py, which runs it as a controller process inside the bench namespace.
Creating 10,000 veth ports is too slow for a benchmark, so the bridge holds only its tunnel port;
this subclass changes one thing only, how the port list of a sync is obtained: the switch's real
port-desc reply, plus a PortInfo (the real class, with the values a live veth would show) for
every link port the reply lacks. Everything else is the product path: FabricCore.synced,
core.ofmsg, os-ken serialisation and its send queue, the socket, OvS applying the FlowMods.

The rest is observation: one JSON line per sync appended to $MNBENCH_TIMING, from the moment the
controller starts the sync of a switch (its port-desc request is sent) to the barrier reply that
follows the FlowMods (so OvS has applied them all), with the phases in between.
"""
from __future__ import annotations

import json
import os
import threading
import time

from minet_sdn.apps.remote_links import MAIN, RemoteLinks
from minet_sdn.compat import handler, ofp_event
from minet_sdn.core import ofmsg
from minet_sdn.core.fabric import OFPPS_LIVE, PortInfo

parser = ofmsg.parser


def claimed_port(topo, link_id: int) -> PortInfo:
    """What the switch would report for link `link_id`'s veth port: up, carrier, live."""
    return PortInfo(port_no=topo.link(link_id).ofport, name=topo.link_port_name(link_id),
                    hw_addr="02:bb:{:02x}:{:02x}:{:02x}:01".format((link_id >> 16) & 0xFF,
                                                                   (link_id >> 8) & 0xFF, link_id & 0xFF),
                    config=0, state=OFPPS_LIVE)


class BenchRemoteLinks(RemoteLinks):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._bench_path = os.environ.get("MNBENCH_TIMING")
        self._bench_lock = threading.Lock()
        self._bench = {}            # dpid -> record of the sync in flight
        synced = self.core.synced

        def timed_synced(dpid, ports, flows, *args, **kwargs):   # observation only: when the core is done
            rec = self._bench.get(dpid)
            if rec is not None:
                rec["t_read"], rec["c_read"] = time.perf_counter(), time.process_time()
                rec["flows_read"] = len(flows)
            out = synced(dpid, ports, flows, *args, **kwargs)
            if rec is not None:
                rec["t_core"], rec["c_core"] = time.perf_counter(), time.process_time()
            return out
        self.core.synced = timed_synced

    # ---- the one behavioural change: every link port of the bridge is present ----------------
    def _sync_part(self, dpid, xid, value):
        if self.exchanges.asked(dpid, xid) == "ports":
            have = {p.port_no for p in value}
            value = list(value) + [claimed_port(self.topo, lid) for lid in self.topo.bridges[dpid].link_ids
                                   if self.topo.link(lid).ofport not in have]
        super()._sync_part(dpid, xid, value)
        rec = self._bench.get(dpid)
        if rec is not None and "t_core" in rec and "t_sent" not in rec:
            rec["t_sent"], rec["c_sent"] = time.perf_counter(), time.process_time()
            if rec.get("barrier_xid") is None:      # nothing sent after the sync: done already
                self._bench_done(dpid, rec)

    # ---- observation ---------------------------------------------------------------------------
    def _send_one(self, dp, msg) -> None:
        start = isinstance(msg, parser.OFPPortDescStatsRequest)
        if start:
            self._bench[dp.id] = {"dpid": dp.id, "t_start": time.perf_counter(), "c_start": time.process_time(),
                                  "msgs": {}}
        super()._send_one(dp, msg)
        if not start:
            self._bench_note(dp, ofmsg.kind(msg), msg.xid)

    def _send(self, out) -> None:
        super()._send(out)                  # the product's packed send; xids are set by now
        for dpid, msgs in out.items():
            dp = self.datapaths.get(dpid)
            if dp is not None:
                for msg in msgs:
                    self._bench_note(dp, ofmsg.kind(msg), msg.xid)

    def _bench_note(self, dp, kind: str, xid: int) -> None:
        """Count a message the sync sends; the barrier among them is the one whose reply ends it."""
        rec = self._bench.get(dp.id)
        if rec is None or "t_read" not in rec or "t_sent" in rec:
            return
        rec["msgs"][kind] = rec["msgs"].get(kind, 0) + 1
        if kind == "BarrierRequest":
            rec["barrier_xid"] = xid

    @handler.set_ev_cls(ofp_event.EventOFPBarrierReply, MAIN)
    def bench_barrier_reply(self, ev):
        t = time.perf_counter()
        dpid = ev.msg.datapath.id
        rec = self._bench.get(dpid)
        if rec is not None and rec.get("barrier_xid") == ev.msg.xid:
            rec["t_barrier"], rec["c_barrier"] = t, time.process_time()
            self._bench_done(dpid, rec)

    def _bench_done(self, dpid, rec) -> None:
        self._bench.pop(dpid, None)
        t0 = rec["t_start"]
        end = rec.get("t_barrier", rec.get("t_sent"))
        c0, c_end = rec["c_start"], rec.get("c_barrier", rec.get("c_sent"))
        line = {"dpid": f"{dpid:016x}", "flows_read": rec.get("flows_read"),
                "t_start": t0, "t_end": end, "c_start": c0, "c_end": c_end,
                "switch_errors": self.extra["error"], "handler_errors": self.extra["handler_error"],
                "flow_mods": rec["msgs"].get("FlowMod", 0), "messages": rec["msgs"],
                "total_s": end - t0,
                "phases_s": {"request_to_read": rec["t_read"] - t0,
                             "core_synced": rec["t_core"] - rec["t_read"],
                             "serialise_and_queue": rec["t_sent"] - rec["t_core"],
                             "until_barrier_reply": end - rec["t_sent"]},
                # CPU seconds of the whole controller process (all threads) over the same window:
                # far less sensitive than wall time to load from elsewhere on the machine
                "cpu_s": c_end - c0,
                "phases_cpu_s": {"request_to_read": rec["c_read"] - c0,
                                 "core_synced": rec["c_core"] - rec["c_read"],
                                 "serialise_and_queue": rec["c_sent"] - rec["c_core"],
                                 "until_barrier_reply": c_end - rec["c_sent"]}}
        self.logger.info("bench: sync of %016x took %.3f s (%d FlowMods)", dpid, line["total_s"],
                         line["flow_mods"])
        if self._bench_path:
            with self._bench_lock, open(self._bench_path, "a") as fh:
                fh.write(json.dumps(line) + "\n")
