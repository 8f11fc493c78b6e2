#!/bin/bash
# vipd demo: builds vipd and runs it in a network namespace of its own, drives the
# REST API with vipctl, kills it with -9, restarts it and shows nothing was lost.
# Installs its Debian build dependencies first (needs root, for apt-get and netns).
set -eu -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
B=$TOP/build/demo
NS=vipd-demo-$$
STATE=$(mktemp -d /tmp/vipd-demo.XXXXXX)
VIPD_PID=

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
	[ -n "$VIPD_PID" ] && kill "$VIPD_PID" 2>/dev/null && wait "$VIPD_PID" 2>/dev/null
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$STATE" "$STATE.log"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it installs packages and creates a network namespace)" >&2
	exit 1
fi

say "installing build dependencies (only what is missing)"
./contrib/deps.sh build

say "building vipd into $B"
autoreconf -fi >/dev/null 2>&1
mkdir -p "$B"
(cd "$B" && { [ -f Makefile ] || "$TOP/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
VIPD=$B/vipd
VIPCTL=$B/vipctl
"$VIPD" --version

say "node namespace $NS with loopback up"
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

start_vipd() {
	in_ns "$VIPD" --foreground --dataplane none --ipam-range 192.168.1.200-192.168.1.250 \
		--ipam-range 2001:db8:5::/120 --state-dir "$STATE" >>"$STATE.log" 2>&1 &
	VIPD_PID=$!
	for _ in $(seq 100); do
		in_ns "$VIPCTL" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "vipd did not start; its log:" >&2
	cat "$STATE.log" >&2
	exit 1
}

say "starting vipd (API on 127.0.0.1:10001 inside the namespace)"
start_vipd
in_ns "$VIPCTL" status

say "creating load balancers through the API (VIPs come from --ipam-range)"
in_ns "$VIPCTL" lb create web --port 80
in_ns "$VIPCTL" lb create dns --port 53 --protocol udp
in_ns "$VIPCTL" lb create api6 --port 6443 --vip 2001:db8:5::10
in_ns "$VIPCTL" backend add web 10.0.0.11:8080
in_ns "$VIPCTL" backend add web 10.0.0.12:8080 --weight 3
in_ns "$VIPCTL" backend add dns 10.0.0.21:53
in_ns "$VIPCTL" lb list
in_ns "$VIPCTL" lb show web
BEFORE=$(in_ns "$VIPCTL" --json lb list)

say "slb's own curl call works unchanged"
in_ns curl -s -X POST http://127.0.0.1:10001/loadbalancer -H 'Content-Type: application/json' \
	-d '{"name":"test loadbalancer", "port": 6443}'
echo
BEFORE=$(in_ns "$VIPCTL" --json lb list)

say "kill -9 vipd, then start it again on the same state directory"
kill -9 "$VIPD_PID"
wait "$VIPD_PID" 2>/dev/null || true
VIPD_PID=
start_vipd
AFTER=$(in_ns "$VIPCTL" --json lb list)
in_ns "$VIPCTL" lb list

say "summary"
n=$(printf '%s' "$AFTER" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
if [ "$BEFORE" = "$AFTER" ]; then
	echo "$n load balancers survived kill -9 with the same uuids, VIPs and backends."
else
	echo "MISMATCH after restart" >&2
	diff <(echo "$BEFORE") <(echo "$AFTER") >&2 || true
	exit 1
fi
echo "Forwarding (XDP/IPVS) and announcing (ARP/BGP) arrive in the next releases;"
echo "this release allocates, persists and serves the API."
