"""The container image of the docker backend, built locally (no registry is used or needed).

Which image: `--image` of minet-provision, else $MINET_DOCKER_IMAGE, else ``minet-sdn/frr:<version>``.

When the image is missing and its name is ours (``minet-sdn/...``), `ensure_image` builds it:

1. ``debootstrap --variant=minbase --include=frr,iproute2,... bookworm`` into a root filesystem
   under the cache dir ($MINET_IMAGE_CACHE, default /var/cache/minet-sdn/image), from the Debian
   mirror apt uses here ($MINET_DEBIAN_MIRROR overrides); apt caches and lists are dropped;
2. ``tar | docker import`` with ``CMD ["sleep", "infinity"]`` and the label ``org.minet-sdn=1``.

The root filesystem is kept, so building again (say after ``docker rmi``) is an import of a few
seconds, and a present image costs one ``docker image inspect``. One build at a time (an flock on
the cache dir): parallel provisioning runs on one machine wait for the first build and reuse it.

What any image must hold (custom images included): FRR's daemons in /usr/lib/frr, vtysh, a user
``frr``, ``sleep``; ping/traceroute/tcpdump are for the users.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .. import __version__, host

IMAGE_ENV = "MINET_DOCKER_IMAGE"
CACHE_ENV = "MINET_IMAGE_CACHE"
MIRROR_ENV = "MINET_DEBIAN_MIRROR"
DEFAULT_CACHE = "/var/cache/minet-sdn/image"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DOCKER_SOCKET = "/var/run/docker.sock"
OUR_REPOSITORY = "minet-sdn/"
SUITE = "bookworm"
PACKAGES = ("frr", "iproute2", "iputils-ping", "traceroute", "tcpdump", "procps")
LABEL = "org.minet-sdn"
CMD = '["sleep", "infinity"]'
DEBOOTSTRAP_TIMEOUT = 1800.0

Progress = Callable[[str], None]


class ImageProblem(Exception):
    pass


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def default_image() -> str:
    return f"{OUR_REPOSITORY}frr:{__version__}"


def image_name(explicit: Optional[str] = None, env: Optional[Dict[str, str]] = None) -> str:
    """The image to run: `explicit` (--image), else $MINET_DOCKER_IMAGE, else the default."""
    env = os.environ if env is None else env
    return explicit or env.get(IMAGE_ENV) or default_image()


def is_ours(image: str) -> bool:
    """Images named minet-sdn/... are built here when missing; others must be present."""
    return image.startswith(OUR_REPOSITORY)


def docker_cli() -> Optional[str]:
    return shutil.which("docker")


def docker_problem() -> Optional[str]:
    """Why the docker engine cannot be used from here (None: it can). One line."""
    if docker_cli() is None:
        return "the docker command is missing (package docker.io)"
    if not os.environ.get("DOCKER_HOST") and not os.path.exists(DOCKER_SOCKET):
        return f"the docker engine is not running ({DOCKER_SOCKET} is missing): start dockerd"
    res = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20)
    if res.returncode != 0:
        lines = [l for l in (res.stderr or res.stdout).splitlines() if l.strip()]
        return f"the docker engine does not answer: {lines[-1].strip() if lines else f'exit {res.returncode}'}"
    return None


def docker(*args: str, check: bool = True, timeout: float = 120.0,
           input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run the docker CLI; with `check`, a failure raises ImageProblem with docker's last line."""
    cli = docker_cli() or "docker"
    try:
        res = subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired:
        raise ImageProblem(f"docker {args[0]} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ImageProblem(f"cannot run docker: {exc.strerror or exc}") from None
    if check and res.returncode != 0:
        raise ImageProblem(f"docker {' '.join(args[:2])}: {last_line(res.stderr or res.stdout)}")
    return res


def last_line(text: str) -> str:
    lines = [l.strip() for l in (text or "").splitlines() if l.strip()]
    return lines[-1] if lines else "(no output)"


def image_present(image: str) -> bool:
    return docker("image", "inspect", "--format", "{{.Id}}", image, check=False, timeout=30).returncode == 0


def cache_dir(env: Optional[Dict[str, str]] = None) -> str:
    env = os.environ if env is None else env
    return env.get(CACHE_ENV) or DEFAULT_CACHE


def debian_mirror(env: Optional[Dict[str, str]] = None, apt_dir: str = "/etc/apt") -> str:
    """$MINET_DEBIAN_MIRROR, else the first Debian archive apt uses here (not -security), else deb.debian.org."""
    env = os.environ if env is None else env
    if env.get(MIRROR_ENV):
        return env[MIRROR_ENV]
    files = [os.path.join(apt_dir, "sources.list")] + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*")))
    for path in files:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        for uri in _source_uris(text, path.endswith(".sources")):
            if re.search(r"/debian/?$", uri) and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _source_uris(text: str, deb822: bool) -> List[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if deb822 and line.lower().startswith("uris:"):
            out += line.split(":", 1)[1].split()
        elif not deb822 and line.startswith("deb "):
            parts = [p for p in line.split()[1:] if not p.startswith("[")]
            if parts:
                out.append(parts[0])
    return out


def rootfs_dir(cache: str, packages: Tuple[str, ...] = PACKAGES, suite: str = SUITE) -> str:
    """The cached root filesystem for this package set (a new set gets a new directory)."""
    digest = hashlib.sha256(" ".join((suite,) + tuple(sorted(packages))).encode()).hexdigest()[:10]
    return os.path.join(cache, f"rootfs-{suite}-{digest}")


@contextmanager
def _locked(cache: str) -> Iterator[None]:
    with host.file_lock(cache, directory=True):
        yield


def ensure_image(image: str, progress: Optional[Progress] = None) -> Optional[float]:
    """Make sure `image` is present; build it when missing and ours. Returns the build time in
    seconds, or None when it was there. Raises ImageProblem."""
    if image_present(image):
        return None
    if not is_ours(image):
        raise ImageProblem(f"docker image {image} is not present on this machine (no registry is used: "
                           f"load or import it first, or leave {IMAGE_ENV}/--image unset to build "
                           f"{default_image()})")
    progress = progress or _stderr
    with _locked(cache_dir()):
        if image_present(image):          # another run built it while we waited
            return None
        return build_image(image, progress)


def build_image(image: str, progress: Optional[Progress] = None, cache: Optional[str] = None) -> float:
    """debootstrap (cached) + docker import. Returns seconds taken. Raises ImageProblem."""
    progress = progress or _stderr
    cache = cache or cache_dir()
    t0 = time.monotonic()
    root = rootfs_dir(cache)
    if not os.path.exists(os.path.join(root, ".minet-complete")):
        _debootstrap(root, progress)
    t1 = time.monotonic()
    uid, gid = frr_ids_in(root)
    progress(f"image {image}: docker import of {root}")
    tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "--exclude=./.minet-complete", "-c", "."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        imp = subprocess.run([docker_cli() or "docker", "import",
                              "--change", f"CMD {CMD}",
                              "--change", f"LABEL {LABEL}=1",
                              "--change", f"LABEL {LABEL}.frr-uid={uid} {LABEL}.frr-gid={gid}",
                              "--change", f"LABEL {LABEL}.packages={','.join(PACKAGES)}",
                              "-", image], stdin=tar.stdout, capture_output=True, text=True, timeout=600)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar_err = tar.communicate()[1]
    if tar.returncode != 0:
        raise ImageProblem(f"tar of {root} failed: {last_line(tar_err.decode(errors='replace'))}")
    if imp.returncode != 0:
        raise ImageProblem(f"docker import {image}: {last_line(imp.stderr or imp.stdout)}")
    t2 = time.monotonic()
    progress(f"image {image}: built in {t2 - t0:.1f} s (root filesystem {t1 - t0:.1f} s, import {t2 - t1:.1f} s)")
    return t2 - t0


def _debootstrap(root: str, progress: Progress) -> None:
    if not shutil.which("debootstrap"):
        raise ImageProblem("debootstrap is missing (package debootstrap): it builds the docker backend's image")
    mirror = debian_mirror()
    tmp = f"{root}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    progress(f"image: debootstrap --variant=minbase {SUITE} from {mirror} with {' '.join(PACKAGES)} "
             f"into {root} (once; about a minute)")
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, tmp, mirror]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT,
                             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except subprocess.TimeoutExpired:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageProblem(f"debootstrap did not finish within {DEBOOTSTRAP_TIMEOUT:g} s") from None
    if res.returncode != 0:
        log = os.path.join(os.path.dirname(root), "debootstrap-failed.log")
        try:
            shutil.copyfile(os.path.join(tmp, "debootstrap", "debootstrap.log"), log)
        except OSError:
            log = "none"
        why = last_line(res.stderr or res.stdout)
        shutil.rmtree(tmp, ignore_errors=True)
        raise ImageProblem(f"debootstrap from {mirror} failed: {why} (log: {log})")
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
                    "var/log/*.log", "debootstrap"):
        for path in glob.glob(os.path.join(tmp, pattern)):
            shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
    uid, gid = frr_ids_in(tmp)
    run_frr = os.path.join(tmp, "run", "frr")
    os.makedirs(run_frr, exist_ok=True)
    os.chown(run_frr, uid, gid)
    with open(os.path.join(tmp, ".minet-complete"), "w") as fh:
        fh.write(f"{SUITE} {' '.join(PACKAGES)} {mirror}\n")
    shutil.rmtree(root, ignore_errors=True)
    os.rename(tmp, root)


def frr_ids_in(root: str) -> Tuple[int, int]:
    """(uid, gid) of user frr in the root filesystem `root` (a chroot, or /proc/PID/root)."""
    try:
        with open(os.path.join(root, "etc", "passwd")) as fh:
            for line in fh:
                parts = line.strip().split(":")
                if len(parts) >= 4 and parts[0] == "frr":
                    return int(parts[2]), int(parts[3])
    except (OSError, ValueError):
        pass
    raise ImageProblem(f"no user frr in {root}/etc/passwd (is FRR installed in the image?)")


def remove_rootfs_cache(cache: Optional[str] = None) -> None:
    """Forget the cached root filesystems (the next build runs debootstrap again)."""
    cache = cache or cache_dir()
    for path in glob.glob(os.path.join(cache, "rootfs-*")):
        shutil.rmtree(path, ignore_errors=True)
