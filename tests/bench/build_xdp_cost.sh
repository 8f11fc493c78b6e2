#!/bin/bash
# Builds the XDP cost benchmark under OUT: vmlinux.h, xdp_cost.bpf.o (vipd.bpf.c inside
# benchmark wrappers), its skeleton and the runner xdp_cost.
#   tests/bench/build_xdp_cost.sh OUT
# The skeleton is named vipd_bpf (vipd.skel.h): the object holds every map and program of
# vipd.bpf.c, so the bpf tier's test bed (tests/bpf/xdp_env.c) loads and fills it as is.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:?usage: build_xdp_cost.sh OUT}
mkdir -p "$OUT"

CLANG=${CLANG:-clang}
BPFTOOL=${BPFTOOL:-bpftool}
CC=${CC:-gcc}
CFLAGS="-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Werror"

"$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c >"$OUT/vmlinux.h.tmp"
mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"
# -mcpu=v3 as for the real object (tests/bpf/build.sh), so the code measured is the same.
"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Wextra -Werror -I"$OUT" -Isrc/bpf \
	-c tests/bench/xdp_cost.bpf.c -o "$OUT/xdp_cost.bpf.o"
"$BPFTOOL" gen skeleton "$OUT/xdp_cost.bpf.o" name vipd_bpf >"$OUT/vipd.skel.h.tmp"
mv "$OUT/vipd.skel.h.tmp" "$OUT/vipd.skel.h"

# shellcheck disable=SC2086
"$CC" $CFLAGS -I"$OUT" -Isrc/bpf -Itests/bpf tests/bench/xdp_cost.c tests/bpf/xdp_env.c \
	tests/bpf/pkt.c -lbpf -lelf -lz -o "$OUT/xdp_cost"
