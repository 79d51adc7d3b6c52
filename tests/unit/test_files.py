"""Writing a file the user named: never replace something that is not a regular file."""
from __future__ import annotations

import os
import stat
import threading

from minet_sdn.files import write_output


def test_a_regular_file_is_replaced_whole(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("old\n")
    write_output(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.yaml"]      # no temporary file left


def test_a_special_file_is_written_into_not_renamed_over(tmp_path):
    # what `minet import ... -o /dev/null` does as root: renaming over /dev/null would turn the
    # machine's /dev/null into a plain file; a fifo stands in for the device here
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo).read()))
    reader.start()
    write_output(str(fifo), "through\n")
    reader.join(timeout=10)
    assert got == ["through\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_dev_null_stays_a_device():
    write_output(os.devnull, "nothing\n")
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
