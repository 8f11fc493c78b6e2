#!/bin/bash
# vipd's IPVS demo, run on request (the default demo, contrib/demo.sh, shows the XDP plane).
# This host's kernel may have no IPVS, so the demo boots a user-mode-linux kernel that has it
# (tests/uml/uml-run) and runs contrib/demo/ipvs_inside.py there, narrating live: a client
# and three backends in namespaces, vipd --dataplane ipvs, load balancers made with vipctl
# (nat, and fullnat when the kernel has nftables NAT) and one declared in vipd.json (dsr);
# real TCP counted per backend; ipvsadm next to vipctl; a weight change by SIGHUP (one IPVS
# message); a drain with a connection held open (draining -> drained); a killed backend
# taken out by its health check while traffic goes on; vipd's nft table for fullnat; SIGTERM
# removing exactly vipd's services. Prints a summary.
# fullnat needs a UML kernel with nftables NAT, which Debian's lacks: the demo uses the one
# tests/uml/build-kernel caches in /var/cache/vipd-tests/uml-kernel (or VIPD_UML_KERNEL_DIR)
# when it is there and current, and never starts that ~12 min build itself.
# Installs its Debian dependencies first (needs root).
set -eu -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
B=$TOP/build/demo
KDIR=${VIPD_UML_KERNEL_DIR:-/var/cache/vipd-tests/uml-kernel}
UML_PID=

. "$TOP/contrib/demo/prepare.sh"

cleanup() {
	set +e
	# uml-run kills and reaps its UML on SIGTERM
	[ -n "$UML_PID" ] && kill "$UML_PID" 2>/dev/null && wait "$UML_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

demo_prepare demo-ipvs test "it installs packages and runs user-mode-linux"

# A current kernel from build-kernel, never a 12-minute build from the demo.
kernel=$(tests/uml/build-kernel --cached "$KDIR" 2>/dev/null) || kernel=
if [ -n "$kernel" ]; then
	say "user-mode-linux kernel with nftables NAT: $kernel (nat, dsr and fullnat)"
	KERNEL=(--kernel "$kernel")
	FULLNAT=1
else
	say "Debian's user-mode-linux kernel: nat and dsr only"
	echo "fullnat needs a UML kernel with nftables NAT, which Debian's lacks. Build one once"
	echo "(~12 min on 2 cores) and run this demo again to see fullnat too:"
	echo "  tests/uml/build-kernel $KDIR"
	KERNEL=()
	FULLNAT=0
fi
COLOR=0
[ -t 1 ] && COLOR=1

say "booting user-mode-linux; inside it: contrib/demo/ipvs_inside.py"
# In the background so that the traps can stop it; its output is streamed as it comes.
tests/uml/uml-run "${KERNEL[@]}" --timeout 300 --env "VIPD=$B/vipd" --env "VIPCTL=$B/vipctl" \
	--env "VIPD_DEMO_FULLNAT=$FULLNAT" --env "VIPD_DEMO_COLOR=$COLOR" -- \
	python3 -S "$TOP/contrib/demo/ipvs_inside.py" &
UML_PID=$!
rc=0
wait "$UML_PID" || rc=$?
UML_PID=
if [ "$FULLNAT" = 0 ]; then
	echo
	echo "fullnat was not shown: build a UML kernel with nftables NAT once (~12 min):"
	echo "  tests/uml/build-kernel $KDIR"
fi
echo "demo-ipvs: $SECONDS s in all, exit $rc"
exit "$rc"
