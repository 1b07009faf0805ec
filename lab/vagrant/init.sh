#!/bin/busybox sh
# /init of a local Vagrant box: load the disk modules, mount /dev/vda, hand over to systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in /modules/*.ko; do insmod "$m"; done
tries=0
until [ -b /dev/vda ] || [ $tries -ge 50 ]; do sleep 0.1; tries=$((tries + 1)); done
mkdir -p /root
mount -t ext4 -o rw /dev/vda /root || { echo "box-init: cannot mount /dev/vda"; sleep 5; poweroff -f; }
umount /proc /sys
mount --move /dev /root/dev
exec switch_root /root /sbin/init
