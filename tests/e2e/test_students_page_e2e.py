"""The students' page, end to end (root): a small lab (4 ASes on 2 servers; AS3 and AS4 are
`configure: false` groups with doors), `lab up` starts the page on this machine's loopback, a
real headless chromium logs in as group AS3 with the password `minet class doors` prints, sees
the matrix `minet matrix` measured, runs `show bgp summary` in the looking glass and a traceroute
from AS1's measurement host, and sees the connections list. A wrong password is refused; hostile
input (shell metacharacters, a command off the allow-list) is refused in the page; neither the
students' page nor the TA's controller is reachable from a router's or a host's namespace; the
TA's fail needs the TA token; `lab down` stops the page. Needs root, Open vSwitch, FRR, sshd,
traceroute, chromium + chromedriver + selenium. MINET_WATCH_SCREENSHOTS=DIR keeps screenshots.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from class_support import class_lab, minet
from tests.unit.class_support import FOUR_ASES
from e2e_support import require_lab
from minet_sdn.classroom import page_server
from minet_sdn.lab.lab import Lab
from minet_sdn.topology.addressing import topology_addressing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from watch_browser import browser_missing, js_count, js_text, start_browser, wait_for  # noqa: E402

pytestmark = pytest.mark.root
require_lab("vtysh", "ping", "traceroute")
if browser_missing():
    pytest.skip(browser_missing(), allow_module_level=True)

SHOTS = os.environ.get("MINET_WATCH_SCREENSHOTS")
TOPOLOGY = FOUR_ASES + "class: {{port_base: {port_base}}}\n"     # the unit tests' four ASes


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with class_lab(tmp_path_factory.mktemp("studentspage"), "sp", TOPOLOGY) as lab:
        yield dict(lab, url=f"http://127.0.0.1:{lab['port']}")
    # the page went with the lab: its process and its directory
    assert not os.path.exists(page_server.page_dir(lab["topo"].name))
    assert socket.socket().connect_ex(("127.0.0.1", lab["port"])) != 0


def http(url: str, body=None, cookie=None, ctype="application/json", headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", ctype)
    if cookie:
        req.add_header("Cookie", cookie)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=90) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, dict(exc.headers), json.loads(raw or b"null")
        except ValueError:
            return exc.code, dict(exc.headers), raw


def connect_from(ns: str, host: str, port: int) -> str:
    """What a TCP connect from inside namespace `ns` gets: "connected" or the error."""
    code = ("import socket,sys\ns=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET)\n"
            "s.settimeout(3)\ntry:\n s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
            "except OSError as e:\n print(type(e).__name__, e)\n")
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, host, str(port)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def listening_addresses(port: int):
    """Local addresses with a TCP socket listening on `port` in this (root) namespace."""
    out = subprocess.run(["ss", "-Htln", f"sport = :{port}"], capture_output=True, text=True).stdout
    return sorted({line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()})


def test_a_group_uses_the_page_in_a_real_browser(lab):
    topo = lab["topo"]
    proc = minet("matrix", lab["path"], "--json")              # the TA measures; the controller keeps it
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    ok_pairs = {(p["src"], p["dst"]) for p in measured["pairs"] if p["ok"]}
    assert (1, 2) in ok_pairs and (2, 1) in ok_pairs, measured
    door = lab["doors"][3]
    drv = start_browser()
    try:
        drv.get(lab["url"] + "/")
        assert wait_for(lambda: drv.find_element("id", "sec-login").is_displayed(), 10)
        assert not drv.find_element("id", "content").is_displayed()
        # a wrong password is refused, nothing is shown
        drv.find_element("id", "login-user").send_keys(door["user"])
        drv.find_element("id", "login-password").send_keys(door["password"] + "x")
        drv.find_element("id", "login-go").click()
        assert wait_for(lambda: "wrong user or password" in (js_text(drv, "login-err") or ""), 10)
        assert not drv.find_element("id", "content").is_displayed()
        # the right one
        drv.find_element("id", "login-password").clear()
        drv.find_element("id", "login-password").send_keys(door["password"])
        drv.find_element("id", "login-go").click()
        assert wait_for(lambda: drv.execute_script("return document.body.dataset.ready") == "1", 20)
        assert f"AS3 ({door['user']})" in js_text(drv, "me")
        # the matrix the TA measured (configured ASes: 1, 2): every pair in the page's colour
        asns = sorted({p["src"] for p in measured["pairs"]} | {p["dst"] for p in measured["pairs"]})
        assert asns == [1, 2] and js_count(drv, "#matrix td") == len(asns) ** 2
        for s in asns:
            for d in asns:
                if s != d:
                    want = "ok" if (s, d) in ok_pairs else "bad"
                    assert drv.execute_script("return document.getElementById(arguments[0]).className",
                                              f"m-{s}-{d}") == want, (s, d)
        assert f"{measured['ok']} of {measured['total']}" in js_text(drv, "matrix-summary") or \
            f"all {measured['total']}" in js_text(drv, "matrix-summary")
        # the connections: every link from both sides, with both addresses
        assert js_count(drv, "#conn tr.conn") == 2 * len(topo.links)
        conn = js_text(drv, "conn")
        for link in topo.links:
            assert link.a.ip in conn and link.b.ip in conn and link.a.router in conn and link.b.router in conn
        assert "customer" in conn and "provider" in conn and "peer" in conn
        # looking glass: show bgp summary on AS1's router
        drv.execute_script("document.getElementById('lg-router').value = '1.A1';")
        cmd = drv.find_element("id", "lg-command")
        cmd.clear()
        cmd.send_keys("show bgp summary")
        drv.find_element("id", "lg-go").click()
        assert wait_for(lambda: drv.execute_script("return document.getElementById('lg-out').dataset.done") == "1", 30)
        out = js_text(drv, "lg-out")
        assert "BGP router identifier" in out and "local AS number 1" in out, out
        # hostile input in the looking glass: refused, with the reason, nothing shown
        for bad in ("show bgp summary; id", "show ip route $(id)", "configure terminal", "show running-config"):
            cmd.clear()
            cmd.send_keys(bad)
            drv.find_element("id", "lg-go").click()
            assert wait_for(lambda: "refused" in (js_text(drv, "lg-err") or ""), 10), bad
            assert not js_text(drv, "lg-out")
        # traceroute from AS1's measurement host to AS2's host
        b1_host = topology_addressing(topo)[2].routers["B1"].host_ip
        drv.execute_script("document.getElementById('ms-tool').value = 'traceroute';"
                           "document.getElementById('ms-from').value = '1';")
        dest = drv.find_element("id", "ms-dest")
        dest.send_keys("2.B1.host")
        drv.find_element("id", "ms-go").click()
        assert wait_for(lambda: drv.execute_script("return document.getElementById('ms-out').dataset.done") == "1", 90)
        out = js_text(drv, "ms-out")
        assert out.startswith("traceroute to") and b1_host in out, out
        if SHOTS:
            drv.save_screenshot(os.path.join(SHOTS, "students-page-lab.png"))
        for bad in ("10.1.0.1; id", "$(reboot)", "-f 10.1.0.1", "evil.example.com"):
            dest.clear()
            dest.send_keys(bad)
            drv.find_element("id", "ms-go").click()
            assert wait_for(lambda: "refused" in (js_text(drv, "ms-err") or ""), 10), bad
            assert not js_text(drv, "ms-out")
    finally:
        drv.quit()


def test_hostile_requests_outside_the_browser_are_refused(lab):
    url, door = lab["url"], lab["doors"][4]
    assert http(url + "/api/matrix")[0] == 401
    assert http(url + "/api/lg", {"router": "1.A1", "command": "show bgp summary"})[0] == 401
    code, headers, _ = http(url + "/api/login", {"user": door["user"], "password": door["password"]})
    assert code == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    for command in ("show bgp summary\nwrite memory", "show bgp summary | include x", "start-shell", "write memory"):
        code, _, body = http(url + "/api/lg", {"router": "4.D1", "command": command}, cookie)
        assert code == 400 and body["error"].startswith("refused"), (command, body)
    code, _, body = http(url + "/api/measure", {"tool": "ping", "from": 1, "dest": "`id`"}, cookie)
    assert code == 400 and body["error"].startswith("refused")
    # a cross-site form post is not JSON: refused before anything runs
    code, _, _ = http(url + "/api/lg", b"router=1.A1&command=show+version", cookie,
                      ctype="application/x-www-form-urlencoded")
    assert code == 400
    # DNS rebinding: a Host naming something else than this machine is refused
    assert http(url + "/api/info", headers={"Host": "evil.example.com"})[0] == 403
    # the page has no fail/restore: only the TA's page does, with the TA's token
    assert http(url + "/v1/links/1/fail", {}, cookie)[0] == 404


def test_neither_page_is_reachable_from_inside_the_mini_internet(lab):
    topo, port = lab["topo"], lab["port"]
    assert listening_addresses(port) == ["127.0.0.1"]                     # loopback only, no wildcard
    assert http(lab["url"] + "/api/info")[0] == 200                        # the control: root namespace reaches it
    places = Lab(lab["path"], progress=lambda m: None).places()
    eff = Lab(lab["path"], progress=lambda m: None).effective
    c = eff.controller
    for node in ("1.A1", "1.A1.host", "3.C1", "4.D1", "2.B1.host"):
        ns = places[node].ns
        assert connect_from(ns, "127.0.0.1", port) != "connected", node
        assert connect_from(ns, c.rest_host, c.rest_port) != "connected", node          # the TA's page
        for server in topo.servers:                       # nor through any server's underlay address
            assert connect_from(ns, topo.servers[server].underlay_ip, port) != "connected", (node, server)


def test_the_tas_fail_needs_the_ta_token(lab):
    base = Lab(lab["path"], progress=lambda m: None).status(json=True)["mgmt"]["rest_relay"]
    code, _, body = http(base + "/v1/links/1/fail", {}, headers={"X-Minet": "1"})
    assert code == 401, body
    code, _, body = http(base + "/v1/links/1/fail", {}, headers={"X-Minet": "1", "Authorization": "Bearer " + "x" * 43})
    assert code == 403, body
    code, _, link = http(base + "/v1/links/1")
    assert code == 200 and link["state"] == "up"
