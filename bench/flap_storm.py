#!/usr/bin/env python3
"""The controller under a flap storm: PortStatus handling rate and REST latency meanwhile.

    python3 bench/flap_storm.py [--events 1000] [--topology topologies/demo.yaml] [--json]

No root, no OvS: the real app (RemoteLinks, its core, os-ken's parser for every message) driven
through the fake switches of tests/unit/app_harness.py, in this process. A storm thread flaps the
carrier of every remote link's a-side port in turn until --events carrier changes were made; each
change is a PortStatus from that switch, to which the controller answers with a PortMod holding the
far side down (or releasing it), whose own PortStatus comes back too: all of them are handled.
Meanwhile a REST thread calls GET /healthz, /v1/switches and /v1/links (which reads flow counters
from every switch) through the WSGI app, back to back. Reported: PortStatus messages handled per
second, and REST latency p50/p99 per path, idle (before the storm) and under it. What this leaves
out: sockets and os-ken's event threads (the harness delivers events in the storm thread).
Results, with the command and the machine, also go to bench/results/flap_storm-<date>.json.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.unit.app_harness import Lab   # noqa: E402
from lab_up import machine, save         # noqa: E402

PATHS = ("/healthz", "/v1/switches", "/v1/links")


def pct(values, q):
    values = sorted(values)
    return round(values[max(0, math.ceil(q / 100 * len(values)) - 1)] * 1000, 2) if values else None


def rest_loop(lab: Lab, stop: threading.Event, out: dict) -> None:
    while not stop.is_set():
        for path in PATHS:
            t0 = time.perf_counter()
            status, _, _ = lab.wsgi("GET", path)      # runs the app's handler; pumps replies meanwhile
            took = time.perf_counter() - t0
            if status == 200:
                out.setdefault(path, []).append(took)
            else:
                out.setdefault("errors", []).append((path, status))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--topology", default=str(ROOT / "topologies" / "demo.yaml"))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="minet-flap-") as d:
        lab = Lab(Path(d), Path(args.topology).read_text())
        remote = [l for l in lab.topo.links if l.remote]

        # idle REST latency: nothing else happening (wsgi() pumps the stats replies it waits for)
        idle: dict = {}
        stop = threading.Event()
        rest = threading.Thread(target=rest_loop, args=(lab, stop, idle), daemon=True)
        rest.start()
        time.sleep(2.0)
        stop.set()
        rest.join()

        # the storm
        handled0 = lab.app.extra.copy()
        storm: dict = {}
        stop = threading.Event()
        rest = threading.Thread(target=rest_loop, args=(lab, stop, storm), daemon=True)
        seen = {"port_status": 0}
        count_lock = threading.Lock()
        handlers = lab.app.get_handlers

        def counting(ev, state=None):
            hs = handlers(ev, state)
            if type(ev).__name__ == "EventOFPPortStatus":
                with count_lock:
                    seen["port_status"] += 1
            return hs
        lab.app.get_handlers = counting
        rest.start()
        t0 = time.perf_counter()
        up = {}
        for i in range(args.events):
            link = remote[i % len(remote)]
            state = up.get(link.id, True)
            lab.carrier(link.a.server, link.id, not state)       # pumps until the fabric is quiet
            up[link.id] = not state
        for lid, state in up.items():
            if not state:
                link = lab.topo.link(lid)
                lab.carrier(link.a.server, lid, True)
        took = time.perf_counter() - t0
        stop.set()
        rest.join()
        lab.pump()
        lab.app.get_handlers = handlers
        result = {
            "topology": str(Path(args.topology).name), "carrier_changes": args.events,
            "port_status_handled": seen["port_status"], "seconds": round(took, 3),
            "port_status_per_s": round(seen["port_status"] / took, 1),
            "port_mods_sent": lab.app.extra.get("sent_PortMod", 0) - handled0.get("sent_PortMod", 0),
            "handler_errors": lab.app.extra.get("handler_error", 0),
            "rest_ms": {path: {"idle_p50": pct(idle.get(path, []), 50), "idle_p99": pct(idle.get(path, []), 99),
                               "storm_p50": pct(storm.get(path, []), 50), "storm_p99": pct(storm.get(path, []), 99),
                               "storm_n": len(storm.get(path, []))} for path in PATHS},
            "rest_errors": storm.get("errors", [])[:5],
            "problems": lab.problems(ignore=lab.expected),
        }
    command = " ".join(["python3 bench/flap_storm.py"] + (sys.argv[1:] if argv is None else list(argv)))
    saved = save("flap_storm", {"command": command, "machine": machine(), **result})
    print(f"saved {saved.relative_to(ROOT)}", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(f"{result['carrier_changes']} carrier changes -> {result['port_status_handled']} PortStatus handled "
              f"in {result['seconds']} s: {result['port_status_per_s']}/s; {result['port_mods_sent']} PortMods; "
              f"handler errors {result['handler_errors']}; problems {result['problems']}")
        for path, m in result["rest_ms"].items():
            print(f"  {path:<14} idle p50 {m['idle_p50']} ms p99 {m['idle_p99']} ms | under the storm p50 "
                  f"{m['storm_p50']} ms p99 {m['storm_p99']} ms ({m['storm_n']} requests)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
