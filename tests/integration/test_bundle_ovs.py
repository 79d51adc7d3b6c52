"""Flow pushes are atomic on real Open vSwitch: a bundle that OvS refuses leaves the old table.

The bytes are the controller's own (core/wire.py Packer: OPEN, BUNDLE_ADD per FlowMod, COMMIT),
spoken over the bridge's management socket, on a remote bridge exactly as provisioning makes it.
Needs root and Open vSwitch; cleans up even when it fails.
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import time

import pytest

from tests.polling import wait_until

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("ovs-vswitchd"), reason="needs Open vSwitch")]

TOPO = """
name: {name}
fabric: {{isolation: key}}
servers:
  VM1: {{underlay_ip: 192.0.2.1}}
  VM2: {{underlay_ip: 192.0.2.2}}
ases:
  1: {{server: VM1, routers: [A]}}
  2: {{server: VM2, routers: [B]}}
links:
{links}
"""
N_LINKS = 40


class OfConn:
    """A bare OpenFlow 1.3 connection to a bridge's management socket."""

    def __init__(self, path):
        from minet_sdn.compat import ofproto_v1_3 as ofp
        self.ofp = ofp
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.xid = 100
        self.sock.sendall(struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_HELLO, 8, 1))
        version, msg_type, _, _ = self.read()
        assert msg_type == ofp.OFPT_HELLO and version >= ofp.OFP_VERSION

    def next_xid(self):
        self.xid += 1
        return self.xid

    def read(self):
        head = self._exact(8)
        version, msg_type, length, xid = struct.unpack("!BBHI", head)
        body = self._exact(length - 8)
        return version, msg_type, xid, body

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            got = self.sock.recv(n - len(buf))
            if not got:
                raise AssertionError("connection closed by Open vSwitch")
            buf += got
        return buf

    def push(self, msgs, bundle_id):
        """Send `msgs` (PackedFlowMods) the way the controller does, then a barrier; returns every
        (type, xid, body) OvS answered with until the barrier reply."""
        from minet_sdn.core import wire
        ofp = self.ofp
        packer = wire.Packer(self.xid, lambda: bundle_id)
        for chunk in packer.pack(list(msgs), other=None):
            self.sock.sendall(chunk)
        self.xid = packer.xid
        assert len(packer.bundles) == 1
        barrier = self.next_xid()
        self.sock.sendall(struct.pack("!BBHI", ofp.OFP_VERSION, ofp.OFPT_BARRIER_REQUEST, 8, barrier))
        got = []
        while True:
            _, msg_type, xid, body = self.read()
            if msg_type == ofp.OFPT_BARRIER_REPLY and xid == barrier:
                return got, packer.bundles[0]
            if msg_type != ofp.OFPT_ECHO_REQUEST:
                got.append((msg_type, xid, body))

    def close(self):
        self.sock.close()


def table(mgmt):
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow13", "--no-stats", "dump-flows", f"unix:{mgmt}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return sorted(re.sub(r"duration=[\d.]+s, ", "", l.strip()) for l in out.splitlines() if "priority=" in l)


@pytest.fixture
def bridge(tmp_path):
    from minet_sdn.lab import paths, servers, system
    from minet_sdn.provision.plan import build_plan
    from minet_sdn.topology import load_topology
    path = tmp_path / "topo.yaml"
    path.write_text(TOPO.format(name=f"bn{os.getpid() % 100000}",
                                links="\n".join("  - {a: 1.A, b: 2.B, rel: peer}" for _ in range(N_LINKS))))
    topo = load_topology(str(path))
    try:
        info = servers.build_servers(str(path))
        eff = load_topology(info.effective_topology)
        for b in build_plan(eff, "VM1").bridges:
            system.ovs_vsctl(paths.server_dir(topo, "VM1"), *b.vsctl_args())
        br = topo.bridge("VM1", "VM2")
        mgmt = os.path.join(paths.server_dir(topo, "VM1"), f"{br.name}.mgmt")
        wait_until(lambda: os.path.exists(mgmt), 10, interval=0.1)
        conn = OfConn(mgmt)
        try:
            yield topo, br, mgmt, conn
        finally:
            conn.close()
    finally:
        servers.teardown(topo)


def test_a_bundle_refused_at_commit_leaves_the_old_table_and_a_good_one_replaces_it(bridge):
    from minet_sdn.core import ofmsg
    from minet_sdn.core.flows import bridge_flows
    from minet_sdn.lab import paths, system
    topo, br, mgmt, conn = bridge
    ofp = conn.ofp
    every = list(bridge_flows(topo, br, [1] + [topo.link(lid).ofport for lid in br.link_ids]).values())
    old = [f for f in every if f.cookie & 0xFFFFFFFF <= N_LINKS // 2]       # base flows + first half
    new = [f for f in every if f not in old]

    # 1. the first push, in one bundle: committed, the table is exactly `old`
    answers, (bid, commit_xid, n) = conn.push([ofmsg.flow_add(f) for f in old], bundle_id=7)
    assert n == len(old) and len(old) > 50
    assert [a for a in answers if a[0] == ofp.OFPT_ERROR] == []
    before = table(mgmt)
    assert len(before) == len(old)

    # 2. table 0 may hold only a few more flows than now (refused, not evicted, beyond that): a push
    #    that deletes some flows and adds all the others fits half-way through, then overflows.
    #    OvS refuses it at commit: every FlowMod of the bundle is rolled back, none half-applied.
    limit = len(old) + 10
    system.ovs_vsctl(paths.server_dir(topo, "VM1"), "--", "--id=@ft", "create", "Flow_Table", f"flow_limit={limit}",
                     "overflow_policy=refuse", "--", "set", "Bridge", br.name, "flow_tables:0=@ft")
    deletes = [ofmsg.flow_delete(f) for f in old[2:12]]
    msgs = deletes + [ofmsg.flow_add(f) for f in new]
    assert len(old) - len(deletes) + len(new) > limit
    answers, (bid, commit_xid, n) = conn.push(msgs, bundle_id=8)
    errors = [a for a in answers if a[0] == ofp.OFPT_ERROR]
    assert errors, "Open vSwitch committed a bundle past its flow limit: the test proves nothing"
    assert any(xid == commit_xid for _, xid, _ in errors)          # the commit itself was refused
    assert table(mgmt) == before                                   # and nothing of it was applied

    # 3. without the limit the same push commits as a whole
    system.ovs_vsctl(paths.server_dir(topo, "VM1"), "clear", "Bridge", br.name, "flow_tables")
    again = [ofmsg.flow_delete(m.flow) if m.command == ofp.OFPFC_DELETE_STRICT else ofmsg.flow_add(m.flow)
             for m in msgs]
    answers, _ = conn.push(again, bundle_id=9)
    assert [a for a in answers if a[0] == ofp.OFPT_ERROR] == []
    after = table(mgmt)
    assert len(after) == len(old) - len(deletes) + len(new)


def test_a_bundle_cut_off_by_a_lost_connection_is_never_applied(bridge):
    """A controller that dies mid-push leaves the switch with its old table, not half a new one."""
    from minet_sdn.core import ofmsg, wire
    from minet_sdn.core.flows import bridge_flows
    topo, br, mgmt, conn = bridge
    every = list(bridge_flows(topo, br, [1] + [topo.link(lid).ofport for lid in br.link_ids]).values())
    conn.push([ofmsg.flow_add(f) for f in every[:30]], bundle_id=3)
    before = table(mgmt)
    assert len(before) == 30
    packer = wire.Packer(conn.xid, lambda: 4)
    data = b"".join(packer.pack([ofmsg.flow_delete(f) for f in every[:10]]
                                + [ofmsg.flow_add(f) for f in every[30:]], other=None))
    commit = len(data) - 24                        # everything but the COMMIT, then the connection dies
    conn.sock.sendall(data[:commit])
    conn.close()
    time.sleep(0.5)              # deliberately a window: nothing of the cut-off bundle may appear in it
    assert table(mgmt) == before
    late = OfConn(mgmt)                            # a new connection: the old bundle is gone with its owner
    try:
        late.sock.sendall(data[commit:])
        late.sock.sendall(struct.pack("!BBHI", 4, late.ofp.OFPT_BARRIER_REQUEST, 8, 999))
        seen = []
        while True:
            _, msg_type, xid, _ = late.read()
            seen.append(msg_type)
            if msg_type == late.ofp.OFPT_BARRIER_REPLY:
                break
        assert late.ofp.OFPT_ERROR in seen          # committing an unknown bundle is refused
    finally:
        late.close()
    assert table(mgmt) == before
