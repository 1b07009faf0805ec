#!/bin/sh
# Provision a lab machine: Python >= 3.9 with cffi and pyroute2, OVS, and the
# project (rsynced to /project) on PYTHONPATH. Idempotent; the local box has it all.
set -eu
export DEBIAN_FRONTEND=noninteractive

packages="python3 python3-cffi python3-pyroute2 python3-pytest openvswitch-switch iproute2 kmod"
missing=""
for p in $packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing
fi

# the project needs Python >= 3.9: Ubuntu 20.04 has python3.9 in universe, 18.04 only in a PPA
python=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
    if ! apt-get install -y -qq python3.9 python3.9-venv 2>/dev/null; then
        apt-get install -y -qq software-properties-common
        add-apt-repository -y ppa:deadsnakes/ppa
        apt-get install -y -qq python3.9 python3.9-venv
    fi
    python=python3.9
fi
# the distribution's pyroute2 may predate 0.7 (or belong to an older python3)
if ! "$python" -c 'import sys, cffi; from importlib.metadata import version
sys.exit(tuple(map(int, version("pyroute2").split(".")[:2])) < (0, 7))' 2>/dev/null; then
    [ "$python" = python3 ] && apt-get install -y -qq python3-venv
    "$python" -m venv /opt/pybpfasm
    /opt/pybpfasm/bin/pip install -q 'cffi>=1.15' 'pyroute2>=0.7' pytest
    python=/opt/pybpfasm/bin/python
fi

cat > /etc/profile.d/pybpfasm.sh <<EOT
export PYTHONPATH=/project
alias python3=$python
EOT
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || true
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || true
systemctl enable --now openvswitch-switch >/dev/null 2>&1 || true
echo "provisioned: $($python --version) on $(uname -r)"
