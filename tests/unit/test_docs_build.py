"""The documentation site builds with warnings as errors, and what it says is checked against the code.

`mkdocs build --strict` fails on a broken link, a missing anchor or a page the nav names that does
not exist; the CLI reference is generated from the parsers (docs/hooks/minet_docs.py), the REST
reference is written by hand and checked here against the WSGI app's routes, and the topology
reference against the loader's keys.
"""
from __future__ import annotations

import argparse
import html
import importlib.util
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="mkdocs is in the test extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def load_hook():
    spec = importlib.util.spec_from_file_location("minet_docs_hook", DOCS / "hooks" / "minet_docs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def page_text(site: Path, name: str) -> str:
    raw = (site / name / "index.html").read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_site_builds_strict_with_every_nav_page(site):
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)   # !!python/name tags, if any
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def pages(nav):
        for item in nav:
            for value in (item.values() if isinstance(item, dict) else [item]):
                if isinstance(value, list):
                    yield from pages(value)
                else:
                    yield value
    names = list(pages(cfg["nav"]))
    assert {"index.md", "topology.md", "cli.md", "rest.md", "benchmarks.md", "teaching.md"} <= set(names)
    for name in names:
        built = site / ("index.html" if name == "index.md" else Path(name).with_suffix("") / "index.html")
        assert built.is_file(), name


def _walk(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict((id(p), p) for p in action.choices.values()).values():
                yield from _walk(sub)


def test_cli_reference_has_every_command_and_option(site):
    from minet_sdn.cli.main import build_parser
    text = page_text(site, "cli")
    parsers = list(_walk(build_parser()))
    assert len(parsers) > 15                       # nested subcommands (link list, lab up, ...) included
    for parser in parsers:
        assert f"{parser.prog}¶" in text, f"no section for {parser.prog}"
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue                               # -h/--help: said once at the top of the page
            for opt in action.option_strings:
                assert opt in text, f"{parser.prog} {opt} missing from the CLI reference"
    assert "minet-provision¶" in text and "--master" in text


def test_pages_other_work_adds_are_linked_only_once_they_exist(tmp_path):
    hook = load_hook()
    md = "a <!-- if-page: later.md -->[later](later.md)\n<!-- end-if -->b"
    assert hook.on_page_markdown(md, None, {"docs_dir": str(tmp_path)}, None) == "a b"
    (tmp_path / "later.md").write_text("# later\n")
    assert hook.on_page_markdown(md, None, {"docs_dir": str(tmp_path)}, None) == "a [later](later.md)\nb"


def test_benchmark_figures_come_from_the_newest_result_file(tmp_path):
    hook = load_hook()
    fallback = "last published figure\n"
    assert hook.bench_block("flow_sync", fallback, paths=[]) == fallback
    rec = {"initial": {"ours_s": 0.193, "ovs_ofctl_bundle_s": 0.264, "ratio": 0.731, "ovs_ofctl_plain_s": 1.997},
           "noop": {"ours_s": 0.263, "ovs_ofctl_replace_s": 0.286, "ratio": 0.92}}
    old = tmp_path / "flow_sync-20261201-100000.json"
    new = tmp_path / "flow_sync-20261202-162800.json"
    old.write_text(json.dumps({"command": "python3 bench/flow_sync.py --old", "results": []}))
    new.write_text(json.dumps({
        "benchmark": "flow_sync", "date": "2026-12-02T16:28:00", "command": "python3 bench/flow_sync.py --links 10000",
        "host": {"cpus": 2, "kernel": "6.1.0", "ovs": "ovs-vsctl (Open vSwitch) 3.1.0", "python": "3.11.2"},
        "results": [dict(mode="key", links=10000, bridges=1, flows=30002, **rec)],
        "target": "ours <= 1.0x", "target_met": {"initial": True, "noop": True}}))
    other = tmp_path / "lab_up-20261203-000000.json"
    other.write_text("{}")
    out = hook.bench_block("flow_sync", fallback, paths=[old, new, other])
    assert "last published" not in out
    assert "`python3 bench/flow_sync.py --links 10000`" in out and "--old" not in out
    assert "2 CPUs" in out and "Open vSwitch) 3.1.0" in out and "kernel 6.1.0" in out
    assert "| key | 10,000 | 1 | 30,002 | 0.193 | 0.264 | 0.73 | 1.997 | 0.263 | 0.286 | 0.92 |" in out
    storm = tmp_path / "flap_storm-20261207-120000.json"
    storm.write_text(json.dumps({"command": "python3 bench/flap_storm.py --events 1000", "machine": {"cpus": 2},
                                 "port_status_per_s": 7380.5, "rest_ms": {"/healthz": {"idle_p50": 0.22}}}))
    out = hook.bench_block("flap_storm", fallback, paths=[storm])
    assert "port\\_status\\_per\\_s | 7,380.5" in out and "rest\\_ms./healthz.idle\\_p50 | 0.22" in out


def test_every_benchmark_section_names_a_bench_that_writes_its_result_file():
    text = (DOCS / "benchmarks.md").read_text()
    kinds = re.findall(r"<!-- bench: (\S+) -->", text)
    assert len(kinds) >= 8
    sources = {p.name: p.read_text() for p in (ROOT / "bench").glob("*.py")}
    for kind in kinds:
        base = kind.split("-")[0]
        assert f"{base}.py" in sources or kind.startswith("lab_up"), kind
        assert any(re.search(rf'["\']{re.escape(kind)}["\-]', src) for src in sources.values()), \
            f"no bench writes a {kind}-<date>.json result file"


def test_rest_reference_matches_the_routes():
    from minet_sdn.rest.api import make_app
    text = (DOCS / "rest.md").read_text()
    documented = re.findall(r"^\| `(GET|POST) (/[^` ]*)`", text, re.M)
    assert len(documented) >= 12

    class Probe:
        """Every service call fails: a route that exists answers 500, one that does not 404."""
        topo = None
        rest_token = "probe-token"

        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            raise RuntimeError("probe")

    def call(method, path):
        got = {}
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "HTTP_X_MINET": "1",
                   "HTTP_AUTHORIZATION": "Bearer probe-token",
                   "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"{}")}
        body = b"".join(make_app(Probe())(environ, lambda status, headers: got.setdefault("s", status)))
        return int(got["s"].split()[0]), body
    from minet_sdn.rest import page as rest_page
    from minet_sdn.watch.page import StatusPage, root_of
    status_page = StatusPage(root_of("/nonexistent-minet-root"), "netns")   # as `minet controller` installs it
    rest_page.install(status_page)
    try:
        for method, path in documented:
            status, body = call(method, path.replace("<id>", "1"))
            assert status != 405, f"{method} {path}: documented with the wrong method"
            assert not (status == 404 and b"no such resource" in body), f"{method} {path} is documented, not served"
    finally:
        rest_page.uninstall(status_page)
    # the other way round: every path the REST code names is documented
    paths = {p for _, p in documented}
    for src in (ROOT / "minet_sdn" / "rest").glob("*.py"):
        for literal in re.findall(r'"(/(?:v1|healthz|metrics|ui)[a-z0-9/._-]*)"', src.read_text()):
            assert any(p == literal or p.startswith(literal + "/") for p in paths), \
                f"{literal} ({src.name}) is not in docs/rest.md"


def test_topology_reference_names_every_key():
    from minet_sdn.topology import loader
    text = (DOCS / "topology.md").read_text()
    keys = {k for name in dir(loader) if name.endswith("_KEYS") for k in getattr(loader, name)}
    assert {"name", "isolation", "announce_to", "throughput"} <= keys
    for key in sorted(keys):
        assert re.search(rf"(^|[\s{{,]){re.escape(key)}:|`{re.escape(key)}`", text, re.M), \
            f"topology key {key!r} is not in docs/topology.md"


def test_readme_is_an_entry_that_points_into_the_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for command in ("bash scripts/demo.sh", "bash scripts/test.sh"):
        assert command in text
        assert (ROOT / command.split()[1]).is_file()
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", text)
    assert len(links) >= 8
    for link in links:
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"


def test_every_picture_in_docs_is_shown():
    shown = "".join(p.read_text() for p in DOCS.rglob("*.md"))
    for png in list((DOCS / "watch").glob("*.png")) + list((ROOT / "bench").glob("*.png")):
        rel = png.relative_to(DOCS if DOCS in png.parents else ROOT).as_posix()
        assert f"]({rel})" in shown, f"{rel} is not shown on any page"


def test_whole_topologies_shown_in_the_docs_load(tmp_path):
    from minet_sdn.topology import load_topology
    shown = 0
    for doc in (ROOT / "README.md", DOCS / "topology.md"):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S):
            if re.search(r"^name:", block, re.M):          # a whole file, not a fragment
                path = tmp_path / f"shown{shown}.yaml"
                path.write_text(block)
                load_topology(str(path))                   # raises with the file, key and reason
                shown += 1
    assert shown >= 2


def test_files_the_docs_name_exist():
    """A page that names minet_sdn/lab/places.py or test_partition.py must follow the code when it moves."""
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    names = {Path(p).name for p in tracked}
    for doc in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        text = doc.read_text()
        for path in re.findall(r"(?<![\w/.-])((?:minet_sdn|tests|bench|topologies|scripts|docs)/[\w./*{},<>-]*)", text):
            path = path.rstrip(".,")
            if "/results/" in path or any(c in path for c in "*{<"):   # run outputs, patterns
                continue
            assert (ROOT / path).exists(), f"{doc.name} names {path}, which does not exist"
        for name in re.findall(r"(?<![\w.])(\w+\.py)\b", text):
            assert name in names, f"{doc.name} names {name}, which is no file of the repository"


def _st(median, lo, hi):
    return {"median": median, "min": lo, "max": hi, "n": 3}


# result files in the shapes bench/lab_up.py, bench/failover.py and bench/shaping.py write
RESULT_SHAPES = {
    "lab_up": ({"command": "bench/lab_up.py --repeat 3", "machine": {"cpus": 2}, "topologies": {
        "topologies/demo.yaml": {"size": "3 servers, 6 ASes", "runs": [], "summary": {
            "servers": _st(0.66, 0.6, 0.7), "controller": _st(0.27, 0.2, 0.3), "provisioning": _st(2.43, 2.4, 2.5),
            "bgp": _st(2.54, 2.5, 2.6), "total": _st(5.74, 5.09, 6.07), "routes": _st(6.43, 6.4, 6.5),
            "down": _st(2.27, 2.2, 2.3), "provision_per_server": {}}}}},
        "| topologies/demo.yaml: 3 servers, 6 ASes | 0.660 [0.600-0.700] | 0.270 [0.200-0.300] | 2.430 [2.400-2.500] "
        "| 2.540 [2.500-2.600] | 5.740 [5.090-6.070] | 6.430 [6.400-6.500] | 2.270 [2.200-2.300] |"),
    "lab_up_class": ({"command": "bench/lab_up.py --class 60", "machine": {"cpus": 2}, "class": {"60": {
        "routers": 480, "servers": 1.5, "controller": 1.5, "provisioning": 124.7, "frr_start": 97.6,
        "established": 5.0, "routes": 134.1, "bgp": 9.4, "cpu": {"lab_pct": 37.8, "machine_pct": 45.7},
        "memory_peak_mb": 12236.8, "memory_steady_mb": 3553.3, "pss_per_router_mb": 3.9,
        "pss_ospf6d_per_router_mb": 0.7, "second_up": 0.6, "down": 36.9}}},
        "| 60 | 480 | 1.5 | 1.5 | 124.7 (97.6) | 5.0 | **134.1** | 37.8 % / 45.7 % | 11.95 / 3.47 GiB "
        "| 3.9 (+ 0.7) MB | 0.6 | 36.9 |"),
    "failover": ({"command": "bench/failover.py --repeat 5", "machine": {"cpus": 2}, "topology": "topologies/demo.yaml",
                  "isolation": "key", "link": 1, "summary": {
                      "cli.carrier_lost_both": _st(0.129, 0.123, 0.2), "cli.bgp_down_both": _st(0.171, 0.156, 0.22),
                      "cli.bgp_up_both": _st(1.03, 0.98, 2.07),
                      "reference.carrier_lost_both": {"median": None, "min": None, "max": None, "n": 0},
                      "reference.bgp_down_both": _st(8.47, 8.43, 8.49)},
                  "ratio_reference_over_ours_bgp_down": {"cli": 49.5, "rest": 172.9}},
                 "| `minet link fail` (CLI process) | 0.129 [0.123-0.200] | 0.171 [0.156-0.220] | 1.030 [0.980-2.070] |"),
    "shaping": ({"date": "2026-12-02T10:00:00+00:00", "command": "python3 bench/shaping.py", "machine": {"cpus": 2},
                 "seconds": 8.0, "rows": [{"link": "intra-AS 1.A-1.B (VM1)", "configured_bps": 40e6,
                                           "measured_bps": 38.2e6, "ratio": 0.955}]},
                "| intra-AS 1.A-1.B (VM1) | 40.0 Mbit/s | 38.2 Mbit/s | 0.955 |"),
}


@pytest.mark.parametrize("kind", sorted(RESULT_SHAPES))
def test_result_files_render_as_tables(tmp_path, kind):
    hook = load_hook()
    data, row = RESULT_SHAPES[kind]
    path = tmp_path / f"{kind}-20261207-120000.json"
    path.write_text(json.dumps(data))
    out = hook.bench_block(kind, "fallback", paths=[path])
    assert row in out, out
    assert data["command"] + "`" in out and "2 CPUs" in out
