#!/usr/bin/env python3
"""CPU cost of the health checker: 10,000 backends probed over TCP at a 1 s interval
against a loopback listener for ~10 s (tests/bench/bench_health.c does the work).

Prints figures and the issue's target (<= 15% of one core); never asserts.
    BUILDDIR=build/plain tests/bench/health_cpu.py [backends] [interval_ms] [seconds]
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
builddir = os.environ.get("BUILDDIR", os.path.join(here, "..", "..", "build", "plain"))
exe = os.path.join(builddir, "tests", "bench", "bench_health")
if not os.path.exists(exe):
    subprocess.run(["make", "-C", builddir, "tests/bench/bench_health"], check=False,
                   stdout=subprocess.DEVNULL)
args = [exe] + sys.argv[1:4]
try:
    out = subprocess.run(args, capture_output=True, text=True, timeout=180)
except subprocess.TimeoutExpired:
    print("# bench_health did not finish within 180 s")
    sys.exit(0)
sys.stdout.write(out.stdout)
sys.stderr.write(out.stderr)
fig = {}
for line in out.stdout.splitlines():
    parts = line.split()
    if len(parts) >= 2 and not line.startswith("#"):
        fig[parts[0]] = parts[1]
if "checker_cpu_pct" in fig:
    pct = float(fig["checker_cpu_pct"])
    print(f"# target <= 15% of one core: measured {pct:.1f}% "
          f"({'within' if pct <= 15 else 'OVER'} target)")
    if "checker_us_per_probe" in fig and "baseline_us_per_probe" in fig:
        c, b = float(fig["checker_us_per_probe"]), float(fig["baseline_us_per_probe"])
        print(f"# per probe: checker {c:.2f} us vs bare syscalls {b:.2f} us "
              f"(x{c / b:.2f})" if b > 0 else "")
