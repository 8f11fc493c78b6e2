#!/bin/bash
# The real vipd with --dataplane ipvs inside user-mode-linux: what a user would check, with
# ipvsadm as the independent reader (see vipd_ipvs.py for the checks and the topology).
# Prints TAP. Run it through the runner (it refuses to run anywhere else: it changes IPVS):
#   BUILDDIR=$PWD/build/plain tests/uml/uml-run --timeout 600 --rw "$PWD" -- \
#       "$PWD/tests/uml/vipd_ipvs.sh"
set -u

if ! grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "vipd_ipvs.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILDDIR=${BUILDDIR:-$HERE/../../build/plain}
# One long-lived python does the checks: every process costs ~0.1 s in UML, python ~0.3 s.
exec python3 -S "$HERE/vipd_ipvs.py"
