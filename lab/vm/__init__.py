"""qemu micro-VMs on Debian kernels: fetch, build, boot, run a command, collect.

Layout: :mod:`.paths` (cache), :mod:`.hosttools` (host programs), :mod:`.apt`
(private apt), :mod:`.kernels` (fetch + unpack), :mod:`.vmlinux` (ELF from
bzImage), :mod:`.modules` and :mod:`.cpio` (for :mod:`.initramfs`),
:mod:`.userland` (debootstrap), :mod:`.accel` and :mod:`.locks` (for the
:mod:`.qemu` runner), :mod:`.matrix`, :mod:`.hosts` (one interface for netns,
guests and Vagrant), :mod:`.ovs` (runs inside guests), :mod:`.cli`.
"""
