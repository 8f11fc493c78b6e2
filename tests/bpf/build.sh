#!/bin/bash
# Builds the XDP object, its skeleton and the bpf-tier test programs under OUT.
#   tests/bpf/build.sh [OUT]      (default build/bpf)
# vmlinux.h is generated from the running kernel's BTF; it is never committed.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-build/bpf}
mkdir -p "$OUT"
. tests/lib/bpf_build.sh

bpf_vmlinux "$OUT"
bpf_object src/bpf/vipd.bpf.c "$OUT/vipd.bpf.o" -I"$OUT" -Isrc/bpf
bpf_skeleton "$OUT/vipd.bpf.o" vipd_bpf "$OUT/vipd.skel.h"

for t in test_xdp random_packets; do
	# shellcheck disable=SC2086
	"$CC" $HOST_CFLAGS -I"$OUT" -Isrc/bpf -Itests/bpf tests/bpf/$t.c tests/bpf/xdp_env.c \
		tests/bpf/pkt.c -lbpf -lelf -lz -lcmocka -o "$OUT/$t"
done
