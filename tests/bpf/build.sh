#!/bin/bash
# Builds the XDP object, its skeleton and the bpf-tier test programs under OUT.
#   tests/bpf/build.sh [OUT]      (default build/bpf)
# vmlinux.h is generated from the running kernel's BTF; it is never committed.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-build/bpf}
mkdir -p "$OUT"

CLANG=${CLANG:-clang}
BPFTOOL=${BPFTOOL:-bpftool}
CC=${CC:-gcc}
CFLAGS="-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Werror"

"$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c >"$OUT/vmlinux.h.tmp"
mv "$OUT/vmlinux.h.tmp" "$OUT/vmlinux.h"
# -mcpu=v3: 32-bit sub-registers and jumps (kernel >= 5.1).
"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Wextra -Werror -I"$OUT" -Isrc/bpf \
	-c src/bpf/vipd.bpf.c -o "$OUT/vipd.bpf.o"
"$BPFTOOL" gen skeleton "$OUT/vipd.bpf.o" >"$OUT/vipd.skel.h.tmp"
mv "$OUT/vipd.skel.h.tmp" "$OUT/vipd.skel.h"

for t in test_xdp random_packets; do
	# shellcheck disable=SC2086
	"$CC" $CFLAGS -I"$OUT" -Isrc/bpf -Itests/bpf tests/bpf/$t.c tests/bpf/xdp_env.c \
		tests/bpf/pkt.c -lbpf -lelf -lz -lcmocka -o "$OUT/$t"
done
