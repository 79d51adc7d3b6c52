"""What the classroom's end-to-end tests share (test_doors_e2e.py, test_students_page_e2e.py): a
lab of a class topology up under a unique instance name with its own class directory (so a TA's
credentials are never touched), the doors' listing `minet class doors --json` gives, and a free
port base on loopback (the doors listen on base+ASN, the students' page on the base)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from typing import Any, Dict, Iterator

from minet_sdn.lab.lab import Lab
from minet_sdn.topology import load_topology


def free_port_base(n: int = 5) -> int:
    """A base whose ports base..base+n-1 are free on loopback now."""
    for _ in range(50):
        base = 40000 + secrets.randbelow(20000)
        free = True
        for i in range(n):
            with socket.socket() as s:
                free = free and s.connect_ex(("127.0.0.1", base + i)) != 0
        if free:
            return base
    raise RuntimeError("no free ports")


def minet(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout)


@contextlib.contextmanager
def class_lab(tmp, prefix: str, text: str) -> Iterator[Dict[str, Any]]:
    """`text` (a topology with `{name}` and `{port_base}` to fill) up as a lab; yields its path,
    topology, port base and doors by group; the lab is removed (and must leave nothing) after."""
    name = f"{prefix}{secrets.token_hex(2)}"
    base = free_port_base()
    path = str(tmp / f"{prefix}.yaml")
    with open(path, "w") as fh:
        fh.write(text.format(name=name, port_base=base))
    old = os.environ.get("MINET_CLASS_DIR")
    os.environ["MINET_CLASS_DIR"] = str(tmp / "class")
    try:
        Lab(path, progress=lambda m: print(m, flush=True)).up()
        proc = minet("class", "doors", path, "--json")
        assert proc.returncode == 0, proc.stderr
        doors = {d["group"]: d for d in json.loads(proc.stdout)["doors"]}
        yield {"path": path, "topo": load_topology(path), "doors": doors, "port": base, "tmp": tmp}
    finally:
        try:
            assert Lab(path, progress=lambda m: None).remove() == []
        finally:
            if old is None:
                os.environ.pop("MINET_CLASS_DIR", None)
            else:
                os.environ["MINET_CLASS_DIR"] = old
