"""Who may open which door: one unprivileged user per group, its password, each door's host key
and the TA's keys.

Everything lives in the instance's class directory, kept across `lab up`/`lab down` (the lab's own
state directory is removed by `lab down`):

    $MINET_CLASS_DIR/<instance>/        default /var/lib/minet-sdn/class/<instance>, 0700 root
        credentials.json                {"version": 1, "passwords": {"<asn>": "..."}}   0600 root
        hostkeys/as<ASN>_ed25519[.pub]  the door's host key: the same fingerprint every lab up

Passwords are made once (secrets, 16 characters of an alphabet without look-alikes, ~92 bits),
when a door first needs one, and change only with `rotate` (`minet class passwd FILE ASN`).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import subprocess
from typing import Dict, Iterable, Optional

from . import ClassError

DEFAULT_ROOT = "/var/lib/minet-sdn/class"
ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"   # no l, I, O, 0, 1
PASSWORD_LENGTH = 16
VERSION = 1


def class_root() -> str:
    return os.environ.get("MINET_CLASS_DIR", DEFAULT_ROOT)


def instance_dir(instance: str) -> str:
    return os.path.join(class_root(), instance)


def user_name(tag: str, asn: int) -> str:
    """The group's Unix user (and the user name students type): `as<ASN>-<tag>`, e.g. `as3-demo`:
    starts with a letter whatever the tag, at most 2 + 10 + 1 + 6 = 19 characters."""
    return f"as{asn}-{tag}"


def new_password() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(PASSWORD_LENGTH))


def password_hash(password: str, salt: Optional[str] = None) -> str:
    """SHA-512 crypt(3) of `password` (what /etc/shadow holds and sshd checks)."""
    salt = salt or "".join(secrets.choice(ALPHABET) for _ in range(16))
    proc = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password,
                          capture_output=True, text=True)
    if proc.returncode != 0 or not proc.stdout.startswith("$6$"):
        raise ClassError(f"openssl passwd failed: {proc.stderr.strip() or 'no hash'}")
    return proc.stdout.strip()


CRYPT_RE = re.compile(r"\$6\$[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{86}")     # SHA-512 crypt(3)


class Store:
    """The credentials file of one instance (read, filled, rotated, written whole: 0600)."""

    def __init__(self, instance: str, root: Optional[str] = None):
        self.dir = os.path.join(root or class_root(), instance)
        self.path = os.path.join(self.dir, "credentials.json")
        self.passwords: Dict[int, str] = {}
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            return
        except PermissionError:
            raise ClassError(f"{self.path}: only root can read the class credentials") from None
        except (OSError, ValueError) as exc:
            raise ClassError(f"{self.path}: unreadable credentials ({exc})") from None
        pw = data.get("passwords") if isinstance(data, dict) else None
        if not isinstance(pw, dict) or not all(isinstance(k, str) and k.isdigit() and isinstance(v, str)
                                               and len(v) >= 8 for k, v in pw.items()):
            raise ClassError(f"{self.path}: not a credentials file (passwords: {{ASN: password}})")
        self.passwords = {int(k): v for k, v in pw.items()}

    def ensure(self, asns: Iterable[int]) -> bool:
        """Give every AS of `asns` a password if it has none; whether anything was made."""
        made = False
        for asn in asns:
            if asn not in self.passwords:
                self.passwords[asn] = new_password()
                made = True
        if made:
            self.save()
        return made

    def crypt(self, asn: int) -> str:
        """What the system keeps of group `asn`'s password (/etc/shadow): a fresh salted hash."""
        return password_hash(self.passwords[asn])

    def rotate(self, asn: int) -> str:
        self.passwords[asn] = new_password()
        self.save()
        return self.passwords[asn]

    def save(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        os.chmod(self.dir, 0o700)
        text = json.dumps({"version": VERSION, "passwords": {str(k): v for k, v in sorted(self.passwords.items())}},
                          indent=1) + "\n"
        tmp = f"{self.path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---- host keys: one per door, made once ------------------------------------------------
    def host_key(self, asn: int) -> str:
        """Path of door `asn`'s private host key (made when missing)."""
        kdir = os.path.join(self.dir, "hostkeys")
        os.makedirs(kdir, mode=0o700, exist_ok=True)
        path = os.path.join(kdir, f"as{asn}_ed25519")
        if not os.path.exists(path):
            proc = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"door-as{asn}",
                                   "-f", path], capture_output=True, text=True)
            if proc.returncode != 0:
                raise ClassError(f"ssh-keygen failed for door AS{asn}: {proc.stderr.strip()}")
        return path

    def host_key_public(self, asn: int) -> Optional[str]:
        """`TYPE BASE64` of door `asn`'s host key, None when not made yet."""
        try:
            with open(os.path.join(self.dir, "hostkeys", f"as{asn}_ed25519.pub")) as fh:
                return " ".join(fh.read().split()[:2])
        except OSError:
            return None


class Hashes(Store):
    """A server's credentials under `--master`: its groups' password *hashes* (made by the master,
    what sshd checks through /etc/shadow) and their doors' host keys; never a password, so none is
    ever written on the server (docs/class.md)."""

    def __init__(self, instance: str, root: str, hashes: Dict[int, str]):
        self.dir = os.path.join(root, instance)
        self.path = os.path.join(self.dir, "credentials.json")
        self.passwords = {}
        self.hashes = dict(hashes)
        for asn, h in self.hashes.items():
            if not isinstance(h, str) or not CRYPT_RE.fullmatch(h):
                raise ClassError(f"AS{asn}: not a SHA-512 crypt(3) password hash")

    def ensure(self, asns: Iterable[int]) -> bool:
        missing = [a for a in asns if a not in self.hashes]
        if missing:
            raise ClassError(f"no password hash for AS {', '.join(map(str, missing))}")
        return False

    def crypt(self, asn: int) -> str:
        return self.hashes[asn]

    def rotate(self, asn: int) -> str:
        raise ClassError("passwords are rotated on the master (minet class passwd)")

    def save(self) -> None:
        os.makedirs(self.dir, mode=0o700, exist_ok=True)


def fingerprint(public: str) -> str:
    """OpenSSH's SHA256 fingerprint of a `TYPE BASE64` public key."""
    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
