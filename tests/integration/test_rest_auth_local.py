"""Issue 21 item 2: another local user reaches the loopback REST listener, but cannot change state.

A controller's REST app (the status page's fake service) on loopback with its token in a root-only
file; as user nobody (setpriv): curl POSTs to fail a link and to reload get 401, a guessed token 403,
`minet link fail` exits 2 in one line naming the token file, the token file cannot be read, and
nothing was failed; reads stay open. Root (for setpriv); cleans up its server and files.
"""
import os
import warnings
import site
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from minet_sdn.rest import auth
from minet_sdn.rest.api import make_app
from minet_sdn.rest.server import serve_in_thread
from minet_sdn.topology import load_topology

from tests.watch_browser import FakeService

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
              pytest.mark.skipif(not shutil.which("setpriv") or not shutil.which("curl"),
                                 reason="needs setpriv and curl")]

REPO = Path(__file__).resolve().parents[2]
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@pytest.fixture
def served():
    work = tempfile.mkdtemp(prefix="minet-auth-")
    os.chmod(work, 0o755)                        # the topology is readable by anyone, the token is not
    server = None
    try:
        state = os.path.join(work, "state")
        topo_path = os.path.join(work, "auth.yaml")
        svc = FakeService(load_topology(str(REPO / "topologies" / "demo.yaml")))
        svc.rest_token = auth.ensure_token(state)
        server = serve_in_thread(("127.0.0.1", 0), make_app(svc))
        port = server.server_address[1]
        text = (REPO / "topologies" / "demo.yaml").read_text()
        Path(topo_path).write_text(text.replace("name: demo", f"name: demo\ncontroller: {{rest: '127.0.0.1:{port}'}}", 1))
        os.chmod(topo_path, 0o644)
        yield svc, port, topo_path, os.path.join(state, auth.TOKEN_FILE), work
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        shutil.rmtree(work, ignore_errors=True)


def as_nobody(argv, env=None):
    return subprocess.run(NOBODY + argv, capture_output=True, text=True, timeout=60, cwd="/",
                          env={"PATH": os.environ["PATH"], "HOME": "/", **(env or {})})


def curl(port, method, path, *headers):
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, "-H", "X-Minet: 1"]
    for h in headers:
        argv += ["-H", h]
    return argv + [f"http://127.0.0.1:{port}{path}"]


def test_another_local_user_cannot_change_state(served):
    svc, port, topo_path, token_file, work = served
    for path in ("/v1/links/3/fail", "/v1/reload", "/v1/watch/matrix"):
        assert as_nobody(curl(port, "POST", path)).stdout == "401", path
        assert as_nobody(curl(port, "POST", path, "Authorization: Bearer " + "A" * 43)).stdout == "403", path
    assert as_nobody(curl(port, "GET", "/v1/links")).stdout == "200"       # reads stay open on loopback
    denied = as_nobody(["cat", token_file])
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    # the CLI as nobody, where nobody's python can load the CLI's packages (an interpreter installed
    # under /root, 0700, cannot: then only the curl checks above speak for the token)
    usable = as_nobody([sys.executable, "-c", "import pyroute2, yaml"],
                       env={"PYTHONPATH": os.pathsep.join([str(REPO)] + site.getsitepackages())})
    if usable.returncode == 0:
        cli = as_nobody([sys.executable, "-m", "minet_sdn.cli.main", "link", "fail", topo_path, "3"],
                        # the interpreter's own site-packages too: where it lives under /root (0700, as on
                        # CI's machines), nobody's python finds no packages by itself
                        env={"PYTHONPATH": os.pathsep.join([str(REPO)] + site.getsitepackages()),
                             "MINET_REST_TOKEN_FILE": token_file,
                             "MINET_LAB_ROOT": os.path.join(work, "labs")})
        assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr
        assert len(cli.stderr.strip().splitlines()) == 1 and "refused (401)" in cli.stderr and token_file in cli.stderr
    else:
        warnings.warn(f"the CLI as nobody was not tried: {sys.executable}'s packages are not readable by nobody")
    assert svc.failed == set()                                             # nothing was failed
    # root, who can read the token, can
    ok = subprocess.run([sys.executable, "-m", "minet_sdn.cli.main", "link", "fail", topo_path, "3"],
                        capture_output=True, text=True, timeout=60, cwd=str(REPO),
                        env={**os.environ, "MINET_REST_TOKEN_FILE": token_file,
                             "MINET_LAB_ROOT": os.path.join(work, "labs")})
    assert ok.returncode == 0, ok.stderr
    assert svc.failed == {3}
