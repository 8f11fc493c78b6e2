#!/bin/bash
# vipd demo: builds vipd and runs it on a "node" network namespace between a client and three
# backends (all namespaces made here), with the XDP data plane and L2 announcing (--arp) on the
# client's link. Load balancers are created through the REST API with vipctl; the client learns
# each VIP from vipd's gratuitous ARP / NA and sends real TCP and UDP traffic over IPv4 and
# IPv6 through fullnat, nat and dsr VIPs; a backend is drained while a connection to it stays
# up; health checks take a killed backend out, withdraw a VIP whose backends all died and
# announce it again when they return; vipd is killed with -9 in the middle of a transfer and
# restarted. Then BGP mode: vipd restarts with --bgp, hands its VIPs to a BIRD on the node,
# which announces them to a BIRD on a router namespace; the router's traffic reaches the VIPs;
# a VIP whose backends all die is withdrawn at the router and comes back with them. Prints a
# summary.
# The IPVS data plane has its own demo, inside user-mode-linux: ./contrib/demo-ipvs.sh
# Equinix Metal elastic IPs (local fake Metal API, real BIRD peers) too: ./contrib/demo-metal.sh
# Installs its Debian dependencies first (needs root, for apt-get, netns and XDP).
set -eu -o pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
B=$TOP/build/demo
D=$TOP/contrib/demo
P=vd$$ # namespace prefix
NODE=$P-node
CLIENT=$P-client
ROUTER=$P-router
BIRD_PIDS=()
WORK=$(mktemp -d /tmp/vipd-demo.XXXXXX)
PIN=/sys/fs/bpf/vipd-demo-$$
VIPD_PID=
PIDS=()
SUMMARY=()

. "$TOP/contrib/demo/prepare.sh"
note() { SUMMARY+=("$*"); }

cleanup() {
	set +e
	[ -n "$VIPD_PID" ] && kill "$VIPD_PID" 2>/dev/null && wait "$VIPD_PID" 2>/dev/null
	for p in "${PIDS[@]}" "${BIRD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -x "$B/vipd" ] && [ -e "/run/netns/$NODE" ] &&
		nsenter --net="/run/netns/$NODE" "$B/vipd" --xdp-unload --bpf-pin-dir "$PIN" >/dev/null 2>&1
	for ns in "$CLIENT" "$NODE" "$ROUTER" "$P-b1" "$P-b2" "$P-b3"; do ip netns del "$ns" 2>/dev/null; done
	rm -rf "$WORK" "$PIN"
}
trap cleanup EXIT

demo_prepare demo build "it installs packages, creates network namespaces, loads XDP"
VIPD=$B/vipd
VIPCTL=$B/vipctl
clang -target bpf -O2 -I/usr/include/"$(gcc -print-multiarch)" -c "$D/xdp_pass.bpf.c" \
	-o "$WORK/xdp_pass.o"

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
node() { nsenter --net="/run/netns/$NODE" "$@"; }
ctl() { node "$VIPCTL" "$@"; }
client() { in_ns "$CLIENT" timeout 60 python3 "$D/client.py" "$@"; }

say "topology: client -- node (vipd, XDP) -- backends b1 b2 b3, in namespaces $P-*"
for ns in "$CLIENT" "$NODE" "$P-b1" "$P-b2" "$P-b3"; do
	ip netns add "$ns"
	ip -n "$ns" link set lo up
done
# A veth end that vipd's program sends frames to (XDP_TX, redirect) needs an XDP program of
# its own, and a veth sending into an XDP program must not leave TCP checksums to offload.
peer_end() { # NS IFACE
	ip -n "$1" link set dev "$2" xdpdrv obj "$WORK/xdp_pass.o" sec xdp
	in_ns "$1" ethtool -K "$2" tx off >/dev/null
}
ip link add c0 netns "$CLIENT" type veth peer name n0 netns "$NODE"
ip -n "$CLIENT" addr add 10.201.0.2/24 dev c0
ip -n "$CLIENT" addr add fd00:201::2/64 dev c0 nodad
ip -n "$NODE" addr add 10.201.0.1/24 dev n0
ip -n "$NODE" addr add fd00:201::1/64 dev n0 nodad
ip -n "$CLIENT" link set c0 up
ip -n "$NODE" link set n0 up
peer_end "$CLIENT" c0
# The VIPs come from the client's own subnet and are announced by vipd (--arp): the client
# accepts gratuitous ARP for addresses it never asked about (and, for IPv6, unsolicited NAs,
# which Linux takes only on interfaces that forward).
in_ns "$CLIENT" sysctl -qw net.ipv4.conf.c0.arp_accept=1 net.ipv6.conf.c0.forwarding=1 \
	net.ipv6.conf.c0.accept_untracked_na=1
for i in 1 2 3; do
	ns=$P-b$i
	ip link add b0 netns "$ns" type veth peer name "n$i" netns "$NODE"
	ip -n "$ns" addr add "10.201.$i.2/24" dev b0
	ip -n "$ns" addr add "fd00:201:$i::2/64" dev b0 nodad
	ip -n "$NODE" addr add "10.201.$i.1/24" dev "n$i"
	ip -n "$NODE" addr add "fd00:201:$i::1/64" dev "n$i" nodad
	ip -n "$ns" link set b0 up
	ip -n "$NODE" link set "n$i" up
	# nat: replies go back through the node. dsr: the VIP sits on lo, never answered by ARP.
	ip -n "$ns" route add default via "10.201.$i.1"
	ip -n "$ns" -6 route add default via "fd00:201:$i::1"
	in_ns "$ns" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
	peer_end "$ns" b0
done
SERVER=()
# Not a function: started here so that $! is the server's own pid (killed and restarted below).
for i in 1 2 3; do
	ip netns exec "$P-b$i" python3 "$D/server.py" "b$i" 8080 &
	SERVER[$i]=$!
	PIDS+=($!)
done

ANNOUNCE=(--adapter n0 --arp --arp-refresh 1s)
start_vipd() {
	nsenter --net="/run/netns/$NODE" "$VIPD" --foreground --dataplane xdp "${ANNOUNCE[@]}" \
		--bpf-pin-dir "$PIN" \
		--ipam-range 10.201.0.100-10.201.0.150 --ipam-range fd00:201::100-fd00:201::1ff \
		--state-dir "$WORK/state" >>"$WORK/vipd.log" 2>&1 &
	VIPD_PID=$!
	for _ in $(seq 100); do
		ctl status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "vipd did not start; its log:" >&2
	cat "$WORK/vipd.log" >&2
	exit 1
}

say "starting vipd --dataplane xdp --arp --adapter n0 in the node namespace"
start_vipd
grep -E 'XDP|sysctl' "$WORK/vipd.log" | sed 's/^/  /'

vip_of() { ctl --json lb show "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["vip"])'; }
spread_line() { # JSON -> "b1=.. b2=.. b3=.."
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(" ".join(f"{k}={d[k]}" for k in sorted(d)))' "$1"
}

# TCP checks every 500 ms (down after 2 failures, up after 2 successes) instead of the
# default 5 s, so the health act below runs in seconds.
HC=(--check tcp --interval 500ms --timeout 300ms --fall 2 --rise 2)
say "load balancers through the API (VIPs from --ipam-range)"
ctl lb create web --port 80 --forwarding fullnat "${HC[@]}" >/dev/null
ctl backend add web 10.201.1.2:8080 --weight 1 >/dev/null
ctl backend add web 10.201.2.2:8080 --weight 1 >/dev/null
ctl backend add web 10.201.3.2:8080 --weight 2 >/dev/null
ctl lb create dns --port 53 --protocol udp --forwarding nat >/dev/null
for i in 1 2 3; do ctl backend add dns "10.201.$i.2:8080" >/dev/null; done
ctl lb create web6 --port 80 --vip fd00:201::180 --forwarding fullnat "${HC[@]}" >/dev/null
for i in 1 2 3; do ctl backend add web6 "[fd00:201:$i::2]:8080" >/dev/null; done
ctl lb create direct --port 8080 --forwarding dsr "${HC[@]}" >/dev/null
for i in 1 2 3; do ctl backend add direct "10.201.$i.2:8080" >/dev/null; done
WEB=$(vip_of web)
DNS=$(vip_of dns)
DIRECT=$(vip_of direct)
for i in 1 2 3; do ip -n "$P-b$i" addr add "$DIRECT/32" dev lo; done
ctl lb list

say "the client learned the VIPs from vipd's announcements, before sending anything to them"
sleep 0.3
NODE_MAC=$(ip -n "$NODE" -j link show n0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])')
learned=0
for v in "$WEB" "$DNS" fd00:201::180 "$DIRECT"; do
	mac=$(ip -n "$CLIENT" neigh show "$v" dev c0 | awk '{print $3}')
	echo "  $v -> ${mac:-?} (node n0: $NODE_MAC)"
	[ "$mac" = "$NODE_MAC" ] && learned=$((learned + 1))
done
note "L2 announcing: the client learned $learned of 4 VIPs from gratuitous ARP / NA (node MAC $NODE_MAC)"

say "traffic from the client namespace through the VIPs"
r=$(client spread "$WEB" 80 400)
echo "  web    $WEB:80/tcp fullnat, weights 1:1:2, 400 connections: $(spread_line "$r")"
note "fullnat IPv4 TCP, weights 1:1:2: $(spread_line "$r")"
r=$(client spread "$DNS" 53 300 udp)
echo "  dns    $DNS:53/udp nat, 300 datagrams: $(spread_line "$r")"
note "nat IPv4 UDP: $(spread_line "$r")"
r=$(client spread fd00:201::180 80 300)
echo "  web6   [fd00:201::180]:80/tcp fullnat, 300 connections: $(spread_line "$r")"
note "fullnat IPv6 TCP: $(spread_line "$r")"
r=$(client spread "$DIRECT" 8080 300)
echo "  direct $DIRECT:8080/tcp dsr (replies go straight to the client), 300 connections: $(spread_line "$r")"
note "dsr IPv4 TCP: $(spread_line "$r")"
ctl lb show web

say "drain b3 of web while a connection to b3 stays open"
client hold "$WEB" 80 b3 4 >"$WORK/hold.out" &
HOLD=$!
for _ in $(seq 50); do grep -q holding "$WORK/hold.out" 2>/dev/null && break; sleep 0.1; done
ctl backend drain web 10.201.3.2:8080 >/dev/null
sleep 0.2
r=$(client spread "$WEB" 80 200)
wait "$HOLD" || true
held=$(tail -1 "$WORK/hold.out")
echo "  200 new connections after the drain: $(spread_line "$r")"
echo "  the connection held on b3: $held"
note "after draining b3: new connections $(spread_line "$r"); the open one to b3: $held"
ctl backend undrain web 10.201.3.2:8080 >/dev/null

health_of() { # LB IP -> health of that backend
	ctl --json lb show "$1" | python3 -c '
import json, sys
print(next(b["health"] for b in json.load(sys.stdin)["backends"] if b["ip"] == sys.argv[1]))' "$2"
}
# Polls COMMAND every 10 ms for up to 10 s until it succeeds; prints the milliseconds taken.
ms_until() {
	local t0 i
	t0=$(date +%s%N)
	for i in $(seq 1000); do
		"$@" && break
		sleep 0.01
	done
	echo $((($(date +%s%N) - t0) / 1000000))
}
is_down() { [ "$(health_of web "$1")" = down ]; }
is_up() { [ "$(health_of web "$1")" = up ]; }
vip_on_n0() { ip -n "$NODE" -br addr show n0 | grep -qw "$WEB/32"; }
no_vip_on_n0() { ! vip_on_n0; }
kill_server() { kill "${SERVER[$1]}"; wait "${SERVER[$1]}" 2>/dev/null || true; }
start_server() {
	ip netns exec "$P-b$1" python3 "$D/server.py" "b$1" 8080 &
	SERVER[$1]=$!
	PIDS+=($!)
}

say "health checks: b1's server dies; vipd's TCP check takes it out of web"
kill_server 1
ms=$(ms_until is_down 10.201.1.2)
echo "  b1 down ${ms} ms after its server died (check every 500 ms, 2 failures, 300 ms timeout)"
r=$(client spread "$WEB" 80 200)
echo "  200 new connections: $(spread_line "$r")"
note "health: b1 killed -> down in ${ms} ms; then 200 connections: $(spread_line "$r")"
ctl lb show web | sed -n '/^health:/p;/^announced:/p;/^BACKEND/,$p' | sed 's/^/  /'

say "health checks: every backend of web dies; vipd withdraws web's VIP from the network"
t0=$(date +%s%N)
kill_server 2
kill_server 3
ms=$(ms_until no_vip_on_n0)
total=$((($(date +%s%N) - t0) / 1000000))
echo "  web $WEB: no healthy backend; its address left n0 and the ARP refresh stopped ${total} ms"
echo "  after the last backend died (bound: 2 x 500 ms + 300 ms + 300 ms = 1600 ms)"
ctl lb list | sed 's/^/  /'
note "health: all of web's backends killed -> VIP withdrawn (L2) after ${total} ms (bound 1600 ms)"

say "health checks: the backends come back; web is announced again"
t0=$(date +%s%N)
for i in 1 2 3; do start_server "$i"; done
ms=$(ms_until vip_on_n0)
echo "  web's VIP back on n0 ${ms} ms after the servers were started (their start-up included;"
echo "  2 successful checks 500 ms apart needed)"
for _ in $(seq 100); do is_up 10.201.1.2 && is_up 10.201.3.2 && break; sleep 0.1; done
r=$(client spread "$WEB" 80 200)
echo "  200 connections: $(spread_line "$r")"
note "health: backends back -> VIP re-announced after ${ms} ms; 200 connections: $(spread_line "$r")"

say "kill -9 vipd in the middle of a 4 s transfer, restart it 1 s later"
client stream "$WEB" 80 4 >"$WORK/stream.out" &
STREAM=$!
sleep 1
kill -9 "$VIPD_PID"
wait "$VIPD_PID" 2>/dev/null || true
VIPD_PID=
sleep 1
start_vipd
wait "$STREAM" || true
r=$(cat "$WORK/stream.out")
echo "  transfer: $r"
grep 'XDP plane ready' "$WORK/vipd.log" | tail -1 | sed 's/^/  /'
r2=$(client spread "$WEB" 80 100)
echo "  after the restart, 100 new connections: $(spread_line "$r2")"
note "kill -9 during a transfer: $r; new connections after restart: $(spread_line "$r2")"

say "BGP mode: vipd --bgp hands the VIPs to BIRD on the node, which announces them to a router"
ip netns add "$ROUTER"
ip -n "$ROUTER" link set lo up
ip link add r0 netns "$ROUTER" type veth peer name n9 netns "$NODE"
ip -n "$ROUTER" addr add 10.201.9.2/24 dev r0
ip -n "$NODE" addr add 10.201.9.1/24 dev n9
ip -n "$ROUTER" link set r0 up
ip -n "$NODE" link set n9 up
peer_end "$ROUTER" r0
mkdir -p "$WORK/bird"
# The shipped snippet, pointed at this demo's route directory instead of /run/vipd.
sed "s|/run/vip\[d\]|$WORK/bir[d]|g" "$TOP/bird/vipd.conf" >"$WORK/bird/vipd.conf"
TIMERS="connect delay time 1; connect retry time 1; error wait time 1, 2;"
cat >"$WORK/bird/node.conf" <<EOF
router id 10.201.9.1;
protocol device {}
include "$WORK/bird/vipd.conf";
protocol bgp upstream {
	local 10.201.9.1 as 65001; neighbor 10.201.9.2 as 65000; $TIMERS
	ipv4 { import none; export filter vipd_export; };
}
EOF
cat >"$WORK/bird/router.conf" <<EOF
router id 10.201.9.2;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp node {
	local 10.201.9.2 as 65000; neighbor 10.201.9.1 as 65001; $TIMERS
	ipv4 { import all; export none; };
}
EOF
start_bird() { # NS NAME; started directly so that $! is BIRD's own pid
	ip netns exec "$1" bird -f -c "$WORK/bird/$2.conf" -s "$WORK/bird/$2.ctl" \
		-P "$WORK/bird/$2.pid" >"$WORK/bird/$2.log" 2>&1 &
	BIRD_PIDS+=($!)
}
birdc_router() { ip netns exec "$ROUTER" birdc -s "$WORK/bird/router.ctl" "$@" 2>/dev/null; }
routes() { birdc_router show route protocol node | grep -c '/32' || true; }
start_bird "$NODE" node
start_bird "$ROUTER" router
kill "$VIPD_PID"
wait "$VIPD_PID" 2>/dev/null || true
VIPD_PID=
ANNOUNCE=(--adapter n9 --bgp --bird-socket "$WORK/bird/node.ctl" --bird-routes "$WORK/bird")
start_vipd
echo "  vipd restarted with --bgp --adapter n9 (the router's link): same state, pinned maps"
n=0
for _ in $(seq 100); do
	n=$(routes)
	[ "$n" -ge 3 ] && break
	sleep 0.1
done
echo "  the router learned $n VIP routes over BGP:"
birdc_router show route protocol node | sed -n '3,$s/^/    /p'
r=$(in_ns "$ROUTER" timeout 60 python3 "$D/client.py" spread "$WEB" 80 200)
echo "  200 connections from the router to web $WEB:80 over the BGP route: $(spread_line "$r")"
note "BGP: the router learned $n VIP routes from BIRD; router -> web: $(spread_line "$r")"
route_at_router() { birdc_router show route "$WEB/32" | grep -q "$WEB/32"; }
no_route_at_router() { ! route_at_router; }
t0=$(date +%s%N)
for i in 1 2 3; do kill_server "$i"; done
ms_until no_route_at_router >/dev/null
total=$((($(date +%s%N) - t0) / 1000000))
echo "  every backend killed: web's route $WEB/32 gone from the router ${total} ms after"
echo "  (bound: 2 x 500 ms + 300 ms + 300 ms = 1600 ms); the node dropped out for web"
note "BGP + health: all backends killed -> $WEB/32 withdrawn at the router after ${total} ms (bound 1600 ms)"
t0=$(date +%s%N)
for i in 1 2 3; do start_server "$i"; done
ms_until route_at_router >/dev/null
total=$((($(date +%s%N) - t0) / 1000000))
echo "  backends started again: the route is back ${total} ms later (server start-up included)"
note "BGP + health: backends restarted -> route back at the router after ${total} ms"
ctl lb delete direct >/dev/null
t0=$(date +%s%N)
for _ in $(seq 200); do
	birdc_router show route "$DIRECT/32" | grep -q "$DIRECT/32" || break
	sleep 0.01
done
ms=$((($(date +%s%N) - t0) / 1000000))
echo "  lb delete direct: $DIRECT/32 withdrawn at the router within ${ms} ms"
note "BGP: deleting a load balancer withdrew its route at the router within ${ms} ms"
kill "$VIPD_PID"
wait "$VIPD_PID" 2>/dev/null || true
VIPD_PID=
sleep 0.5
echo "  SIGTERM: vipd withdrew its routes; the router has $(routes) left"
note "BGP: after vipd's SIGTERM the router has $(routes) VIP routes"

say "summary"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
echo "  vipd's log: XDP on $(grep -c 'XDP program attached' "$WORK/vipd.log") interfaces at first start;"
echo "  on exit the program stays attached (vipd --xdp-unload removes it; this demo does)"
echo "  and the VIPs are withdrawn (ARP: addresses removed; BGP: routes withdrawn)."
