#!/bin/bash
# The two-planes scenario (tests/lib/planes_scenario.py) with `vipd --dataplane ipvs` inside
# user-mode-linux; tests/integration/planes.py runs the same scenario with XDP on the host.
# Prints TAP and "# outcome: {...}". Run it through the runner (it changes IPVS):
#   BUILDDIR=$PWD/build/plain tests/uml/uml-run --timeout 600 --rw "$PWD" -- \
#       "$PWD/tests/uml/planes.sh"
set -u

if ! grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "planes.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILDDIR=${BUILDDIR:-$HERE/../../build/plain}
# One long-lived python does it all: every process costs ~0.1 s in UML, python ~0.3 s.
exec python3 -S "$HERE/planes.py"
