#!/bin/busybox sh
# /init of the lab initramfs (busybox). Mounts the job share, the read-only 9p
# userland under a tmpfs overlay, the kernel's modules and the project, then
# runs /run/lab/guest.sh in a chroot, records its exit status and powers off.
/bin/busybox --install -s /bin
export PATH=/bin

fail() {
    echo "lab-init: $*"
    [ -d /job ] && echo "init: $*" > /job/status
    sync
    poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do
    [ -e "$m" ] || continue
    insmod "$m" || fail "insmod $m failed"
done

share() {  # share TAG DIR [OPTIONS]
    mkdir -p "$2" && mount -t 9p -o "trans=virtio,version=9p2000.L,msize=262144${3:+,$3}" "$1" "$2"
}
has_share() { grep -qx "$1" /sys/bus/virtio/devices/*/mount_tag 2>/dev/null; }

share job /job || fail "cannot mount the job share"
share userland /lower ro,cache=loose || fail "cannot mount the userland share"
mkdir -p /upper /newroot
mount -t tmpfs -o mode=755 tmpfs /upper && mkdir /upper/rw /upper/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/rw,workdir=/upper/work /newroot \
    || fail "cannot mount the overlay root"

R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mount -t tmpfs tmpfs $R/tmp
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t bpf bpf $R/sys/fs/bpf 2>/dev/null
if has_share modules; then
    share modules "$R/lib/modules/$(uname -r)" ro,cache=loose || fail "cannot mount the modules share"
fi
if has_share project; then
    share project $R/project ro || fail "cannot mount the project share"
fi
if has_share work; then
    share work $R/work || fail "cannot mount the work share"
fi
mkdir -p $R/run/lab
mount --bind /job $R/run/lab

# the kernel loads modules on demand (nf_tables, sch_clsact ...) with the modprobe named in
# /proc/sys/kernel/modprobe, run from this root: hand it to the userland's kmod
printf '#!/bin/sh\nexec chroot %s /sbin/modprobe "$@"\n' "$R" > /bin/modprobe-userland
chmod +x /bin/modprobe-userland
echo /bin/modprobe-userland > /proc/sys/kernel/modprobe

hostname guest
chroot $R /bin/sh /run/lab/guest.sh
echo $? > /job/status
sync
umount $R/run/lab /job 2>/dev/null
poweroff -f
