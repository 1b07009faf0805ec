"""A gdb script (``gdb -batch -x gdb_watch.py --args python -m tests.events.watched_reader FILE``):
run the inferior to its SIGTRAP, put a hardware watchpoint on the 8-byte word whose address
it wrote to FILE (``PEV_ADDR``), and print every value the word takes until the inferior ends.
"""

import os

import gdb  # noqa: the module gdb runs this in

gdb.execute("set pagination off")
gdb.execute("set confirm off")
gdb.execute("run")
addr = int(open(os.environ["PEV_ADDR"]).read())
gdb.execute(f"watch -l *(unsigned long *){addr}")
values = []
while True:
    try:
        gdb.execute("continue", to_string=True)
    except gdb.error:
        break
    if not gdb.selected_inferior().pid:
        break
    values.append(int(gdb.parse_and_eval(f"*(unsigned long *){addr}")))
print("VALUES", values)
