"""MkDocs hook: the parts of the docs that are generated from the code and the repository at build time.

* `<!-- minet:cli -->` becomes the command-line reference, walked from the argparse parsers
  (`minet_sdn.cli.main.build_parser()` and the `minet-provision` parser), nested subcommands included,
  so the reference cannot drift from what the commands accept.
* `<!-- if-page: NAME.md -->...<!-- end-if -->` is kept only when docs/NAME.md exists: pages that
  other work adds later are linked as soon as they land, and a missing one is no broken link.
* `<!-- bench: KIND -->...<!-- /bench -->` is replaced by the figures of the newest committed result
  file bench/results/KIND-<date>.json (`git add -f`: the directory is git-ignored for raw runs); with
  none, the text between the markers (the last published figure, its command and machine) stays.
* bench/*.png plots are served as bench/NAME.png so pages can show them.

Only the standard library, MkDocs and this package: nothing is downloaded at build time.
"""
from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"

IF_PAGE = re.compile(r"<!-- if-page: (\S+?) -->\n?(.*?)<!-- end-if -->\n?", re.S)
BENCH = re.compile(r"<!-- bench: (\S+?) -->\n?(.*?)<!-- /bench -->\n?", re.S)
RESULT_NAME = re.compile(r"^(?P<kind>.+?)-(?P<stamp>\d{4}-?\d{2}-?\d{2}(?:-\d{6})?)\.json$")


# ---- MkDocs events --------------------------------------------------------------------------------

def on_files(files, config):
    from mkdocs.structure.files import File
    for png in sorted((ROOT / "bench").glob("*.png")):
        files.append(File.generated(config, f"bench/{png.name}", abs_src_path=str(png)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    docs_dir = Path(config["docs_dir"])
    markdown = IF_PAGE.sub(lambda m: m.group(2) if (docs_dir / m.group(1)).is_file() else "", markdown)
    if "<!-- minet:cli -->" in markdown:
        markdown = markdown.replace("<!-- minet:cli -->", cli_reference())
    return BENCH.sub(lambda m: bench_block(m.group(1), m.group(2)), markdown)


# ---- command line ---------------------------------------------------------------------------------

def _parsers() -> List[argparse.ArgumentParser]:
    from minet_sdn.cli import main
    out = [main.build_parser()]
    try:
        from minet_sdn.cli import provision
    except ImportError:
        return out
    for name in ("build_parser", "_parser"):
        if callable(getattr(provision, name, None)):
            parser = getattr(provision, name)()
            parser.prog = "minet-provision"
            out.append(parser)
            break
    return out


def cli_reference() -> str:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"          # argparse wraps usage to the terminal: fix it for the page
    try:
        return "\n".join(_parser_section(p, 2, None) for p in _parsers())
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _subcommands(parser: argparse.ArgumentParser) -> List[Tuple[str, argparse.ArgumentParser, str]]:
    out, seen = [], set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if id(sub) in seen:         # an alias: listed once, under its first name
                    continue
                seen.add(id(sub))
                out.append((name, sub, helps.get(name, "")))
    return out


def _text(s: Optional[str]) -> str:
    """Help text as Markdown table content: no raw HTML, no column breaks, one line."""
    s = " ".join((s or "").split())
    return html.escape(s, quote=False).replace("|", "\\|").replace("*", "\\*").replace("_", "\\_")


def _code(s: str) -> str:
    s = s.replace("|", "\\|")
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def _anchor(prog: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", prog.lower()).strip("-")


def _parser_section(parser: argparse.ArgumentParser, level: int, summary: Optional[str]) -> str:
    lines = [f"{'#' * min(level, 6)} {parser.prog} {{ #{_anchor(parser.prog)} }}", ""]
    for text in (summary, parser.description):
        if text and text.strip():
            lines += [_text(text), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            name = ", ".join(action.option_strings)
        else:
            name = action.metavar if isinstance(action.metavar, str) else action.dest
        value = ""
        if action.option_strings and action.nargs != 0:
            value = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
        elif action.choices and not action.option_strings:
            value = "{" + ",".join(map(str, action.choices)) + "}"
        if action.choices and action.option_strings:
            value = "{" + ",".join(map(str, action.choices)) + "}" + (" ..." if action.nargs in ("+", "*") else "")
        default = action.default
        shown = "" if default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0 else _code(str(default))
        try:
            helptext = formatter._expand_help(action) if action.help else ""
        except (KeyError, ValueError, TypeError):
            helptext = action.help or ""
        req = " (required)" if action.required and action.option_strings else ""
        rows.append(f"| {_code(name)} | {_code(value) if value else ''} | {shown} | {_text(helptext)}{req} |")
    if rows:
        lines += ["| argument | value | default | meaning |", "|---|---|---|---|", *rows, ""]
    subs = _subcommands(parser)
    if subs:
        lines += ["| subcommand | what it does |", "|---|---|"]
        lines += [f"| [{_code(sub.prog)}](#{_anchor(sub.prog)}) | {_text(help_)} |" for _, sub, help_ in subs]
        lines.append("")
        for _, sub, help_ in subs:
            lines.append(_parser_section(sub, level + 1, help_))
    return "\n".join(lines)


# ---- benchmark figures ----------------------------------------------------------------------------

def committed_results() -> List[Path]:
    """Result files in git (what whoever ran a bench chose to publish); outside a git checkout, every
    file in bench/results."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", "bench/results"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        return [ROOT / line for line in out.splitlines() if line.endswith(".json") and (ROOT / line).is_file()]
    except (OSError, subprocess.SubprocessError):
        return sorted(RESULTS.glob("*.json"))


def latest_result(kind: str, paths: Optional[Iterable[Path]] = None) -> Optional[Path]:
    best = None
    for path in (committed_results() if paths is None else paths):
        m = RESULT_NAME.match(path.name)
        if m and m.group("kind") == kind:
            key = m.group("stamp").replace("-", "")
            if best is None or key > best[0]:
                best = (key, path)
    return best[1] if best else None


def bench_block(kind: str, fallback: str, paths: Optional[Iterable[Path]] = None) -> str:
    path = latest_result(kind, paths)
    if path is None:
        return fallback
    data = json.loads(path.read_text())
    return render_result(kind, data, path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def _machine(data: Dict[str, Any]) -> str:
    m = data.get("machine") or data.get("host") or {}
    if not isinstance(m, dict) or not m:
        return "not recorded"
    parts = []
    if m.get("cpus"):
        parts.append(f"{m['cpus']} CPUs")
    for key in ("kernel", "ovs", "frr", "python"):
        if m.get(key):
            parts.append(f"{key} {m[key]}" if key in ("kernel", "python") else str(m[key]))
    load = m.get("loadavg") or m.get("loadavg_1m_before_after") or data.get("load")
    if isinstance(load, (list, tuple)) and load and isinstance(load[0], (int, float)):
        parts.append(f"load average {load[0]:.2f}")
    return ", ".join(parts)


def render_result(kind: str, data: Dict[str, Any], where: Any) -> str:
    command = data.get("command") or f"python3 bench/{kind.split('-')[0]}.py"
    if command.startswith("bench/"):
        command = "python3 " + command
    stamp = RESULT_NAME.match(Path(str(where)).name)
    date = str(data.get("date") or "").replace("T", " ")[:16] or (_stamp_date(stamp.group("stamp")) if stamp else "?")
    head = [f"Command: `{command}`. Run {date} on {_machine(data)}. Result file: `{where}`.", ""]
    body = RENDERERS.get(kind, _render_generic)(data)
    return "\n".join(head + body) + "\n\n"


def _stamp_date(stamp: str) -> str:
    digits = stamp.replace("-", "")
    date = f"{digits[:4]}-{digits[4:6]}-{digits[6:8]}"
    return f"{date} {digits[8:10]}:{digits[10:12]}" if len(digits) >= 12 else date


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return _text(str(v))


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> Iterable[Tuple[str, Any]]:
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            if k in ("machine", "host", "command", "date", "runs", "trials", "raw"):
                continue
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, (int, float, bool)) or (isinstance(obj, str) and len(obj) < 80):
        yield prefix, obj


def _render_generic(data: Dict[str, Any]) -> List[str]:
    rows = list(_flatten(data))[:60]
    return ["| figure | value |", "|---|---|"] + [f"| {_text(k)} | {_num(v)} |" for k, v in rows]


def _render_flow_sync(data: Dict[str, Any]) -> List[str]:
    out = ["Seconds, median of the runs; ratio = ours / `ovs-ofctl --bundle`.", "",
           "| mode | links | bridges | flows | initial push | `--bundle add-flows` | ratio | plain `add-flows` "
           "| no-op resync | `--bundle replace-flows` | ratio |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in data.get("results", []):
        i, o = r["initial"], r["noop"]
        out.append(f"| {r['mode']} | {r['links']:,} | {r['bridges']:,} | {r['flows']:,} | {i['ours_s']:.3f} "
                   f"| {i['ovs_ofctl_bundle_s']:.3f} | {i['ratio']:.2f} | {i['ovs_ofctl_plain_s']:.3f} "
                   f"| {o['ours_s']:.3f} | {o['ovs_ofctl_replace_s']:.3f} | {o['ratio']:.2f} |")
    met = data.get("target_met")
    if met:
        out += ["", f"Target ({_text(data.get('target', ''))}): initial push "
                    f"{'met' if met.get('initial') else 'missed'}, no-op resync {'met' if met.get('noop') else 'missed'}."]
    return out


def _mmm(st: Any) -> str:
    """A bench's stats() value, median [min-max]."""
    if not isinstance(st, dict) or st.get("median") is None:
        return ""
    return f"{st['median']:.3f} [{st['min']:.3f}-{st['max']:.3f}]"


def _render_lab_up(data: Dict[str, Any]) -> List[str]:
    keys = ("servers", "controller", "provisioning", "bgp", "total", "routes", "down")
    out = ["Seconds, median [min-max] over the repetitions; `routes`: every configured router has a route to "
           "every configured AS (after `lab up` returns).", "",
           "| topology | " + " | ".join("total `lab up`" if k == "total" else
                                       "`lab down`" if k == "down" else k for k in keys) + " |",
           "|---|" + "---|" * len(keys)]
    for name, t in data.get("topologies", {}).items():
        s = t["summary"]
        out.append(f"| {_text(name)}: {_text(t.get('size', ''))} | " + " | ".join(_mmm(s.get(k)) for k in keys) + " |")
    return out


def _render_lab_up_class(data: Dict[str, Any]) -> List[str]:
    out = ["Seconds; CPU, memory and PSS after page merging settled.", "",
           "| ASes x 8 | routers | servers | controller | provisioning (FRR start) | BGP established | `lab up` "
           "| steady CPU: lab / machine | memory peak / steady | PSS per router (+ ospf6d) | second `up` | `lab down` |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, r in sorted(data.get("class", {}).items(), key=lambda kv: int(kv[0])):
        cpu = r.get("cpu") or {}
        out.append(
            f"| {n} | {r['routers']:,} | {r['servers']:.1f} | {r['controller']:.1f} | {r['provisioning']:.1f} "
            f"({r.get('frr_start') or 0:.1f}) | {r.get('established') or 0:.1f} | **{r['routes']:.1f}** "
            f"| {cpu.get('lab_pct', 0):.1f} % / {cpu.get('machine_pct', 0):.1f} % "
            f"| {r['memory_peak_mb'] / 1024:.2f} / {r['memory_steady_mb'] / 1024:.2f} GiB "
            f"| {r['pss_per_router_mb']:.1f} (+ {r.get('pss_ospf6d_per_router_mb', 0.0):.1f}) MB "
            f"| {r['second_up']:.1f} | {r.get('down', 0):.1f} |")
    return out


def _render_failover(data: Dict[str, Any]) -> List[str]:
    s = data.get("summary", {})
    rows = (("`minet link fail` (CLI process)", "cli"), ("`POST /v1/links/<id>/fail`", "rest"),
            ("reference: the link black-holed, carrier kept (hold timer)", "reference"))
    out = [f"{_text(data.get('topology', ''))}, link {data.get('link', '?')}, {data.get('isolation', '?')} mode; "
           "seconds from the command, median [min-max]:", "",
           "| | carrier lost on both routers | BGP session down on both | restore to Established |",
           "|---|---|---|---|"]
    for label, via in rows:
        out.append(f"| {_text(label)} | {_mmm(s.get(f'{via}.carrier_lost_both')) or 'never'} "
                   f"| {_mmm(s.get(f'{via}.bgp_down_both'))} | {_mmm(s.get(f'{via}.bgp_up_both'))} |")
    ratio = data.get("ratio_reference_over_ours_bgp_down")
    if isinstance(ratio, dict):
        out += ["", f"BGP notices the controller's carrier loss {ratio.get('cli')}x sooner than its hold timer "
                    f"({ratio.get('rest')}x from the REST call)."]
    return out


def _render_shaping(data: Dict[str, Any]) -> List[str]:
    def mbit(bps: Any) -> str:
        return "-" if bps is None else f"{bps / 1e6:.1f} Mbit/s"
    out = [f"iperf3, one TCP stream, {data.get('seconds', '?')} s; received throughput against the configured rate:",
           "", "| link | configured | iperf3 received | ratio |", "|---|---|---|---|"]
    for r in data.get("rows", []):
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.3f}"
        out.append(f"| {_text(r['link'])} | {mbit(r.get('configured_bps'))} | {mbit(r.get('measured_bps'))} | {ratio} |")
    return out


RENDERERS = {"flow_sync": _render_flow_sync, "lab_up": _render_lab_up, "lab_up_class": _render_lab_up_class,
             "failover": _render_failover, "shaping": _render_shaping}
