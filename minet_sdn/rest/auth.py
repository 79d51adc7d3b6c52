"""The controller's REST token: who may change state.

Reads (GET) stay open to whoever reaches the listener (loopback or a management address); every
request that changes state (any other method: link fail/restore, /v1/reload, the status page's POSTs)
must carry `Authorization: Bearer <token>`. The token is random, made when the controller starts
(kept across restarts), in the file `rest-token` beside the controller's state file: mode 0600, owned
by the controller's user (root), so only who can read that file can act. Answers carry
`X-Minet-Instance: <topology name>` so a client can tell it reached THIS instance's controller.
"""
from __future__ import annotations

import hmac
import os
import secrets
import stat
from typing import Optional

TOKEN_FILE = "rest-token"
INSTANCE_HEADER = "X-Minet-Instance"
TOKEN_ENV = "MINET_REST_TOKEN_FILE"          # where a client finds the token, if not in the usual places
DEFAULT_STATE_ROOT = "/var/lib/minet-sdn"


def state_root() -> str:
    return os.environ.get("MINET_STATE_DIR") or DEFAULT_STATE_ROOT


def ensure_token(directory: str) -> str:
    """The token in `directory`/rest-token, made (random, 0600) when missing or not safe to trust:
    not a regular file of ours, readable or writable by anyone else."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, TOKEN_FILE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        pass
    else:
        with os.fdopen(fd) as fh:
            st = os.fstat(fh.fileno())
            token = fh.read(256).strip()
        if (stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077
                and _well_formed(token)):
            return token
    token = secrets.token_urlsafe(32)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.replace(tmp, path)
    return token


def _well_formed(token: str) -> bool:
    return 32 <= len(token) <= 128 and all(c.isascii() and (c.isalnum() or c in "-_") for c in token)


def read_token(path: str) -> Optional[str]:
    """The token in `path`, or None when it cannot be read (another user: then writes get 401)."""
    try:
        with open(path) as fh:
            token = fh.read(256).strip()
    except (OSError, UnicodeDecodeError):
        return None
    return token if _well_formed(token) else None


def token_path(topo, lab_file: Optional[str] = None) -> str:
    """Where a client looks for `topo`'s controller token: $MINET_REST_TOKEN_FILE; else `lab_file`
    (the running lab's copy, which the caller names: the controller knows nothing of the lab) when
    it exists; else the standalone controller's default state directory."""
    explicit = os.environ.get(TOKEN_ENV)
    if explicit:
        return explicit
    if lab_file and os.path.exists(lab_file):
        return lab_file
    return os.path.join(state_root(), topo.name, TOKEN_FILE)


def token_for(topo, lab_file: Optional[str] = None) -> Optional[str]:
    return read_token(token_path(topo, lab_file))


def check(header: Optional[str], token: Optional[str]) -> Optional[int]:
    """None when `header` (an Authorization value) carries `token`; else the HTTP status to answer:
    401 (no credentials) or 403 (wrong ones). No token configured: every write is refused (403)."""
    if not header:
        return 401
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401
    if not token:
        return 403
    return None if hmac.compare_digest(given.strip().encode(), token.encode()) else 403
