#!/bin/bash
# Builds the live-frames benchmark's programs (xdp_live.py) into $BUILDDIR/tests/bench, or OUT
# if given: vmlinux.h, pktgen_live.bpf.o and its skeleton, the generator pktgen_live, and
# sink.bpf.o (the backend's drop counter and the minimal XDP forwarder).
#   tests/bench/build_xdp_live.sh [OUT]
# SRCDIR (default: this checkout) and BUILDDIR as tests/run sets them.
set -eu
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${1:-${BUILDDIR:?set BUILDDIR or give OUT}/tests/bench}
mkdir -p "$OUT"
. "$SRCDIR/tests/lib/bpf_build.sh"
B=$SRCDIR/tests/bench

bpf_vmlinux "$OUT"
for p in pktgen_live sink; do
	bpf_object "$B/$p.bpf.c" "$OUT/$p.bpf.o" -I"$OUT"
done
bpf_skeleton "$OUT/pktgen_live.bpf.o" pktgen_live_bpf "$OUT/pktgen_live.skel.h"
# shellcheck disable=SC2086
"$CC" $HOST_CFLAGS -I"$OUT" "$B/pktgen_live.c" -lbpf -lelf -lz -lpthread -o "$OUT/pktgen_live"
