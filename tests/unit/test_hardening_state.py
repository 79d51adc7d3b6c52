"""Issue 12: per-link state that survives a reload or a restart follows the link (its endpoints),
and the persisted state file is validated, not trusted. Through the real app and fake switches."""
import json
import logging
from pathlib import Path

import pytest

from tests.unit.app_harness import Lab

DEMO = (Path(__file__).resolve().parents[2] / "topologies" / "demo.yaml").read_text()
WITHOUT_LINK_2 = DEMO.replace("  - {a: 1.ZURI, b: 2.PARI, rel: peer}         # 2  VM1-VM2  } between AS1 and AS2\n", "")


def failed(lab):
    return {l["id"]: (l["a"]["router"], l["b"]["router"]) for l in lab.get_json("/v1/links")["links"]
            if l["state"] == "failed"}


def test_the_edit_removes_exactly_link_2():
    assert WITHOUT_LINK_2.count("\n  - {a:") == DEMO.count("\n  - {a:") - 1


def test_a_reload_keeps_operator_failures_on_their_links_not_their_positions(tmp_path):
    lab = Lab(tmp_path, DEMO)
    assert lab.wsgi("POST", "/v1/links/8/fail")[0] == 200          # 3.BERN - 4.LYON
    assert failed(lab) == {8: ("3.BERN", "4.LYON")}
    lab.path.write_text(WITHOUT_LINK_2)
    assert lab.wsgi("POST", "/v1/reload")[0] == 200
    lab.pump()
    # before: link 8 was released and the new link 8 (4.LYON - 6.OSLO) became failed
    assert failed(lab) == {7: ("3.BERN", "4.LYON")}
    state = json.loads((tmp_path / "controller-state.json").read_text())
    assert state["failed"] == [{"a": "3.BERN", "b": "4.LYON", "n": 0}]


def test_a_restart_on_an_edited_file_keeps_failures_on_their_links(tmp_path):
    lab = Lab(tmp_path, DEMO)
    assert lab.wsgi("POST", "/v1/links/9/fail")[0] == 200          # 4.LYON - 6.OSLO
    assert lab.wsgi("POST", "/v1/links/2/fail")[0] == 200          # the second 1.ZURI - 2.PARI
    lab.path.write_text(WITHOUT_LINK_2)
    lab.restart_controller()
    # 4.LYON - 6.OSLO is link 8 now; of the two parallel ZURI-PARI links only one is left: the first
    assert failed(lab) == {8: ("4.LYON", "6.OSLO")}


def test_parallel_links_are_told_apart_by_their_order(tmp_path):
    lab = Lab(tmp_path, DEMO)
    assert lab.wsgi("POST", "/v1/links/2/fail")[0] == 200
    lab.restart_controller()
    assert failed(lab) == {2: ("1.ZURI", "2.PARI")}


@pytest.mark.parametrize("content, why", [
    ('{"failed_links": [1e400]}', "not a link id"),
    ('{"failed_links": "12"}', "'failed_links' is not a list"),
    ('{"failed_links": [true]}', "not a link id"),
    ('{"failed_links": [99]}', "not a link id"),
    ('{"failed_links": [1.0]}', "not a link id"),
    ('{"failed_links": [NaN]}', "NaN is not a number"),
    ('{"failed_links": [' + "9" * 5000 + ']}', "ignoring controller state"),
    ('[1, 2]', "not a JSON object"),
    ('null', "not a JSON object"),
    ('{"failed": {"a": "1.ZURI"}}', "'failed' is not a list"),
    ('{"failed": [{"a": 1, "b": "2.PARI"}]}', "failed[1] is not"),
    ('{"failed": [{"a": "1.ZURI", "b": "2.PARI", "n": -1}]}', "failed[1] is not"),
    ('{"topology": "other", "failed_links": [1]}', "belongs to topology 'other'"),
    ('{"failed_links": [1', "ignoring controller state"),
    (b'\xff\xfe{}', "ignoring controller state"),
])
def test_a_bad_state_file_is_ignored_with_a_warning(tmp_path, caplog, content, why):
    state = tmp_path / "controller-state.json"
    state.write_bytes(content if isinstance(content, bytes) else content.encode())
    with caplog.at_level(logging.WARNING):
        lab = Lab(tmp_path, DEMO)          # before: OverflowError at start-up, or links 1 and 2 failed
    assert failed(lab) == {}
    warnings = [r.getMessage() for r in caplog.records if "controller state" in r.getMessage()]
    assert len(warnings) == 1 and why in warnings[0], warnings


def test_the_older_state_file_with_ids_is_still_read(tmp_path):
    (tmp_path / "controller-state.json").write_text('{"topology": "demo", "failed_links": [3]}')
    lab = Lab(tmp_path, DEMO)
    assert failed(lab) == {3: ("1.GENE", "2.LOND")}
