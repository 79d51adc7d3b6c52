"""BFD dampening: when a tunnel's BFD-down becomes a link failure (pure: no clock, `now` is given).

At class size the emulated servers' ovs-vswitchd share two cores with hundreds of routers. While
those start and converge, a BFD packet is now and then late by more than 3 intervals, the tunnel
loses LIVE for a fraction of a second, and if every such blip failed every link of the server pair,
the routers' sessions would reset, the load would grow and the blips with it. A slower BFD interval
hides the blips but also a lost server. So the interval stays fast and the *history* decides:

  * a tunnel that has been quiet is believed at once: its BFD-down fails its links, so a lost
    server is seen in ~3 BFD intervals;
  * each BFD-down adds 1 to the tunnel's penalty, which halves every HALF_LIFE seconds;
  * while the penalty is at least SUPPRESS, a BFD-down is held for HOLD seconds before it counts:
    a blip that ends within HOLD fails nothing; a server really lost is seen HOLD later.

The same scheme routers use for flapping routes and BFD sessions (exponential decay, suppress
threshold), with one simplification: a tunnel back up is believed at once (what fails the links is
the down, so holding the up would only lengthen an outage).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional

HALF_LIFE = 30.0      # seconds for the penalty to halve
SUPPRESS = 2.0        # penalty from which a BFD-down is held: 3 downs within about 20 s
HOLD = 3.0            # seconds a held BFD-down must last to count
START_PENALTY = 0.0   # a new tunnel is believed at once, like a quiet one
MAX_PENALTY = 8.0     # a tunnel that flapped a lot is trusted again after 2 to 3 minutes of calm
# For measuring what dampening buys (bench/failover.py --no-damping): MINET_BFD_DAMPING=off in the
# controller's environment makes every BFD-down count at once, as before dampening.
if os.environ.get("MINET_BFD_DAMPING", "").lower() == "off":
    SUPPRESS = float("inf")


@dataclass
class TunnelDamping:
    raw: bool                      # what BFD (the port's LIVE bit) says now
    effective: bool                # what the controller acts on
    penalty: float = START_PENALTY
    stamp: float = 0.0             # when `penalty` was last brought up to date
    transitions: int = 0           # raw LIVE changes seen (the flap count shown to users)
    held_until: Optional[float] = None   # a held down counts from then, unless it ends before
    holds: int = 0                 # BFD-downs held (whether or not they later counted)

    def decayed(self, now: float) -> float:
        if now > self.stamp:
            self.penalty *= 0.5 ** ((now - self.stamp) / HALF_LIFE)
            self.stamp = now
        return self.penalty


class Damper:
    """Effective liveness of each tunnel (keyed by the dpid of the bridge it belongs to)."""

    def __init__(self) -> None:
        self.tunnels: Dict[int, TunnelDamping] = {}

    def observe(self, key: int, live: bool, now: float) -> bool:
        """BFD says `live` for tunnel `key`: True if the effective liveness changed."""
        t = self.tunnels.get(key)
        if t is None:
            # first sight: believed as it is (a tunnel already down at start is down)
            self.tunnels[key] = TunnelDamping(raw=live, effective=live, stamp=now)
            return False
        if live == t.raw:
            return False
        t.raw = live
        t.transitions += 1
        before = t.effective
        if live:
            t.held_until = None
            t.effective = True
        else:
            suppressed = t.decayed(now) >= SUPPRESS
            t.penalty = min(MAX_PENALTY, t.penalty + 1.0)
            if suppressed:
                t.held_until = now + HOLD
                t.holds += 1
            else:
                t.effective = False
        return t.effective != before

    def due(self, now: float) -> List[int]:
        """Tunnels whose held BFD-down lasted HOLD: now effectively down (call periodically)."""
        out = []
        for key, t in self.tunnels.items():
            if t.held_until is not None and now >= t.held_until:
                t.held_until = None
                if not t.raw and t.effective:
                    t.effective = False
                    out.append(key)
        return out

    def live(self, key: int, raw: bool) -> bool:
        """Effective liveness; `raw` for a tunnel never observed."""
        t = self.tunnels.get(key)
        return raw if t is None else t.effective

    def forget(self, key: int) -> None:
        self.tunnels.pop(key, None)

    def view(self, key: int, now: float) -> dict:
        """What users see of a tunnel: its BFD transitions, and whether a BFD-down is being held."""
        t = self.tunnels.get(key)
        if t is None:
            return {"bfd_transitions": 0, "bfd_held": False, "bfd_holds": 0, "bfd_penalty": 0.0}
        return {"bfd_transitions": t.transitions, "bfd_held": t.held_until is not None,
                "bfd_holds": t.holds, "bfd_penalty": round(t.decayed(now), 2)}
