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

CLANG=${CLANG:-clang}
BPFTOOL=${BPFTOOL:-bpftool}
CC=${CC:-gcc}
CFLAGS="-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Werror"
B=$SRCDIR/tests/bench

"$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c >"$OUT/vmlinux.h.tmp"
mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"
for p in pktgen_live sink; do
	"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Wextra -Werror -I"$OUT" \
		-c "$B/$p.bpf.c" -o "$OUT/$p.bpf.o"
done
"$BPFTOOL" gen skeleton "$OUT/pktgen_live.bpf.o" name pktgen_live_bpf >"$OUT/pktgen_live.skel.h.tmp"
mv "$OUT/pktgen_live.skel.h.tmp" "$OUT/pktgen_live.skel.h"
# shellcheck disable=SC2086
"$CC" $CFLAGS -I"$OUT" "$B/pktgen_live.c" -lbpf -lelf -lz -lpthread -o "$OUT/pktgen_live"
