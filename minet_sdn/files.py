"""Files the user names on the command line."""
from __future__ import annotations

import os
import tempfile


def write_output(path: str, text: str) -> None:
    """Write a file the user named: atomically when it is a regular file (or new), straight into it
    when it is something else (`-o /dev/null`, `/dev/stdout`, a fifo): renaming over a device node
    as root would replace the machine's /dev/null with a plain file."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".minet-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
