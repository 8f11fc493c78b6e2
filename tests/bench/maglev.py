"""Maglev table build benchmark: runs the compiled tests/bench/bench_maglev program and prints its
figures (65537 slots x 10/100/1,000 backends, median and p99, next to a round-robin fill floor
measured in the same run). The binary is $MAGLEV_BENCH, default $BUILDDIR/tests/bench/bench_maglev;
$MAGLEV_BENCH_REPEAT sets the builds per figure (default 50). Targets are reported, not
asserted; the exit status is non-zero only if the program is missing or fails."""
import os
import subprocess
import sys

SRCDIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("BUILDDIR", SRCDIR)
BENCH = os.environ.get("MAGLEV_BENCH", os.path.join(BUILDDIR, "tests", "bench", "bench_maglev"))
REPEAT = os.environ.get("MAGLEV_BENCH_REPEAT", "50")

if not os.access(BENCH, os.X_OK):
    print(f"bench maglev: {BENCH} is not an executable (build it, or set MAGLEV_BENCH)",
          file=sys.stderr)
    sys.exit(1)
try:
    r = subprocess.run([BENCH, REPEAT], capture_output=True, text=True, timeout=600)
except subprocess.TimeoutExpired:
    print(f"bench maglev: {BENCH} ran longer than 600 s", file=sys.stderr)
    sys.exit(1)
for line in r.stdout.splitlines():
    print(line)
if r.returncode != 0:
    sys.stderr.write(r.stderr)
    print(f"bench maglev: {BENCH} exited with {r.returncode}", file=sys.stderr)
    sys.exit(1)
