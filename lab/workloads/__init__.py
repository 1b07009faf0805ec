"""Scripted workloads whose every call is known in advance: the demo's and the tools' tests'.

Each module runs as a script (``python sockets.py ...``) in a child process that waits
for a line on stdin before it makes its calls, so a tool can be attached to its pid or
name first; each also names the calls it makes, from which the expected events follow.
"""
