"""qemu micro-VMs on Debian kernels: fetch, build, boot, run a command, collect.

Layout: :mod:`.paths` (cache), :mod:`.apt` (private apt), :mod:`.kernels`
(fetch + unpack), :mod:`.vmlinux` (ELF from bzImage), :mod:`.initramfs`,
:mod:`.userland` (debootstrap), :mod:`.qemu` (runner), :mod:`.matrix`,
:mod:`.cli`.
"""
