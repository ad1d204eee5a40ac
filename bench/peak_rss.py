"""Run a command and print its peak resident memory, in KB, as the last line of standard error.

    python bench/peak_rss.py COMMAND [ARGS...]

Exits with the command's status. Why not ``os.wait4`` on a child of one's own: Linux counts in a
child's peak the memory of the process it was forked from (held until its exec), so a benchmark or a
test of hundreds of MB would read its own size as every command's figure. Forked from this small
process instead, the command's figure is its own.
"""

import os
import subprocess
import sys

if __name__ == "__main__":
    child = subprocess.Popen(sys.argv[1:])
    _, status, usage = os.wait4(child.pid, 0)
    print(usage.ru_maxrss, file=sys.stderr)
    sys.exit(os.waitstatus_to_exitcode(status))
