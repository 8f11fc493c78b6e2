#!/bin/bash
# The bpf tier: builds the XDP object and the tests (tests/bpf/build.sh), then runs the
# BPF_PROG_TEST_RUN tests and the randomized harness. Needs root (BPF, a private netns).
#   tests/bpf/run.sh [SEED [COUNT]]   (random_packets' seed and packet count)
set -u
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-build/bpf}
if ! tests/bpf/build.sh "$OUT"; then
	echo "[  FAILED  ] bpf build"
	exit 1
fi
rc=0
"$OUT/test_xdp" || rc=1
"$OUT/random_packets" "${1:-1}" "${2:-200000}" || rc=1
exit $rc
