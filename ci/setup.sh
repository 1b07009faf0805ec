# Sourced by ci/test and lab/demo: what a fresh Debian machine needs, installed once.
# Usage: setup_machine EXTRAS APT_PACKAGES...   (run as root, from the repository root)

setup_machine() {
    local extras=$1
    shift
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if ((${#missing[@]})); then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"
}
