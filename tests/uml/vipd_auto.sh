#!/bin/bash
# vipd --dataplane auto inside user-mode-linux, whose kernel has IPVS: an adapter without
# native XDP (a dummy link) gets IPVS, and nothing of XDP is left behind (see vipd_auto.py).
# Prints TAP. Run it through the runner (it refuses to run anywhere else: it changes IPVS):
#   BUILDDIR=$PWD/build/plain tests/uml/uml-run --timeout 300 --rw "$PWD" -- \
#       "$PWD/tests/uml/vipd_auto.sh"
# Where vipd's XDP program runs in the guest kernel (not in Debian's linux.uml: no BTF) it
# also checks that native XDP wins over IPVS and that a vipd program already on the adapter
# keeps IPVS out; otherwise those checks are reported as skipped.
set -u

if ! grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "vipd_auto.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILDDIR=${BUILDDIR:-$HERE/../../build/plain}
# One long-lived python does the checks: every process costs ~0.1 s in UML, python ~0.3 s.
exec python3 -S "$HERE/vipd_auto.py"
