#!/usr/bin/env bash
# Install everything minet-sdn and its tests need on a fresh Debian 12 machine (run as root).
# Safe to run again: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(openvswitch-switch frr iproute2 ethtool iputils-ping traceroute tcpdump iperf3 openssh-server procps
      docker.io debootstrap    # the docker backend: its engine, and the build of its local image
      graphviz fping chromium chromium-driver fonts-dejavu-core    # minet graph/matrix; the status page's browser tests
      nsd bind9-dnsutils)      # the mini-Internet's DNS service (nsd) and dig/host for it and its tests
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  # no init system here: keep package scripts from trying to start the machine's own daemons
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test,bench]' 2>&1 | grep -v -i "running pip as the 'root' user" || true
python3 -c "import minet_sdn, os_ken, yaml, pyroute2, paramiko, hypothesis, graphviz, selenium, networkx, matplotlib" \
  || { echo "setup: Python dependencies did not install" >&2; exit 1; }
echo "setup: ready" >&2
