"""The classroom's pure parts: the `class:` section, credentials, the door's sshd_config, the
door shell's parsing of hostile input, cgroup planning. No root needed."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap

import pytest

from minet_sdn.classroom import ClassError, cgroups, credentials, goto
from minet_sdn.classroom.settings import Limits
from minet_sdn.classroom.sshd import DoorConfig, config_text
from minet_sdn.topology import TopologyError, parse_topology
from tests.unit.class_support import FOUR_ASES, class_problems, class_topo

BASE = FOUR_ASES.format(name="cls")


def topo(extra: str = ""):
    return class_topo("cls", extra)


def problems(extra: str):
    return class_problems("cls", extra)


# ---- settings --------------------------------------------------------------------------------

def test_no_class_section_means_no_doors():
    assert topo().classroom is None


def test_empty_class_section_gives_the_unconfigured_ases_doors():
    t = topo("class: {}\n")
    assert t.classroom.door_asns(t.ases) == [3, 4]
    assert t.classroom.port(3) == 2003


def test_doors_all_and_a_list():
    t = topo("class: {doors: all, port_base: 30000}\n")
    assert t.classroom.door_asns(t.ases) == [1, 2, 3, 4]
    assert t.classroom.port(4) == 30004
    t = topo("class: {doors: [4, 1]}\n")
    assert t.classroom.door_asns(t.ases) == [1, 4]


@pytest.mark.parametrize("extra, expected", [
    ("class: {doors: [9]}\n", "t.yaml: class.doors[1]: the number 9 is not an AS of this topology"),
    ("class: {doors: [3, 3]}\n", "t.yaml: class.doors[2]: AS 3 is listed twice"),
    ("class: {doors: some}\n", "t.yaml: class.doors: 'some' is not one of configure-false, all or a list of ASNs"),
    ("class: {port_base: 80}\n", "t.yaml: class.port_base: the number 80 is not an integer from 1024 to 65000"),
    ("class: {port_base: 65001}\n", "t.yaml: class.port_base: the number 65001 is not an integer from 1024 to 65000"),
    ("class: {listen: here}\n", "t.yaml: class.listen: 'here' is not an IP address"),
    ("class: {ta_keys: ['ssh-ed25519 AAAA; rm -rf /']}\n",
     "t.yaml: class.ta_keys[1]: 'ssh-ed25519 AAAA; rm -rf /' is not an SSH public key line (TYPE BASE64 [COMMENT], one line)"),
    ("class: {limits: {memory: 1M}}\n",
     "t.yaml: class.limits.memory: '1M' is not a size of at least 32M (bytes, or a number with K, M or G)"),
    ("class: {limits: {forks: 3}}\n", "t.yaml: class.limits.forks: unknown key (allowed: pids, memory, cpu_weight, sessions)"),
    ("class: {door: all}\n", "t.yaml: class.door: unknown key (allowed: doors, port_base, listen, ta_keys, limits, page, page_port)"),
    ("class: [3]\n", "t.yaml: class: must be a mapping, not a list"),
])
def test_bad_class_sections_are_one_line_naming_the_key(extra, expected):
    assert problems(extra) == [expected]


def test_a_key_line_with_a_newline_is_refused():
    key = "ssh-ed25519 " + "A" * 68
    assert topo(f"class: {{ta_keys: ['{key}']}}\n").classroom.ta_keys == (key,)
    assert problems(f"class: {{ta_keys: [\"{key}\\ncommand=x\"]}}\n")[0].startswith("t.yaml: class.ta_keys[1]:")


def test_ports_must_fit_for_the_largest_asn():
    extra = BASE.replace("4: {server: VM2", "600: {server: VM2").replace("4.D1", "600.D1")
    with pytest.raises(TopologyError) as exc:
        parse_topology(extra + "class: {port_base: 65000}\n", "t.yaml")
    assert exc.value.problems == ["t.yaml: class.port_base: 65000 + the largest ASN 600 = 65600 is not a port"]


def test_limits():
    t = topo("class: {limits: {pids: 64, memory: 256M, cpu_weight: 50, sessions: 4}}\n")
    assert t.classroom.limits == Limits(pids=64, memory=256 << 20, cpu_weight=50, sessions=4)


def test_minet_validate_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE + "class: {doors: [7]}\n")
    proc = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "validate", str(path)], capture_output=True,
                          text=True, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "bad.yaml: class.doors[1]: the number 7 is not an AS of this topology"
    assert "Traceback" not in proc.stderr


# ---- credentials -----------------------------------------------------------------------------

def test_passwords_are_made_once_kept_private_and_rotated_one_at_a_time(tmp_path):
    store = credentials.Store("cls", root=str(tmp_path))
    assert store.ensure([3, 4]) is True
    first = dict(store.passwords)
    assert all(len(p) == credentials.PASSWORD_LENGTH and set(p) <= set(credentials.ALPHABET) for p in first.values())
    assert first[3] != first[4]
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    again = credentials.Store("cls", root=str(tmp_path))      # what the next `lab up` reads
    assert again.ensure([3, 4]) is False
    assert again.passwords == first
    new = again.rotate(4)
    assert new != first[4]
    third = credentials.Store("cls", root=str(tmp_path))
    assert third.passwords == {3: first[3], 4: new}


@pytest.mark.parametrize("text", ["not json", "[]", '{"passwords": {"x": "abcdefgh"}}',
                                  '{"passwords": {"3": "short"}}'])
def test_a_damaged_credentials_file_is_one_error_naming_it(tmp_path, text):
    d = tmp_path / "cls"
    d.mkdir()
    (d / "credentials.json").write_text(text)
    with pytest.raises(ClassError) as exc:
        credentials.Store("cls", root=str(tmp_path))
    assert str(exc.value).startswith(str(d / "credentials.json"))


def test_user_names_are_valid_unix_names():
    assert credentials.user_name("demo", 3) == "as3-demo"
    assert credentials.user_name("1x", 4294967294) == "as4294967294-1x"


def test_password_hash_is_sha512_crypt_and_checks():
    h = credentials.password_hash("secret-pass", salt="abcdefgh")
    assert h.startswith("$6$abcdefgh$")
    assert credentials.password_hash("secret-pass", salt="abcdefgh") == h
    assert credentials.password_hash("other-pass", salt="abcdefgh") != h


def test_host_key_is_made_once_and_its_fingerprint_is_openssh_s(tmp_path):
    store = credentials.Store("cls", root=str(tmp_path))
    path = store.host_key(3)
    pub = store.host_key_public(3)
    assert store.host_key(3) == path and store.host_key_public(3) == pub       # pinned: not made again
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path + ".pub"], capture_output=True,
                         text=True, check=True).stdout
    assert credentials.fingerprint(pub) == out.split()[1]


# ---- sshd_config -----------------------------------------------------------------------------

def door_config(**kw) -> str:
    d = dict(asn=3, user="as3-cls", listen="127.0.0.1", port=2003, host_key="/k", authorized_keys="/a",
             pid_file="/p", shell_argv=["/usr/bin/python3", "-I", "-c", "import x; x.main()", "/run/s.sock"])
    d.update(kw)
    return config_text(DoorConfig(**d))


def test_door_config_allows_the_group_only_and_forwards_nothing():
    lines = door_config().splitlines()
    for line in ("ListenAddress 127.0.0.1:2003", "AllowUsers as3-cls", "PermitRootLogin no", "DisableForwarding yes",
                 "AllowTcpForwarding no", "AllowAgentForwarding no", "X11Forwarding no", "PermitTunnel no",
                 "AllowStreamLocalForwarding no", "PermitUserRC no", "PermitUserEnvironment no",
                 "MaxAuthTries 3", "UsePAM no", "PermitEmptyPasswords no"):
        assert line in lines
    assert not any(line.startswith(("Subsystem", "AcceptEnv")) for line in lines)      # no sftp, no env


def test_force_command_is_quoted_for_the_login_shell():
    force = next(line for line in door_config().splitlines() if line.startswith("ForceCommand "))
    assert force == "ForceCommand /usr/bin/python3 -I -c 'import x; x.main()' /run/s.sock"
    assert "[::1]:2003" in door_config(listen="::1")


# ---- the door shell's parsing ----------------------------------------------------------------

def devices():
    return goto.group_devices(topo("class: {}\n"), 3)


def test_group_devices_are_its_routers_and_their_hosts_only():
    d = devices()
    assert list(d) == ["C1", "C1 host", "C2", "C2 host"]
    assert d["C1"].node == "3.C1" and d["C1 host"].node == "3.C1.host" and d["C1 host"].kind == "host"


def test_goto_parses_known_devices():
    d = devices()
    assert goto.parse("goto C1", d) == goto.Command("goto", "C1")
    assert goto.parse("  goto   C2   host ", d) == goto.Command("goto", "C2 host")
    assert goto.parse("", d).verb == "empty"
    assert goto.parse("exit", d).verb == "exit"
    assert goto.parse("help", d).verb == "help"


@pytest.mark.parametrize("line", [
    "goto D1",                 # another group's router
    "goto 4.D1", "goto 3.C1",  # node ids are not device names
    "goto C1; sh", "goto C1 && id", "goto $(id)", "goto `id`", "goto C1|sh", "goto ../C1",
    "goto C1 host extra", "goto c1", "goto", "sh", "bash", "vtysh", "exit now",
    "goto C1\x00", "goto C1\x1b[A", "goto C1\nsh", "goto Ç1", "goto " + "C" * 300,
])
def test_hostile_lines_are_refused_before_anything_runs(line):
    with pytest.raises(goto.Refused) as exc:
        goto.parse(line, devices())
    assert all(c.isprintable() for c in str(exc.value))          # the message echoes nothing raw


def test_completion():
    d = devices()
    assert goto.complete("go", d) == ["goto "]
    assert goto.complete("goto ", d) == ["C1", "C1 host", "C2", "C2 host"]
    assert goto.complete("goto C1", d) == ["C1", "C1 host"]
    assert goto.complete("goto C1 h", d) == ["C1 host"]
    assert goto.complete("exit ", d) == []


def test_welcome_lists_the_devices():
    text = goto.welcome(3, "as3-cls", devices())
    assert "routers: C1 C2" in text and "AS 3" in text


# ---- cgroups ---------------------------------------------------------------------------------

def test_cgroup_v1_plan():
    p = cgroups.plan("v1", "cls", 3, Limits(pids=64, memory=256 << 20, cpu_weight=50), root="/cg")
    assert p.dirs == ("/cg/pids/minet-cls", "/cg/pids/minet-cls/as3", "/cg/memory/minet-cls",
                      "/cg/memory/minet-cls/as3", "/cg/cpu/minet-cls", "/cg/cpu/minet-cls/as3")
    assert dict(p.writes) == {"/cg/pids/minet-cls/as3/pids.max": "64",
                              "/cg/memory/minet-cls/as3/memory.limit_in_bytes": str(256 << 20),
                              "/cg/cpu/minet-cls/as3/cpu.shares": "512"}
    assert p.procs == ("/cg/pids/minet-cls/as3/cgroup.procs", "/cg/memory/minet-cls/as3/cgroup.procs",
                       "/cg/cpu/minet-cls/as3/cgroup.procs")


def test_cgroup_v2_plan_enables_the_controllers_first():
    p = cgroups.plan("v2", "cls", 4, Limits(pids=64, memory=256 << 20, cpu_weight=50), root="/cg")
    files = [f for f, _ in p.writes]
    assert files[:2] == ["/cg/cgroup.subtree_control", "/cg/minet-cls/cgroup.subtree_control"]
    assert dict(p.writes)["/cg/minet-cls/as4/memory.max"] == str(256 << 20)
    assert dict(p.writes)["/cg/minet-cls/as4/cpu.weight"] == "50"
    assert p.procs == ("/cg/minet-cls/as4/cgroup.procs",)


def test_rlimits_mode_plans_no_cgroup_and_bounds_address_space():
    import resource
    assert cgroups.plan("rlimits", "cls", 3, Limits()).dirs == ()
    limits = dict(cgroups.rlimits("rlimits", Limits(pids=64)))
    assert limits[resource.RLIMIT_NPROC] == 64 and resource.RLIMIT_AS in limits
    assert resource.RLIMIT_AS not in dict(cgroups.rlimits("v1", Limits()))


def test_detect(tmp_path):
    assert cgroups.detect(str(tmp_path)) == "rlimits"
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert cgroups.detect(str(tmp_path)) == "v2"
    (tmp_path / "cgroup.controllers").write_text("\n")          # a cgroup2 without controllers
    for c in ("pids", "memory", "cpu"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "tasks").write_text("")
    assert cgroups.detect(str(tmp_path)) == "v1"


def test_cpu_shares():
    assert cgroups.cpu_shares(100) == 1024 and cgroups.cpu_shares(1) == 10


# ---- the door shell is started safely ----------------------------------------------------------

def test_shell_argv_is_isolated_and_names_the_package_by_absolute_path():
    from minet_sdn.classroom import doors
    argv = doors.shell_argv("/run/minet-class/x/broker.sock")
    assert argv[1] == "-I" and argv[2] == "-c" and argv[-1] == "/run/minet-class/x/broker.sock"
    assert os.path.isabs(argv[0])
    pkg = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(doors.__file__))))
    assert repr(pkg) in argv[3]


# ---- kept configurations -----------------------------------------------------------------------

def test_saved_files_names_routers_of_the_topology_only(tmp_path):
    from minet_sdn.classroom import configs
    t = topo("class: {}\n")
    (tmp_path / "as3").mkdir()
    (tmp_path / "as3" / "C1.conf").write_text("hostname C1\n")
    (tmp_path / "as3" / "C2.conf").write_text("hostname C2\n")
    (tmp_path / "as4").mkdir()
    (tmp_path / "as4" / "D1.conf").write_text("hostname D1\n")
    got = configs.saved_files(t, str(tmp_path))
    assert [(a, n) for a, n, _ in got] == [(3, "C1"), (3, "C2"), (4, "D1")]
    assert [(a, n) for a, n, _ in configs.saved_files(t, str(tmp_path), group=4)] == [(4, "D1")]
    (tmp_path / "as4" / "C1.conf").write_text("x\n")              # AS3's router in AS4's folder
    with pytest.raises(ClassError) as exc:
        configs.saved_files(t, str(tmp_path))
    assert "as4/C1.conf: not a configuration of a router of AS4 (routers: D1)" in str(exc.value)
    (tmp_path / "as4" / "C1.conf").unlink()
    (tmp_path / "as9").mkdir()
    with pytest.raises(ClassError) as exc:
        configs.saved_files(t, str(tmp_path))
    assert "as9: not a folder of an AS of cls" in str(exc.value)
    with pytest.raises(ClassError):
        configs.saved_files(t, str(tmp_path / "missing"))


# ---- layer 2: goto SWITCH, goto HOST, the switch shell -------------------------------------------

L2 = """\
    layer2:
      switches: {S1: {dc: DCN, router: C1}, S2: {dc: DCN}}
      hosts: {H3: {switch: S1, vlan: 10}, vpn_1: {switch: S1, vlan: 30, vpn: true}}
      links: [{a: S1, b: S2}]
"""


def l2_devices():
    text = BASE.replace("  3: {server: VM1, routers: [C1, C2], configure: false}\n",
                        "  3:\n    server: VM1\n    routers: [C1, C2]\n    configure: false\n" + textwrap.indent(
                            textwrap.dedent(L2), "    "))
    return goto.group_devices(parse_topology(text + "class: {}\n", "t.yaml"), 3)


def test_a_groups_switches_and_hosts_are_devices_vpn_clients_are_not():
    d = l2_devices()
    assert list(d) == ["C1", "C1 host", "C2", "C2 host", "S1", "S2", "H3"]
    assert (d["S1"].kind, d["S1"].node) == ("switch", "3.S1") and (d["H3"].kind, d["H3"].node) == ("l2host", "3.H3")
    assert goto.parse("goto S1", d) == goto.Command("goto", "S1")
    with pytest.raises(goto.Refused):
        goto.parse("goto vpn_1", d)
    assert goto.complete("goto S", d) == ["S1", "S2"]
    text = goto.welcome(3, "as3-cls", d)
    assert "switches: S1 S2" in text and "hosts: H3" in text


@pytest.mark.parametrize("line,argv", [
    ("ovs-vsctl show", ("show",)),
    ("show", ("show",)),
    ("ovs-vsctl set port 3-H3 tag=10", ("set", "port", "3-H3", "tag=10")),
    ("ovs-vsctl set port C1router 'trunks=10,20'", ("set", "port", "C1router", "trunks=10,20")),
    ("ovs-vsctl --db=unix:/x show", ("--db=unix:/x", "show")),          # l2ctl refuses it (below)
])
def test_switch_lines_become_argument_lists(line, argv):
    assert goto.parse_switch(line) == goto.SwitchCommand("vsctl", argv)


@pytest.mark.parametrize("line", ["sh", "bash -c id", "ovs-ofctl dump-flows br0", "ovs-vsctl", "set 'port",
                                  "show\x1b[A", "show; id", "ovs-vsctl show\x00", "é"])
def test_switch_shell_refuses_what_is_not_ovs_vsctl(line):
    with pytest.raises(goto.Refused) as exc:
        goto.parse_switch(line)
    assert all(c.isprintable() for c in str(exc.value))


def test_switch_completion():
    ports = ["3-H3", "C1router"]
    assert goto.complete_switch("ovs", ports) == ["ovs-vsctl "]
    assert "ovs-vsctl set " in goto.complete_switch("ovs-vsctl s", ports)
    assert goto.complete_switch("ovs-vsctl set port ", ports) == ["ovs-vsctl set port 3-H3 ", "ovs-vsctl set port C1router "]
    assert goto.complete_switch("set port 3-H3 t", ports) == ["set port 3-H3 tag=", "set port 3-H3 trunks="]


@pytest.fixture
def l2map(tmp_path, monkeypatch):
    """A switch map like provisioning's, and an ovs-vsctl that records what would run."""
    from minet_sdn.provision import l2ctl, l2switchd
    path = tmp_path / "switches.json"
    path.write_text(json.dumps({"switches": {
        "3.S1": {"bridge": "s1", "asn": 3, "configure": False, "rundir": str(tmp_path / "l2-3"),
                 "ports": {"3-H3": "s1h1", "C1router": "s1r"}},
        "4.S1": {"bridge": "s1", "asn": 4, "configure": False, "rundir": str(tmp_path / "l2-4"),
                 "ports": {"4-H4": "s1h1"}}}}))
    ran = []
    monkeypatch.setattr(l2switchd, "vsctl", lambda rundir, *args, **kw: ran.append((rundir, args)) or "")
    return str(path), ran


@pytest.mark.parametrize("argv", [
    ["--db=unix:/run/openvswitch/db.sock", "show"],           # the server's own OvS
    ["show", "--db=unix:/run/openvswitch/db.sock"],
    ["-vconsole:dbg", "show"], ["--timeout=0", "show"], ["--", "--id=@p", "create", "port", "name=x"],
    ["add-br", "evil"], ["del-br", "br0"], ["add-port", "br0", "x"], ["del-port", "br0", "3-H3"],
    ["set", "bridge", "br0", "fail_mode=secure"], ["set", "interface", "3-H3", "type=patch"],
    ["set", "port", "3-H3", "other_config:x=1"], ["set", "port", "3-H3", "tag=10;id"],
    ["set", "port", "3-H3", "tag=4096"], ["set", "port", "3-H3", "trunks=1,$(id)"],
    ["set", "port", "3-H3", "vlan_mode=evil"], ["set", "port", "4-H4", "tag=10"],     # another group's port
    ["set", "port", "s1h1", "tag=10"],                        # a real name, not the student's
    ["set-controller", "br0", "tcp:127.0.0.1:6653"], ["emer-reset"], ["list", "bridge"], ["list-ports", "s1"],
    ["get", "port", "3-H3", "name"], ["clear", "port", "3-H3", "external_ids"],
])
def test_l2ctl_refuses_every_escape_from_its_allow_list(l2map, argv):
    from minet_sdn.provision import l2ctl
    path, ran = l2map
    code, out, err = l2ctl.execute(path, "3.S1", argv)
    assert code == 2 and err.startswith("ovs-vsctl: ") and err.count("\n") == 1 and ran == []


def test_l2ctl_runs_allowed_commands_on_the_groups_switch_only(l2map, tmp_path):
    from minet_sdn.provision import l2ctl
    path, ran = l2map
    assert l2ctl.execute(path, "3.S1", ["set", "port", "3-H3", "tag=10"])[0] == 0
    assert l2ctl.execute(path, "3.S1", ["set", "port", "C1router", "trunks=10,20"])[0] == 0
    assert ran == [(str(tmp_path / "l2-3"), ("set", "port", "s1h1", "tag=10")),
                   (str(tmp_path / "l2-3"), ("set", "port", "s1r", "trunks=[10,20]"))]
    assert l2ctl.execute(path, "9.S1", ["show"])[0] == 2                   # a switch the map does not have


def test_saved_switch_files_are_read_line_by_line():
    from minet_sdn.classroom import configs
    text = "# switch 3.S1\novs-vsctl set port 3-H3 tag=10\n\novs-vsctl set port C1router trunks=10,20\n"
    assert configs.switch_commands("f.ovs", text) == [["set", "port", "3-H3", "tag=10"],
                                                      ["set", "port", "C1router", "trunks=10,20"]]
    with pytest.raises(ClassError) as exc:
        configs.switch_commands("f.ovs", "ovs-vsctl show\nrm -rf /\n")
    assert str(exc.value) == "f.ovs:2: not an `ovs-vsctl ...` line"


# ---- the vty guard: vtysh -> the router's daemons ------------------------------------------------

@pytest.mark.parametrize("line", [
    "log file /var/lib/minet-sdn/x/3.C2/frr.conf", "lo fi /tmp/x", "log filtered-file /tmp/x", "log filt /x", "LOG FILE /tmp/x debugging", "do log file /x",
    "log extended x", "destination file /tmp/x", "destination fd 5", "dump bgp all /tmp/x 10m", "du b updates /x",
    "banner motd file /etc/shadow",
    # not on the old deny-list, and each opens a path or a namespace by a name the student gives
    "rpki cache 10.0.0.1 22 student id_rsa preference 1", "rpki cache 10.0.0.1 22 student /root/.ssh/id_rsa id.pub preference 1",
    "no rpki cache h 22 u key", "netns other-group", "match script x", "output file x", "copy x running-config",
    "agentx", "fpm address 1.2.3.4", "zebra route-map delay-timer 1", "log syslog", "log stdout", "no log file",
    "log commands", "banner motd line hi", "logging", "clear log cmdline-targets", "enable password x",
    "service password-encryption", "description ../../other/frr.conf", "frobnicate now", "do", "no",
])
def test_the_vty_guard_refuses_what_makes_a_daemon_open_a_path(line):
    """Everything a daemon would open by a name the student chooses, and anything the allow-list
    does not know, is refused."""
    from minet_sdn.classroom import vtyguard
    assert vtyguard.refusal(line)
    with pytest.raises(vtyguard.Refusal):
        vtyguard.check(line)


def _path_commands():
    """Every command of this machine's FRR (the vtysh binary holds them all) whose grammar takes a
    file path, an ssh key file or a network namespace name, with `x` for that name (a bare name:
    a daemon opens it relative to its own directory)."""
    import re
    try:
        data = open("/usr/bin/vtysh", "rb").read()
    except OSError:
        return []
    found = set()
    for m in re.finditer(rb"[\x20-\x7e]{6,}", data):
        spec = m.group().decode()
        if re.match(r"(no )?[a-z][a-z0-9-]* ", spec) and re.search(
                r"\b(FILENAME|FILE|PATH|SSH_PRIVKEY|SSH_PUBKEY|SERVER_PUBKEY)\b|netns NAME|\bscript\b", spec):
            found.add(spec)
    lines = []
    for spec in sorted(found):
        words = []
        for tok in re.sub(r"\$\w+", "", spec).split():
            t = tok.strip("<>[]{}")
            is_path = bool(re.search(r"\b(FILENAME|FILE|PATH|SSH_PRIVKEY|SSH_PUBKEY|SERVER_PUBKEY)\b", tok)) \
                or (t == "NAME" and words[-1:] == ["netns"])
            if "|" in t:                                  # an alternative: the last one (the ssh port form)
                t = t.split("|")[-1].strip("<>[]{}()")
                t = t.split("-")[0] if re.fullmatch(r"\d+-\d+", t) else t
            if re.fullmatch(r"\(\d+-\d+\)", t):
                t = t[1:].split("-")[0]
            elif re.fullmatch(r"[A-Z][A-Z0-9_.:]*", t):
                t = "1.2.3.4" if t == "A.B.C.D" else "x"
            words.append("x" if is_path else t)
            if is_path:
                lines.append(" ".join(words))
                break
    return lines


def test_every_frr_command_that_takes_a_path_is_refused():
    """Read from the FRR installed here, not from a list kept in the guard: a command that takes a
    path and is not refused fails this test (the allow-list is what refuses it)."""
    from minet_sdn.classroom import vtyguard
    lines = _path_commands()
    if not lines:
        pytest.skip("no /usr/bin/vtysh here")
    assert any(line.startswith("rpki cache") for line in lines) and any(line.startswith("netns") for line in lines)
    assert [line for line in lines if vtyguard.refusal(line) is None] == []


@pytest.mark.parametrize("line, sent", [
    ("show running-config", "show running-config"), ("sh ip bgp sum", "show ip bgp sum"),
    ("do sh run", "do show run"), ("conf t", "configure terminal"), ("configure terminal file-lock", "configure terminal file-lock"),
    ("router bgp 3", "router bgp 3"), ("ro bgp 3", "router bgp 3"), ("neighbor 1.2.3.4 remote-as 1", "neighbor 1.2.3.4 remote-as 1"),
    ("ne 1.2.3.4 remote-as 1", "neighbor 1.2.3.4 remote-as 1"), ("net 1.0.0.0/8", "network 1.0.0.0/8"),
    ("address-family ipv6 unicast", "address-family ipv6 unicast"), ("exit-address-family", "exit-address-family"),
    ("write memory", "write memory"), ("wr", "write"), ("do write terminal\n", "do write terminal"), ("ex", "exit"),
    ("end", "end"), ("terminal monitor", "terminal monitor"), ("XFRR_start_configuration", "XFRR_start_configuration"),
    ("ip prefix-list P seq 5 permit 1.0.0.0/8 le 24", "ip prefix-list P seq 5 permit 1.0.0.0/8 le 24"),
    ("ipv6 route 2001:db8::/32 Null0", "ipv6 route 2001:db8::/32 Null0"), ("route-map RM permit 10", "route-map RM permit 10"),
    ("match ip address prefix-list P", "match ip address prefix-list P"), ("set local-preference 200", "set local-preference 200"),
    ("bgp community-list standard C permit 1:2", "bgp community-list standard C permit 1:2"),
    ("bgp as-path access-list A permit ^1_", "bgp as-path access-list A permit ^1_"),
    ("interface port_ZURI", "interface port_ZURI"), ("ip address 1.0.0.1/24", "ip address 1.0.0.1/24"),
    ("ip ospf cost 10", "ip ospf cost 10"), ("no shut", "no shutdown"), ("router ospf", "router ospf"),
    ("area 0 range 1.0.0.0/8", "area 0 range 1.0.0.0/8"), ("clear ip bgp * soft", "clear ip bgp * soft"),
    ("rpki cache 10.0.0.1 3323 preference 1", "rpki cache 10.0.0.1 3323 preference 1"),
    ("lo fi x", "log-adjacency-changes fi x"),           # an abbreviation is sent as the allowed word, never guessed
    ("ba motd file x", "bandwidth motd file x"),        # into `log` / `banner` by the daemon
    ("", ""),
])
def test_the_vty_guard_lets_the_course_through_as_the_keywords_it_resolved(line, sent):
    from minet_sdn.classroom import vtyguard
    assert vtyguard.refusal(line) is None
    assert vtyguard.check(line) == sent


def test_the_vty_guard_relays_commands_answers_refusals_and_passes_descriptors(tmp_path):
    """A fake daemon behind the guard: what it receives, what vtysh's side gets back."""
    import array
    import threading
    from minet_sdn.classroom import vtyguard
    vty = tmp_path / "vty"
    vty.mkdir()
    seen = []
    srv = socket_server(str(vty / "bgpd.vty"))

    def daemon():
        conn, _ = srv.accept()
        buf = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                cmd, buf = buf.split(b"\0", 1)
                seen.append(cmd.decode())
                if cmd == b"terminal monitor":
                    r, w = os.pipe()
                    os.write(w, b"log line")
                    conn.sendmsg([b"\0\0\0\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [r]))])
                    os.close(r)
                    os.close(w)
                else:
                    conn.sendall(f"ran {cmd.decode()}\n".encode() + b"\0\0\0\0")
    threading.Thread(target=daemon, daemon=True).start()
    guard = vtyguard.Guard(str(vty), str(tmp_path / "guard"), os.getgid())
    try:
        assert guard.sockets == [("bgpd.vty", str(tmp_path / "guard" / "bgpd.vty"))]
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(guard.sockets[0][1])
        c.settimeout(10)

        def ask(cmd: bytes):
            c.sendall(cmd + b"\0")
            data, fds = b"", []
            while not (len(data) >= 4 and data[-4:-1] == b"\0\0\0"):
                msg, anc, _f, _a = c.recvmsg(4096, socket.CMSG_SPACE(16))
                data += msg
                for _l, _k, payload in anc:
                    fds += list(array.array("i", payload[:len(payload) - len(payload) % 4]))
            return data, fds
        assert ask(b"show running-config") == (b"ran show running-config\n\0\0\0\0", [])
        out, _ = ask(b"log file /tmp/elsewhere")
        assert out.startswith(b"% `log` is not") and out.endswith(b"\0\0\0\x01")
        out, _ = ask(b"rpki cache 10.0.0.1 22 student id_rsa preference 1")
        assert out.startswith(b"% rpki cache: only") and out.endswith(b"\0\0\0\x01")
        assert ask(b"sh ip bgp")[0] == b"ran show ip bgp\n\0\0\0\0"          # the daemon gets the keywords
        out, _ = ask(b"show \x1b[31m")
        assert out.startswith(b"% only printable ASCII")
        _, fds = ask(b"terminal monitor")
        assert len(fds) == 1 and os.read(fds[0], 100) == b"log line"
        os.close(fds[0])
        assert seen == ["show running-config", "show ip bgp", "terminal monitor"]   # never a refused one
        c.close()
    finally:
        guard.close()
        srv.close()
    assert not (tmp_path / "guard").exists()


def socket_server(path: str):
    import socket as _s
    s = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    return s


# ---- doors on real servers (--master): the master's bundle ---------------------------------------

def test_the_master_sends_each_server_its_own_groups_credentials_only(tmp_path):
    from minet_sdn.provision import doors_remote
    t = topo("class: {}\n")
    store = credentials.Store("cls", root=str(tmp_path))
    assert doors_remote.door_servers(t) == ["VM1", "VM2"]
    doc = doors_remote.bundle(t, "VM1", False, store=store)
    assert sorted(doc["groups"]) == ["3"] and doc["server"] == "VM1" and doc["action"] == "up"
    g = doc["groups"]["3"]
    assert store.passwords[3] not in json.dumps(doc) and "password" not in g      # the hash only
    salt = g["password_hash"].split("$")[2]
    assert credentials.CRYPT_RE.fullmatch(g["password_hash"])
    assert credentials.password_hash(store.passwords[3], salt) == g["password_hash"]
    assert credentials.password_hash("not-it-at-all", salt) != g["password_hash"]
    assert "PRIVATE KEY" in g["host_key"]
    assert g["host_key_public"] == store.host_key_public(3)
    assert doors_remote.bundle(t, "VM2", True, store=store)["groups"] == {}       # down: no secrets
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(doc))
    assert doors_remote.read_bundle(str(path), t, "VM1") == doc
    for server, text in (("VM2", json.dumps(doc)), ("VM1", "not json"), ("VM1", json.dumps(dict(doc, version=9)))):
        path.write_text(text)
        with pytest.raises(doors_remote.BundleError) as exc:
            doors_remote.read_bundle(str(path), t, server)
        assert str(exc.value).startswith(str(path))


def test_a_server_takes_hashes_only_and_refuses_anything_else(tmp_path):
    from minet_sdn.provision import doors_remote
    t = topo("class: {}\n")
    doc = doors_remote.bundle(t, "VM1", False, store=credentials.Store("cls", root=str(tmp_path / "master")))
    h = credentials.Hashes("cls", str(tmp_path / "server"), {3: doc["groups"]["3"]["password_hash"]})
    assert h.crypt(3) == doc["groups"]["3"]["password_hash"] and h.passwords == {}
    h.save()
    assert os.listdir(tmp_path / "server" / "cls") == []                  # nothing written but the folder
    with pytest.raises(ClassError):
        h.ensure([3, 4])
    for bad in ("Zk8tX2pqR4mN7vWc", "$1$abc$def", "$6$salt$short", None):   # a password, MD5, not crypt
        with pytest.raises(ClassError):
            credentials.Hashes("cls", str(tmp_path / "server"), {3: bad})
    # a version-1 bundle (passwords) is refused by the server, naming the file
    path = tmp_path / "old.json"
    path.write_text(json.dumps(dict(doc, version=1)))
    with pytest.raises(doors_remote.BundleError) as exc:
        doors_remote.read_bundle(str(path), t, "VM1")
    assert str(exc.value).startswith(str(path))


def test_no_class_section_means_no_door_servers():
    from minet_sdn.provision import doors_remote
    assert doors_remote.door_servers(topo()) == []


def test_provision_doors_needs_server():
    from minet_sdn.cli import provision
    import io, contextlib as cl
    err = io.StringIO()
    with cl.redirect_stderr(err):
        code = provision.main(["--topology", "topologies/demo.yaml", "--master", "--doors", "x.json"])
    assert code == 2 and "--doors goes with --server" in err.getvalue()


def test_snapshots_commit_what_changed_per_group_with_real_git(tmp_path):
    from minet_sdn.classroom import configs
    repo = tmp_path / "history"
    (repo / "as3").mkdir(parents=True)
    (repo / "as3" / "C1.conf").write_text("hostname C1\n")
    (repo / "as3" / "S1.ovs").write_text("ovs-vsctl set port 3-H3 tag=10\n")
    (repo / "as12").mkdir()
    (repo / "as12" / "X1.conf").write_text("hostname X1\n")
    first = configs.commit_snapshot(str(repo), "2026-12-08 01:00")
    assert first and len(first) == 40
    assert configs.commit_snapshot(str(repo), "2026-12-08 02:00") is None           # nothing changed
    (repo / "as12" / "X1.conf").write_text("hostname X1\nrouter bgp 12\n")
    second = configs.commit_snapshot(str(repo), "2026-12-08 03:00")
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H%n%s%n%b%n--"], capture_output=True,
                         text=True, check=True).stdout
    assert log.count("--\n") == 2 and second in log and first in log
    assert "snapshot 2026-12-08 03:00: 1 groups changed\nAS12: X1.conf\n" in log
    assert "snapshot 2026-12-08 01:00: 2 groups changed\nAS3: C1.conf, S1.ovs\nAS12: X1.conf\n" in log
    diff = subprocess.run(["git", "-C", str(repo), "show", "--stat", "--format=", second], capture_output=True,
                          text=True, check=True).stdout
    assert "as12/X1.conf" in diff and "as3" not in diff


def test_the_switch_prompt_sends_word_lists_to_the_broker_and_runs_nothing_itself(monkeypatch, capsys):
    import io
    from minet_sdn.classroom import shell

    class FakeDoor:
        asn, tty = 3, False
        sent = []

        def vsctl(self, key, argv):
            self.sent.append((key, argv))
            return (0, "3-H3\nC1router\n", "") if argv == ["list-ports", "br0"] else (2, "", "ovs-vsctl: no\n")
    door = FakeDoor()
    monkeypatch.setattr(sys, "stdin", io.StringIO("ovs-vsctl set port 3-H3 'tag=10'\nsh -c id\n$(id)\nhelp\nexit\n"))
    assert shell.switch_shell(door, "S1") == 0
    assert door.sent == [("S1", ["list-ports", "br0"]), ("S1", ["set", "port", "3-H3", "tag=10"])]
    out = capsys.readouterr().out
    assert "ovs-vsctl: no" in out and out.count("only ovs-vsctl on this switch") == 2 and "ovs-vsctl show" in out


@pytest.mark.parametrize("mode", ["v2", "v1"])
def test_a_switch_command_runs_in_the_groups_cgroups_not_in_the_broker(tmp_path, monkeypatch, mode):
    """The broker hands a group's switch command to a process of its own that joins the group's
    cgroups first (files of a stand-in cgroup tree here): that process, not the broker, is the one
    put in the group, and l2ctl's answer (here: no such switch) comes back."""
    from minet_sdn.classroom import broker
    plan = cgroups.plan(mode, "t", 3, Limits(), root=str(tmp_path))
    for d in plan.dirs:
        os.makedirs(d, exist_ok=True)
    b = broker.Broker({"groups": {}, "limits": {}, "cgroup_mode": mode, "tag": "t"})
    monkeypatch.setattr(b, "cgroup_plan", lambda asn: plan if asn == 3 else None)
    answer = b.charged(3, {"map": str(tmp_path / "no-such-switches.json"), "switch": "3.S1", "argv": ["show"]})
    assert answer == {"code": 2, "out": "", "err": "ovs-vsctl: no switch 3.S1 here (is the lab provisioned?)\n"}
    pids = {open(p).read() for p in plan.procs}
    assert len(plan.procs) == (3 if mode == "v1" else 1) and len(pids) == 1
    pid = int(pids.pop())
    assert pid != os.getpid() and pid > 0


def test_the_vty_guard_binds_first_and_serves_only_once_started(tmp_path):
    """The sandbox binds the guard's sockets, then its relay child starts serving them."""
    import threading
    from minet_sdn.classroom import vtyguard
    vty = tmp_path / "vty"
    vty.mkdir()
    srv = socket_server(str(vty / "zebra.vty"))
    before = set(threading.enumerate())
    guard = vtyguard.Guard(str(vty), str(tmp_path / "g"), os.getgid(), start=False)
    try:
        assert set(threading.enumerate()) - before == set() and os.path.exists(guard.sockets[0][1])
        guard.start()
        assert len(set(threading.enumerate()) - before) == 1
    finally:
        guard.close()
        srv.close()


def test_the_door_and_the_switch_prompts_read_lines_the_same_way(monkeypatch, capsys):
    """One line reader for both prompts: refused lines answered with the prompt's name, `exit`
    and end of input stop it, nothing after `exit` is read."""
    import io
    from minet_sdn.classroom import shell
    monkeypatch.setattr(sys, "stdin", io.StringIO("help\nfoo\ngoto X\n\nexit\nhelp\n"))
    assert [c.verb for c in shell.commands(False, "P> ", lambda line: goto.parse(line, {}), "door")] == ["help", "empty"]
    out = capsys.readouterr().out
    assert "door: unknown command 'foo'" in out and "door: no device 'X'" in out
    monkeypatch.setattr(sys, "stdin", io.StringIO("show\nrm -rf /\n"))
    assert [c.argv for c in shell.commands(False, "S$ ", goto.parse_switch, "ovs-vsctl")] == [("show",)]
    assert "ovs-vsctl: unknown command 'rm'" in capsys.readouterr().out


def test_the_sandbox_relays_vtysh_from_a_child_of_its_own(tmp_path):
    """sandbox.start_relay: the guard's sockets bound by the sandbox, served by a forked child (it
    will be in the group's cgroups, and may start threads: the sandbox itself, once in its own PID
    namespace, may not); commands reach the daemon as the keywords resolved; killing the child
    ends the relay."""
    import signal
    import threading
    from minet_sdn.classroom import sandbox
    vty = tmp_path / "vty"
    vty.mkdir()
    srv = socket_server(str(vty / "bgpd.vty"))
    seen = []

    def daemon():
        conn, _ = srv.accept()
        buf = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                cmd, buf = buf.split(b"\0", 1)
                seen.append(cmd.decode())
                conn.sendall(b"ok\n\0\0\0\0")
    threading.Thread(target=daemon, daemon=True).start()
    guard, relay = sandbox.start_relay({"vty_dir": str(vty), "vty_guard_dir": str(tmp_path / "g"), "gid": os.getgid()})
    try:
        assert relay > 0 and all(s.fileno() == -1 for s in guard.listeners)     # served by the child only
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(20)
        c.connect(guard.sockets[0][1])
        c.sendall(b"sh ip bgp\0")
        assert c.recv(100) == b"ok\n\0\0\0\0" and seen == ["show ip bgp"]
        c.sendall(b"log file /tmp/x\0")
        assert c.recv(200).startswith(b"% `log` is not")
        c.close()
    finally:
        os.kill(relay, signal.SIGKILL)
        os.waitpid(relay, 0)
        srv.close()
