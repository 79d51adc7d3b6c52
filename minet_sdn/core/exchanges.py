"""What the controller asked its switches and still waits for (pure: no sockets, no event loop).

The os-ken shell (apps/remote_links.py) sends, then hands this module each decoded reply and gets
back what is complete:

  multipart  a reply in many parts (OFPMPF_REPLY_MORE) is assembled per (switch, xid);
  syncs      the core's sync requests (Out.syncs: ports, then flows): both answers, with the port
             events that arrived after the port list was read, make one SyncDone for
             FabricCore.synced(); a new sync of a switch supersedes the one in flight (its late
             answers are ignored), and a disconnection drops it;
  waiters    flow-stats polls a REST request waits for (the counters);
  bundles    the bundles sent, by commit xid, so an error answering a commit names the bundle.

The shell holds its lock around every call (os-ken runs handlers, REST requests and the tick on
separate threads); a Waiter is the one thing another thread waits on.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

# What a sync asks (core.fabric.FabricCore._sync_requests), by message kind (core.ofmsg.kind)
SYNC_KINDS = {"PortDescStatsRequest": "ports", "FlowStatsRequest": "flows"}
MAX_BUNDLES = 1024       # commits remembered; the oldest go first (their replies never came)


@dataclass
class SyncDone:
    """A sync's answers: the switch's ports, its flows, and the port events newer than the ports."""
    ports: list
    flows: list
    later: List[Tuple[int, object]] = field(default_factory=list)


@dataclass
class _Sync:
    asked: Dict[int, str]                                   # xid -> "ports" | "flows"
    got: Dict[str, list] = field(default_factory=dict)
    later: List[Tuple[int, object]] = field(default_factory=list)


class Waiter:
    """A flow-stats reply a REST request is waiting for."""

    def __init__(self):
        self.done = threading.Event()
        self.body: list = []


class Exchanges:
    def __init__(self):
        self.parts: Dict[Tuple[int, int], list] = {}
        self.syncs: Dict[int, _Sync] = {}
        self.waiters: Dict[Tuple[int, int], Waiter] = {}
        self.bundles: Dict[Tuple[int, int], Tuple[int, int]] = {}   # (dpid, commit xid) -> (bundle id, FlowMods)

    # ---- multipart replies -------------------------------------------------------------------
    def part(self, dpid: int, xid: int, body: Iterable, more: bool) -> Optional[list]:
        """Every part of a multipart reply once the last one is in (`more` false), else None."""
        parts = self.parts.setdefault((dpid, xid), [])
        parts.extend(body)
        if more:
            return None
        return self.parts.pop((dpid, xid))

    # ---- syncs ---------------------------------------------------------------------------------
    def sync_started(self, dpid: int, asked: Iterable[Tuple[int, str]]) -> None:
        """The sync requests sent to `dpid`, as (xid, message kind); one in flight is superseded."""
        self.syncs[dpid] = _Sync({xid: SYNC_KINDS[kind] for xid, kind in asked})

    def asked(self, dpid: int, xid: int) -> Optional[str]:
        """"ports" or "flows" when `xid` is a request of the sync in flight on `dpid`."""
        sync = self.syncs.get(dpid)
        return sync.asked.get(xid) if sync is not None else None

    def syncing(self, dpid: int) -> bool:
        return dpid in self.syncs

    def port_event(self, dpid: int, reason: int, info) -> bool:
        """A port event from `dpid`. True when a sync is in flight, and the event is its business:
        before the port list was read it is superseded by that list; after, it is newer and kept
        for synced(later=...). False: no sync, the core takes the event."""
        sync = self.syncs.get(dpid)
        if sync is None:
            return False
        if "ports" in sync.got:
            sync.later.append((reason, info))
        return True

    def answered(self, dpid: int, xid: int, value: list) -> Optional[SyncDone]:
        """One answer of a sync; the SyncDone once both are in. Answers of a superseded sync, and
        replies to anything else, give None."""
        sync = self.syncs.get(dpid)
        if sync is None or xid not in sync.asked:
            return None
        sync.got[sync.asked.pop(xid)] = value
        if "ports" in sync.got and "flows" in sync.got:
            del self.syncs[dpid]
            return SyncDone(sync.got["ports"], sync.got["flows"], sync.later)
        return None

    def disconnected(self, dpid: int) -> None:
        """`dpid`'s connection is gone: its sync and the replies cut off mid-way are dropped."""
        self.syncs.pop(dpid, None)
        for key in [k for k in self.parts if k[0] == dpid]:
            del self.parts[key]

    # ---- waiters -------------------------------------------------------------------------------
    def wait(self, dpid: int, xid: int) -> Waiter:
        waiter = self.waiters[(dpid, xid)] = Waiter()
        return waiter

    def waited(self, dpid: int, xid: int, body: list) -> bool:
        """A complete flow-stats reply: True when a waiter took it (it is not a sync's then)."""
        waiter = self.waiters.pop((dpid, xid), None)
        if waiter is None:
            return False
        waiter.body = body
        waiter.done.set()
        return True

    def give_up(self, dpid: int, xid: int) -> None:
        self.waiters.pop((dpid, xid), None)

    # ---- bundles -------------------------------------------------------------------------------
    def bundle_sent(self, dpid: int, commit_xid: int, bundle_id: int, flow_mods: int) -> None:
        self.bundles[(dpid, commit_xid)] = (bundle_id, flow_mods)
        if len(self.bundles) > MAX_BUNDLES:
            self.bundles.pop(next(iter(self.bundles)))

    def refused_bundle(self, dpid: int, xid: int) -> Optional[Tuple[int, int]]:
        """(bundle id, FlowMods) when the error answering `xid` refused a bundle's commit."""
        return self.bundles.pop((dpid, xid), None)
