"""Vagrant side of the lab: the local box builder (``python3 -m pybpfasm.lab.vagrant.box``)."""
