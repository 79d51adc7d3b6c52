"""Files provisioning writes for its nodes and daemons (configurations, zones, resolv.conf): written
only when their text changes, so that a second run changes nothing and says so, and never seen
half-written (a temporary file beside it, renamed over it)."""
from __future__ import annotations

import os
from typing import Optional, Tuple


def read_text(path: str) -> Optional[str]:
    """The file's text, None when it cannot be read (missing, a directory, no permission)."""
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return None


def write_if_changed(path: str, text: str, *, mode: Optional[int] = None,
                     owner: Optional[Tuple[int, int]] = None) -> bool:
    """Make `path` hold `text`; False when it already did (nothing touched). `mode` and `owner`
    (uid, gid) are set on the new file before it takes the old one's place."""
    if read_text(path) == text:
        return False
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    if mode is not None:
        os.chmod(tmp, mode)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)
    return True
