#!/usr/bin/env bash
# Set up a fresh machine and bring up the demo mini-Internet: 6 ASes on 3 emulated servers
# (network namespaces with their own Open vSwitch and sshd), provisioned over SSH, converged.
#   scripts/demo.sh [TOPOLOGY]        default: topologies/demo.yaml
# Remove it with: minet lab down topologies/demo.yaml
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $EUID -ne 0 ]]; then
  echo "demo: run as root (the lab creates network namespaces and Open vSwitch instances)" >&2
  exit 2
fi
bash scripts/setup.sh
topology=${1:-topologies/demo.yaml}
minet lab up "$topology"
cat <<EOT

Try:
  minet lab status $topology
  minet exec $topology 1.ZURI -- vtysh -c "show bgp summary"
  minet link fail $topology 1 && minet link list $topology && minet link restore $topology 1
  minet lab down $topology
EOT
