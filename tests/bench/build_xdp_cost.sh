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
. tests/lib/bpf_build.sh

bpf_vmlinux "$OUT"
bpf_object tests/bench/xdp_cost.bpf.c "$OUT/xdp_cost.bpf.o" -I"$OUT" -Isrc/bpf
bpf_skeleton "$OUT/xdp_cost.bpf.o" vipd_bpf "$OUT/vipd.skel.h"
# shellcheck disable=SC2086
"$CC" $HOST_CFLAGS -I"$OUT" -Isrc/bpf -Itests/bpf tests/bench/xdp_cost.c tests/bpf/xdp_env.c \
	tests/bpf/pkt.c -lbpf -lelf -lz -o "$OUT/xdp_cost"
