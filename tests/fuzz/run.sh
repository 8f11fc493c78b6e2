#!/bin/bash
# Builds every tests/fuzz/fuzz_*.c with libFuzzer + ASan + UBSan and runs each for
# SECONDS. Prints "PASS name" or "FAIL name" per target.
#   tests/fuzz/run.sh OUTDIR SECONDS
set -u
cd "$(dirname "$0")/../.."
OUT=${1:-build/fuzz}
SECS=${2:-10}
mkdir -p "$OUT"
# configure's header, for the one define these sources take from it (built without configure)
version=$(sed -n 's/^AC_INIT(\[vipd\], *\[\([^]]*\)\].*/\1/p' configure.ac)
printf '#define PACKAGE_VERSION "%s"\n' "${version:-0}" >"$OUT/vipd_config.h"
CFLAGS="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer-no-link,address,undefined \
-fno-sanitize-recover=undefined -Isrc -I. -I$OUT"
# The parsers and the API logic; no sockets, no loop.
SRCS="src/addr.c src/log.c src/util.c src/model.c src/settings.c src/lb_json.c src/config.c src/state.c
src/store.c cloud/ipam.c cloud/metal_msg.c cloud/metal_state.c src/api/handlers.c src/nlattr.c src/dataplane/route.c src/dataplane/ipvs_msg.c src/announce/addrs.c src/announce/bird_reply.c src/health/http_parse.c
src/health/health.c src/health/probe_tcp.c src/health/probe_http.c src/health/probe_udp.c
src/api/metrics.c src/reconcile.c src/announce/bird.c cloud/metal.c cloud/http.c"
objs=()
for s in $SRCS; do
	o=$OUT/$(echo "$s" | tr / _).o
	clang $CFLAGS -c "$s" -o "$o" || { echo "FAIL build-$s"; exit 1; }
	objs+=("$o")
done
rc=0
for f in tests/fuzz/fuzz_*.c; do
	name=$(basename "$f" .c)
	corpus=$OUT/$name.corpus
	mkdir -p "$corpus"
	[ -d "tests/fuzz/corpus/$name" ] && cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
	if ! clang $CFLAGS -fsanitize=fuzzer "$f" "${objs[@]}" -lcjson -lev -lssl -lcrypto -lcurl $(pkg-config --libs libnl-route-3.0 libnl-genl-3.0) -o "$OUT/$name" \
		>"$OUT/$name.log" 2>&1; then
		echo "FAIL $name"
		rc=1
		continue
	fi
	if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "./$name" -max_total_time="$SECS" \
		-rss_limit_mb=2048 -timeout=10 "$name.corpus") >>"$OUT/$name.log" 2>&1; then
		echo "PASS $name"
	else
		echo "FAIL $name"
		tail -30 "$OUT/$name.log"
		rc=1
	fi
done
exit $rc
