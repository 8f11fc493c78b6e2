#!/bin/bash
# The real vipd with --dataplane ipvs and fullnat load balancers inside user-mode-linux: IPVS
# masq plus the SNAT table "inet vipd", with real traffic (see vipd_fullnat.py for the checks
# and the topology). Needs a kernel with nftables inet NAT, i.e. tests/uml/build-kernel's:
#   BUILDDIR=$PWD/build/plain tests/uml/uml-run --kernel "$(tests/uml/build-kernel)" \
#       --timeout 600 --rw "$PWD" -- "$PWD/tests/uml/vipd_fullnat.sh"
# Prints TAP. It refuses to run outside UML: it changes IPVS and nftables.
set -u

if ! grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "vipd_fullnat.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
export BUILDDIR=${BUILDDIR:-$HERE/../../build/plain}
# One long-lived python does the checks: every process costs ~0.1 s in UML.
exec python3 -S "$HERE/vipd_fullnat.py"
