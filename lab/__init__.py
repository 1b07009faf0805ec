"""The lab: places to run pybpfasm on kernels other than the local one.

``pybpfasm.lab.vm`` boots qemu micro-VMs on Debian (or user-supplied) kernels.
"""
