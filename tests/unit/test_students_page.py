"""The students' page (classroom/page.py), no root: the `class.page` settings, what the page shows
(connections, matrix grid, known names), and the app with fake runners: login and its throttle,
the looking glass and measure form refusing hostile input before anything runs, per-client rate
limits, and no way to act on the lab (no fail/restore, no other methods)."""
from __future__ import annotations

import io
import json

import pytest

from minet_sdn.classroom import page
from minet_sdn.classroom.page import StudentsPage, check_destination, compact_matrix, connections, known_names
from minet_sdn.watch.measure import MeasureError
from tests.unit.class_support import FOUR_ASES, IXP, class_problems, class_topo

HOSTILE = ["show bgp summary; id", "show bgp summary | sh", "show ip route $(id)", "show ip route `id`",
           "show bgp summary\nconfigure terminal", "show ip route 10.0.0.0/8 && reboot", "show running-config",
           "configure terminal", "write memory", "clear ip bgp *", "start-shell", "show bgp 'x'", "",
           "do shell", "show ip route >/tmp/x", "show " + "a" * 300]
HOSTILE_DEST = ["10.1.0.1; id", "$(id)", "`id`", "-f", "--help", "10.1.0.1 -c 1000", "a|b", "x\ny",
                "evil.example.com", "fe80::1%eth0", "", " ", "1.A1;", "../../etc/passwd", "10.1.0.1\x00"]


BASE = FOUR_ASES.format(name="sp") + IXP


def topo(extra: str = ""):
    return class_topo("sp", extra, ixp=True)


def problems(extra: str):
    return class_problems("sp", extra, ixp=True)


# ---- settings ----------------------------------------------------------------------------------

def test_the_page_defaults_to_group_logins_on_port_base():
    s = topo("class: {}\n").classroom
    assert (s.page, s.page_listen_port) == ("groups", 2000)
    s = topo("class: {page: public, page_port: 9000, port_base: 3000}\n").classroom
    assert (s.page, s.page_listen_port) == ("public", 9000)
    assert topo("class: {page: 'off'}\n").classroom.page == "off"


@pytest.mark.parametrize("extra, key", [
    ("class: {page: open}\n", "class.page"),
    ("class: {page: true}\n", "class.page"),
    ("class: {page_port: 80}\n", "class.page_port"),
    ("class: {page_port: '8000'}\n", "class.page_port"),
    ("class: {page_port: 2003}\n", "class.page_port"),          # the door of AS 3
])
def test_bad_page_settings_name_the_key(extra, key):
    got = problems(extra)
    assert len(got) == 1 and f"class: {key}" in got[0] or key in got[0], got


def test_bad_page_setting_is_one_line_exit_2_from_validate(tmp_path, capsys):
    from minet_sdn.cli.main import main
    path = tmp_path / "t.yaml"
    path.write_text(BASE + "class: {page: everyone}\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "class.page" in err[0] and "t.yaml" in err[0] and "everyone" in err[0]


# ---- what the page shows -----------------------------------------------------------------------

def test_connections_list_both_ends_with_relationships_and_ixp_ports():
    t = topo()
    rows = connections(t)
    link2 = next(l for l in t.links if l.id == 2)                       # 1.A1 is 3.C1's provider
    one = next(r for r in rows[1] if r["link"] == 2)
    three = next(r for r in rows[3] if r["link"] == 2)
    assert one == {"link": 2, "router": "1.A1", "neighbor_as": 3, "neighbor_router": "3.C1",
                   "neighbor_is": "customer", "ip": f"{link2.a.ip}/{link2.prefixlen}", "neighbor_ip": link2.b.ip,
                   "ip6": f"{link2.a.ip6}/{link2.prefixlen6}", "neighbor_ip6": link2.b.ip6, "ixp": None}
    assert three["neighbor_is"] == "provider" and three["router"] == "3.C1" and three["neighbor_ip"] == link2.a.ip
    peer = next(r for r in rows[2] if r["link"] == 1)
    assert peer["neighbor_is"] == "peer" and peer["neighbor_router"] == "1.A1"
    # every inter-AS link twice, once from each side
    assert sum(1 for rs in rows.values() for r in rs if r["link"]) == 2 * len(t.links)
    ixp = t.ixps[100]
    port = next(r for r in rows[3] if r["ixp"] == 100)
    member = next(m for m in ixp.members if m.router == "3.C2")
    assert port["router"] == "3.C2" and port["ip"] == f"{member.ip}/{ixp.prefixlen}"
    assert port["neighbor_ip"] == ixp.route_server_ip and port["ixp_members"] == [1, 2]
    assert not any(r["ixp"] for r in rows[4])


def test_the_matrix_grid_keeps_every_pair_and_tells_failed_from_unmeasured():
    rec = {"asns": [1, 2, 3], "ok": 3, "total": 5, "family": 4, "at": 1.5,
           "pairs": [{"src": 1, "dst": 2, "ok": True, "rtt_ms": 1.234}, {"src": 2, "dst": 1, "ok": True, "rtt_ms": 2.0},
                     {"src": 1, "dst": 3, "ok": False, "rtt_ms": None}, {"src": 3, "dst": 1, "ok": True, "rtt_ms": 0.5},
                     {"src": 2, "dst": 3, "ok": True, "rtt_ms": 3.0}]}
    g = compact_matrix(rec)
    assert g["asns"] == [1, 2, 3] and g["ok"] == 3 and g["total"] == 5
    assert g["grid"] == [[None, 1.2, False], [2.0, None, 3.0], [0.5, None, None]]
    assert compact_matrix(None) is None and compact_matrix({"pairs": "x"}) is None


def test_destinations_are_addresses_or_names_the_topology_knows():
    t = topo()
    names = known_names(t)
    from minet_sdn.topology.addressing import topology_addressing
    a = topology_addressing(t)
    assert check_destination("10.1.0.1", names) == "10.1.0.1"
    assert check_destination("2001:db8::1", names) == "2001:db8::1"
    assert check_destination("3.C2", names) == a[3].routers["C2"].loopback
    assert check_destination("3.c2.host", names) == a[3].routers["C2"].host_ip
    assert check_destination("host.c2.group3", names) == a[3].routers["C2"].host_ip
    assert check_destination("a1.group1.", names) == a[1].routers["A1"].loopback
    for bad in HOSTILE_DEST + [None, 7, ["10.1.0.1"]]:
        with pytest.raises(MeasureError):
            check_destination(bad, names)


# ---- the app -------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Page:
    """The app with fake runners that record what they were asked to run."""

    def __init__(self, access="groups", clock=None):
        self.topo = topo("class: {}\n")
        self.runs = []
        self.users = {"as3-sp": (3, "good-password-3x"), "as4-sp": (4, "good-password-4x")}
        self.clock = clock or Clock()
        self.app = StudentsPage(self.topo, access, page.password_checker(lambda: self.users),
                                lambda: {"asns": [1, 2], "ok": 2, "total": 2, "pairs": [
                                    {"src": 1, "dst": 2, "ok": True, "rtt_ms": 1.0},
                                    {"src": 2, "dst": 1, "ok": True, "rtt_ms": 1.0}]},
                                self.fake_lg, self.fake_measure, clock=self.clock)
        self.cookie = None

    def fake_lg(self, router, command):
        self.runs.append(("lg", router, command))
        return 0, f"output of {command} on {router}"

    def fake_measure(self, asn, tool, dest):
        self.runs.append(("measure", asn, tool, dest))
        return 0, f"{tool} from AS{asn} to {dest}"

    def call(self, method, path, body=None, ctype="application/json", cookie=None, addr="127.0.0.1"):
        raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        env = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_TYPE": ctype if body is not None else "",
               "CONTENT_LENGTH": str(len(raw)), "wsgi.input": io.BytesIO(raw), "REMOTE_ADDR": addr}
        cookie = self.cookie if cookie is None else cookie
        if cookie:
            env["HTTP_COOKIE"] = cookie
        seen = {}
        out = b"".join(self.app(env, lambda status, headers: seen.update(status=int(status.split()[0]),
                                                                         headers=headers)))
        headers = dict(seen["headers"])
        ctype = headers["Content-Type"]
        return seen["status"], headers, json.loads(out) if ctype.startswith("application/json") else out

    def login(self, user="as3-sp", password="good-password-3x"):
        code, headers, body = self.call("POST", "/api/login", {"user": user, "password": password})
        if code == 200:
            self.cookie = headers["Set-Cookie"].split(";")[0]
        return code, headers, body


def test_a_groups_page_shows_nothing_before_login_and_everything_after():
    p = Page()
    code, headers, html = p.call("GET", "/")
    assert code == 200 and b"students.js" in html
    assert "script-src 'self'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"
    code, _, info = p.call("GET", "/api/info")
    assert code == 200 and info["me"] is None and "routers" not in info
    for method, path in (("GET", "/api/matrix"), ("GET", "/api/connections")):
        assert p.call(method, path)[0] == 401
    assert p.call("POST", "/api/lg", {"router": "1.A1", "command": "show bgp summary"})[0] == 401
    assert p.call("POST", "/api/measure", {"tool": "ping", "from": 3, "dest": "10.1.0.1"})[0] == 401
    assert p.runs == []
    code, headers, me = p.login()
    assert code == 200 and me == {"user": "as3-sp", "asn": 3}
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    info = p.call("GET", "/api/info")[2]
    assert info["me"] == {"user": "as3-sp", "asn": 3} and "3.C2" in info["routers"]
    m = p.call("GET", "/api/matrix")[2]["matrix"]
    assert m["grid"] == [[None, 1.0], [1.0, None]]
    conn = p.call("GET", "/api/connections")[2]["ases"]
    assert [a["asn"] for a in conn] == [1, 2, 3, 4]
    assert p.call("POST", "/api/logout", {})[0] == 200
    assert p.call("GET", "/api/matrix")[0] == 401                     # the session is gone


def test_wrong_passwords_are_refused_and_brute_force_is_throttled():
    clock = Clock()
    p = Page(clock=clock)
    for bad in (("as3-sp", "good-password-4x"), ("as3-sp", ""), ("nobody", "good-password-3x"), ("as3-sp", "x" * 200)):
        code, headers, body = p.login(*bad)
        assert code in (403, 429) and "Set-Cookie" not in headers, (bad, code)
    assert p.call("GET", "/api/matrix")[0] == 401
    for _ in range(6):
        p.login("as3-sp", "guess")
    code, headers, body = p.login()                                 # even the right one, for now
    assert code == 429 and "Retry-After" in headers and "too many" in body["error"]
    assert p.login("as4-sp", "good-password-4x", )[0] == 429         # same address
    clock.t += 120                                                   # the bucket refills
    assert p.login()[0] == 200
    assert p.call("POST", "/api/login", b"user=as3-sp&password=x", ctype="application/x-www-form-urlencoded")[0] == 400
    assert p.call("POST", "/api/login", ["as3-sp"])[0] == 400


def test_a_rotated_password_takes_effect_at_the_next_login():
    p = Page()
    p.users["as3-sp"] = (3, "rotated-password")
    assert p.login()[0] == 403
    assert p.login("as3-sp", "rotated-password")[0] == 200


@pytest.mark.parametrize("command", HOSTILE)
def test_the_looking_glass_refuses_hostile_commands_before_running_anything(command):
    p = Page()
    p.login()
    code, _, body = p.call("POST", "/api/lg", {"router": "1.A1", "command": command})
    assert code == 400 and body["error"], body
    assert p.runs == []


def test_the_looking_glass_runs_allowed_commands_on_known_routers_only():
    p = Page()
    p.login()
    code, _, body = p.call("POST", "/api/lg", {"router": "4.D1", "command": "  show   bgp summary "})
    assert code == 200 and body["output"] == "output of show bgp summary on 4.D1"
    assert p.runs == [("lg", "4.D1", "show bgp summary")]
    for router in ("9.X", "1.A1; id", "mgmt", "VM1", "ixp100", "", None, 3):
        code, _, body = p.call("POST", "/api/lg", {"router": router, "command": "show bgp summary"})
        assert code == 400 and "router" in body["error"], router
    assert len(p.runs) == 1
    assert p.call("GET", "/api/lg")[0] == 405


@pytest.mark.parametrize("dest", HOSTILE_DEST)
def test_the_measure_form_refuses_hostile_destinations_before_running_anything(dest):
    p = Page()
    p.login()
    code, _, body = p.call("POST", "/api/measure", {"tool": "traceroute", "from": 3, "dest": dest})
    assert code == 400 and body["error"].startswith("refused"), body
    assert p.runs == []


def test_the_measure_form_takes_a_tool_an_as_and_a_destination():
    p = Page()
    p.login()
    code, _, body = p.call("POST", "/api/measure", {"tool": "traceroute", "from": "3", "dest": "1.A1.host"})
    assert code == 200 and p.runs[-1][:3] == ("measure", 3, "traceroute")
    for bad in ({"tool": "nc", "from": 3, "dest": "10.1.0.1"}, {"tool": "ping; id", "from": 3, "dest": "10.1.0.1"},
                {"tool": "ping", "from": 99, "dest": "10.1.0.1"}, {"tool": "ping", "from": "3; id", "dest": "10.1.0.1"},
                {"tool": "ping", "from": True, "dest": "10.1.0.1"}):
        assert p.call("POST", "/api/measure", bad)[0] == 400, bad
    assert len(p.runs) == 1


def test_runs_are_rate_limited_per_group_and_bounded_for_the_page():
    clock = Clock()
    p = Page(clock=clock)
    p.login()
    ok = [p.call("POST", "/api/lg", {"router": "1.A1", "command": "show bgp summary"})[0] for _ in range(page.RUN_BURST + 3)]
    assert ok == [200] * page.RUN_BURST + [429] * 3
    assert len(p.runs) == page.RUN_BURST
    mine = p.cookie
    p.cookie = None
    p.login("as4-sp", "good-password-4x")                           # another group is not slowed down
    assert p.call("POST", "/api/measure", {"tool": "ping", "from": 4, "dest": "10.1.0.1"})[0] == 200
    p.cookie = mine
    clock.t += 60.0 / page.RUN_PER_MINUTE + 0.1                       # one more run earned
    assert p.call("POST", "/api/lg", {"router": "1.A1", "command": "show bgp summary"})[0] == 200
    # the whole page runs at most MAX_RUNNING processes at once
    held = [p.app.running.acquire(blocking=False) for _ in range(page.MAX_RUNNING)]
    assert all(held)
    clock.t += 600
    code, headers, _ = p.call("POST", "/api/lg", {"router": "1.A1", "command": "show bgp summary"})
    assert code == 503 and headers["Retry-After"]
    for _ in held:
        p.app.running.release()


def test_a_public_page_needs_no_login_and_limits_per_address():
    p = Page("public")
    info = p.call("GET", "/api/info")[2]
    assert info["access"] == "public" and info["me"] is None and info["routers"]
    assert p.call("GET", "/api/matrix")[0] == 200
    assert p.call("POST", "/api/login", {"user": "as3-sp", "password": "good-password-3x"})[0] == 400
    codes = [p.call("POST", "/api/lg", {"router": "1.A1", "command": "show version"}, addr="10.9.9.9")[0]
             for _ in range(page.RUN_BURST + 1)]
    assert codes[-1] == 429 and codes[:-1] == [200] * page.RUN_BURST
    assert p.call("POST", "/api/lg", {"router": "1.A1", "command": "show version"}, addr="10.9.9.8")[0] == 200


def test_the_page_cannot_act_on_the_lab():
    p = Page("public")
    for method, path in (("POST", "/v1/links/1/fail"), ("POST", "/v1/links/1/restore"), ("POST", "/v1/reload"),
                         ("GET", "/ui"), ("POST", "/v1/watch/lg"), ("GET", "/../etc/passwd"), ("GET", "/static/../page.py")):
        assert p.call(method, path, {} if method == "POST" else None)[0] == 404, path
    for method in ("PUT", "DELETE", "PATCH"):
        assert p.call(method, "/api/lg", {})[0] == 405
    assert p.call("POST", "/api/lg", b'{"router": "1.A1", "command": "show version"}', ctype="text/plain")[0] == 400
    assert p.call("POST", "/api/lg", b"x" * (page.MAX_BODY + 1))[0] == 413
    assert p.runs == []


def test_a_forged_or_expired_session_is_no_session():
    clock = Clock()
    p = Page(clock=clock)
    assert p.call("GET", "/api/matrix", cookie=f"{page.COOKIE}=forged")[0] == 401
    assert p.call("GET", "/api/matrix", cookie='bad"cookie;;=')[0] == 401
    p.login()
    p.app.sessions.clock = lambda: 10 ** 12                          # long after SESSION_TTL
    assert p.call("GET", "/api/matrix")[0] == 401


def test_a_public_page_limits_each_browser_though_all_come_through_loopback():
    """Every client of a public page is 127.0.0.1 (a tunnel, a proxy): each browser gets its own
    signed client cookie and its own bucket; a forged cookie is no client; dropping the cookie to
    get fresh ones works MINT_BURST times per address, then no new cookie is given."""
    p = Page("public")
    lg = {"router": "1.A1", "command": "show version"}

    def browser():
        code, headers, _ = p.call("GET", "/api/info", cookie="")
        assert code == 200
        return headers["Set-Cookie"].split(";")[0] if "Set-Cookie" in headers else None
    a, b = browser(), browser()
    assert a and b and a != b and a.startswith(page.CLIENT_COOKIE + "=")
    assert "Set-Cookie" not in p.call("GET", "/api/info", cookie=a)[1]          # a known browser keeps its own
    assert [p.call("POST", "/api/lg", lg, cookie=a)[0] for _ in range(page.RUN_BURST + 1)] == \
        [200] * page.RUN_BURST + [429]
    assert p.call("POST", "/api/lg", lg, cookie=b)[0] == 200                   # b, same address, not held back
    forged = a[:-4] + ("0000" if not a.endswith("0000") else "1111")
    assert p.call("POST", "/api/lg", lg, cookie=forged)[0] == 200              # a forgery is the address's bucket
    assert p.app.client({"HTTP_COOKIE": forged}) is None
    minted = [browser() for _ in range(page.MINT_BURST)]
    assert minted[-1] is None and sum(1 for c in minted if c) == page.MINT_BURST - 2
    p2 = Page("groups")
    assert "Set-Cookie" not in p2.call("GET", "/api/info")[1]                  # groups pages: sessions only
