"""Issue 12, the topology file: no unbounded read (devices, FIFOs, huge files), an early stop at the
hard limits, and merge keys (<<) that cannot expand without bound."""
import os
import threading

import pytest

from minet_sdn.cli.main import main
from minet_sdn.topology import TopologyError, load_topology, parse_topology
from minet_sdn.topology import loader
from minet_sdn.topology.model import MAX_LINKS

HEAD = """name: t
servers: {VM1: {underlay_ip: 192.0.2.1}, VM2: {underlay_ip: 192.0.2.2}}
ases:
  1: {server: VM1, routers: [A]}
  2: {server: VM2, routers: [B]}
"""


def problems(path):
    with pytest.raises(TopologyError) as exc:
        load_topology(str(path))
    return exc.value.problems


def test_a_device_is_refused_without_reading_it():
    assert problems("/dev/zero") == ["zero: not a regular file (a pipe or a device is not read)"]


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "topo.yaml"
    os.mkfifo(fifo)
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("p", problems(fifo)), daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():                 # before: open() waits for a writer forever; release it
        with open(fifo, "w"):
            pass
        pytest.fail("loading a FIFO waited for a writer")
    assert result["p"] == ["topo.yaml: not a regular file (a pipe or a device is not read)"]


def test_a_file_over_the_size_cap_is_refused_unread(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.write(HEAD.encode())
        fh.seek(loader.MAX_FILE_BYTES + 10)
        fh.write(b"\n")
    assert problems(big) == [f"big.yaml: larger than {loader.MAX_FILE_BYTES} bytes; a topology is at most that"]


def test_too_many_entries_stop_the_reading_at_the_limit(monkeypatch):
    # the reader stops at the entry past the limit, however long the list goes on (a 50 MB file
    # took 354 s and 7 GB to say "at most 65179 links"); a small limit keeps the test quick
    monkeypatch.setattr(loader, "MAX_ITEMS", 100)
    links = "links:\n" + "  - {a: 1.A, b: 2.B, rel: peer}\n" * 5000
    seen = []
    original = loader._Loader.compose_node

    def counting(self, parent, index):
        seen.append(1)
        return original(self, parent, index)

    monkeypatch.setattr(loader._Loader, "compose_node", counting)
    with pytest.raises(TopologyError) as exc:
        parse_topology(HEAD + links, "many.yaml")
    (line,) = exc.value.problems
    assert line.startswith("many.yaml: line 107, column 5: a list or mapping of more than 100 entries"), line
    assert len(seen) < 101 * 8 + 50          # nothing composed after the limit
    assert loader.MAX_LINKS == MAX_LINKS and MAX_LINKS <= 65535


def test_the_real_item_limit_is_the_link_limit():
    assert loader._Loader.__dict__["compose_node"] and loader.MAX_ITEMS == MAX_LINKS


def test_the_node_budget_stops_a_file_of_many_small_nodes(monkeypatch):
    monkeypatch.setattr(loader, "MAX_NODES", 1000)
    text = HEAD + "links:\n" + "".join("  - {a: 1.A, b: 2.B, rel: peer}\n" for _ in range(200))
    with pytest.raises(TopologyError) as exc:
        parse_topology(text, "nodes.yaml")
    assert "more than 1000 YAML nodes" in exc.value.problems[0]


def merge_bomb(levels: int) -> str:
    lines = ["name: t", "x0: &a0 {k0: 1, k1: 2}"]
    for i in range(1, levels + 1):
        lines.append(f"x{i}: &a{i} {{<<: [*a{i - 1}, *a{i - 1}], k{i}: {i}}}")
    return "\n".join(lines) + "\n"


def test_a_merge_key_bomb_is_refused_quickly():
    text = merge_bomb(40)          # about 1 KB; 2**40 entries if expanded (29 levels took over 120 s)
    assert len(text) < 2000
    with pytest.raises(TopologyError) as exc:
        parse_topology(text, "bomb.yaml")
    (line,) = exc.value.problems
    assert f"merge keys (<<) copy more than {loader.MAX_MERGED} entries" in line and line.startswith("bomb.yaml: line ")


def test_ordinary_merge_keys_still_work():
    text = HEAD.replace("  1: {server: VM1, routers: [A]}\n  2: {server: VM2, routers: [B]}",
                        "  1: &one {server: VM1, routers: [A]}\n  2: {<<: *one, server: VM2, routers: [B]}")
    topo = parse_topology(text, "m.yaml")
    assert topo.ases[2].server == "VM2" and topo.ases[1].routers == ("A",)


def test_minet_validate_dev_zero_is_one_line_exit_2(capsys):
    assert main(["validate", "/dev/zero"]) == 2
    assert capsys.readouterr().err.strip() == "zero: not a regular file (a pipe or a device is not read)"
