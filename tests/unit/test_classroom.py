"""The classroom's pure parts: the `class:` section, credentials, the door's sshd_config, the
door shell's parsing of hostile input, cgroup planning. No root needed."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from minet_sdn.classroom import ClassError, cgroups, credentials, goto
from minet_sdn.classroom.settings import ClassSettings, Limits
from minet_sdn.classroom.sshd import DoorConfig, config_text
from minet_sdn.topology import TopologyError, parse_topology

BASE = textwrap.dedent("""\
    name: cls
    servers: [VM1, VM2]
    ases:
      1: {server: VM1, routers: [A1]}
      2: {server: VM2, routers: [B1]}
      3: {server: VM1, routers: [C1, C2], configure: false}
      4: {server: VM2, routers: [D1], configure: false}
    links:
      - {a: 1.A1, b: 2.B1, rel: peer}
      - {a: 1.A1, b: 3.C1, rel: provider}
      - {a: 2.B1, b: 4.D1, rel: provider}
    """)


def topo(extra: str = ""):
    return parse_topology(BASE + extra, "t.yaml")


def problems(extra: str):
    with pytest.raises(TopologyError) as exc:
        topo(extra)
    return exc.value.problems


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
