"""A loopback relay to a lab's controller REST API.

The lab's controller listens on the management network, inside namespace `<tag>-mgmt`; plain HTTP
clients in the root namespace (`minet link ...`, curl) cannot reach it. The relay listens on
127.0.0.1:<free port> in the root namespace and forwards every connection to the controller,
opening the far side inside the mgmt namespace. Started and stopped by `lab up`/`lab down`.

    python -m minet_sdn.lab.relay --netns NS --target HOST:PORT --port-file FILE
"""
from __future__ import annotations

import argparse
import os
import socket
import threading
from typing import List, Optional

from .system import netns_connect


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def _serve_one(client: socket.socket, netns: str, host: str, port: int) -> None:
    try:
        upstream = netns_connect(netns, host, port, timeout=5.0)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    t.start()
    _pump(client, upstream)
    t.join()
    client.close()
    upstream.close()


def serve(netns: str, host: str, port: int, port_file: str, listen: str = "127.0.0.1") -> None:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((listen, 0))
    srv.listen(64)
    tmp = f"{port_file}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{srv.getsockname()[1]}\n")
    os.replace(tmp, port_file)
    while True:
        client, _ = srv.accept()
        threading.Thread(target=_serve_one, args=(client, netns, host, port), daemon=True).start()


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="minet-lab-relay")
    p.add_argument("--netns", required=True)
    p.add_argument("--target", required=True, help="HOST:PORT inside the namespace")
    p.add_argument("--port-file", required=True)
    args = p.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    serve(args.netns, host.strip("[]"), int(port), args.port_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
