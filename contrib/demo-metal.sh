#!/bin/bash
# vipd's Equinix Metal demo, run on request (the default demo, contrib/demo.sh, shows the XDP
# plane with ARP and BGP). Metal is retired, so vipd's elastic-IP provider runs against the
# local fake Metal API and metadata service (tests/fake-metal, built from the shapes Metal's
# OpenAPI spec documents) and real BIRD peers, in namespaces made here (prefix dm-), the
# topology of tests/integration/metal.py: contrib/demo/metal_demo.py narrates live
# vipd --bgp --project P --metro ny starting (device from the metadata, BGP neighbours into
# BIRD's peer file, reservations listed) and both MD5 sessions Established; `vipctl lb create`
# without a VIP going pending -> elastic IP, tagged at the fake, its /32 at the router, real TCP
# from a client behind the router; a 429 with Retry-After holding the next one pending, then
# converging; kill -9 between a reservation and its answer, restart: no second reservation,
# the address adopted; `vipctl lb delete` withdrawing the route and releasing the address.
# Prints a summary with the figures. Installs its Debian dependencies first (needs root).
set -eu -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
B=$TOP/build/demo
DEMO_PID=

. "$TOP/contrib/demo/prepare.sh"

cleanup() {
	set +e
	# metal_demo.py stops what it started and removes its namespaces on SIGTERM
	[ -n "$DEMO_PID" ] && kill "$DEMO_PID" 2>/dev/null && wait "$DEMO_PID" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

demo_prepare demo-metal test "it installs packages, creates network namespaces, loads XDP"

# In the background so that the traps can stop it; its output is streamed as it comes.
VIPD=$B/vipd VIPCTL=$B/vipctl python3 "$TOP/contrib/demo/metal_demo.py" &
DEMO_PID=$!
rc=0
wait "$DEMO_PID" || rc=$?
DEMO_PID=
echo "demo-metal: $SECONDS s in all, exit $rc"
exit "$rc"
