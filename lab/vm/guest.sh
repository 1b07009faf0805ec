# Runs in the guest's Debian userland (chroot) with the job share at /run/lab:
# loads the job's modules with kmod (soft dependencies included), then execs
# the job's command with its output in /run/lab/stdout and /run/lab/stderr.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
export LAB_OUT=/run/lab/out PYTHONPATH=/project PYTHONDONTWRITEBYTECODE=1
export PYTEST_ADDOPTS="-p no:cacheprovider --junitxml=$LAB_OUT/junit.xml"
if [ -s /run/lab/modules ]; then
    # shellcheck disable=SC2046
    modprobe -a $(cat /run/lab/modules) || echo "lab-guest: modprobe failed" > /dev/console
fi
[ -d /project ] && cd /project
exec >/run/lab/stdout 2>/run/lab/stderr </dev/null
. /run/lab/command
