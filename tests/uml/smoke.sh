#!/bin/bash
# Proves, inside user-mode-linux, the kernel features vipd's IPVS plane needs, with
# ipvsadm as the tool: ip_vs and every scheduler, namespaces and veth, and real TCP from a
# client namespace through IPVS services to two backend namespaces in masq, droute,
# tunnel and fullnat (masq + SNAT) modes. The director is the guest's init namespace.
# Prints TAP. Run it through the runner (it refuses to run anywhere else: it clears IPVS):
#   tests/uml/uml-run --rw "$PWD" -- tests/uml/smoke.sh
#
# Every process costs ~0.1 s in UML (more for python), so the topology is built with
# `ip -batch`, every service by one `ipvsadm -R`, and one client run visits them all.
#
#   client ns: eth0 10.0.1.2 (+10.0.3.2)        director (root ns)         backend ns 1, 2
#              eth1 10.0.2.2 ---- bridge 10.0.2.1 ---------------------- eth0 10.0.2.11, .12
#   The backends route 10.0.1.0/24 (masq clients) back via the director, not 10.0.3.0/24
#   (fullnat clients). droute and tunnel clients use eth1, on the backends' segment:
#   those answers come from the VIP, which the director would drop as a martian.
set -u -o pipefail

if [[ "$(</proc/cpuinfo)" != *"User Mode Linux"* ]]; then
	echo "smoke.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
case $0 in */*) HERE=${0%/*} ;; *) HERE=. ;; esac
# shellcheck disable=SC1091 # tests/lib/tap.sh
. "$HERE/../lib/tap.sh"

P=uml-				# namespace and link prefix
CLI=${P}cli
PORT=8080
SCHEDS="rr wrr lc wlc sh dh mh"
MASQ=10.0.0.10			# port 8081 + n for the n-th scheduler
DR=10.0.0.20
TUN=10.0.0.40
FNAT=10.0.0.3			# .30 no SNAT, .31-.33 iptables, .34-.35 nftables
IPT=iptables-legacy		# Debian's iptables is iptables-nft: it needs nf_tables ip tables
T=$(mktemp -d)
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	ipvsadm -C 2>/dev/null
	printf '*mangle\nCOMMIT\n*nat\nCOMMIT\n' | ${IPT}-restore 2>/dev/null
	nft delete table inet ${P}fnat 2>/dev/null
	ip -force -b - 2>/dev/null <<-EOF
		netns del $CLI
		netns del ${P}be1
		netns del ${P}be2
		link del ${P}br
	EOF
	rm -rf "$T"
}
trap cleanup EXIT

# A TCP server answering each connection with its name and the peer's address. It also
# sets its namespace's sysctls (one process fewer).
printf '%s\n' >"$T/server.py" \
	'import socket, sys' \
	'name, port, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3]' \
	'for f, v in (("all/arp_ignore", 1), ("all/arp_announce", 2), ("all/rp_filter", 0),' \
	'             ("tunl0/rp_filter", 0)):' \
	'    with open("/proc/sys/net/ipv4/conf/" + f, "w") as sysctl:' \
	'        sysctl.write(str(v))' \
	's = socket.socket()' \
	's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)' \
	's.bind(("0.0.0.0", port))' \
	's.listen(64)' \
	'open(ready, "w").close()' \
	'while True:' \
	'    c, peer = s.accept()' \
	'    c.sendall(f"{name} {peer[0]}\n".encode())' \
	'    c.close()'
# Each argument LABEL,ADDR,PORT,COUNT,TIMEOUT[,SRC]: COUNT connections, one line each:
# "LABEL ANSWER" (the server's name and the address it saw) or "LABEL ERR why".
printf '%s\n' >"$T/client.py" \
	'import socket, sys' \
	'for arg in sys.argv[1:]:' \
	'    label, addr, port, n, timeout, *src = arg.split(",")' \
	'    src = (src[0], 0) if src and src[0] else None' \
	'    for _ in range(int(n)):' \
	'        try:' \
	'            with socket.create_connection((addr, int(port)), float(timeout), src) as c:' \
	'                print(label, c.recv(200).decode().strip() or "ERR empty", flush=True)' \
	'        except OSError as e:' \
	'            print(label, "ERR", e, flush=True)'

# client TARGET...: one client.py run in the client namespace; answers in ANSWERS[]
client() {
	nsenter --net=/run/netns/$CLI python3 -S "$T/client.py" "$@" >"$T/answers" 2>&1
	mapfile -t ANSWERS <"$T/answers"
	printf '#   %s\n' "${ANSWERS[@]}"
}
# reached LABEL NAME SOURCE: a LABEL connection reached NAME, which saw the client as SOURCE
reached() {
	local a
	for a in "${ANSWERS[@]}"; do [ "$a" = "$1 $2 $3" ] && return 0; done
	return 1
}
# answered LABEL: every LABEL connection was answered (and there was at least one)
answered() {
	local a n=0
	for a in "${ANSWERS[@]}"; do
		case $a in
		"$1 ERR"*) return 1 ;;
		"$1 "*) n=$((n + 1)) ;;
		esac
	done
	[ $n -gt 0 ]
}
# refused LABEL: every LABEL connection failed (and there was at least one)
refused() {
	local a n=0
	for a in "${ANSWERS[@]}"; do
		case $a in
		"$1 ERR"*) n=$((n + 1)) ;;
		"$1 "*) return 1 ;;
		esac
	done
	[ $n -gt 0 ]
}
both() { # LABEL SOURCE
	answered "$1" && reached "$1" be1 "$2" && reached "$1" be2 "$2"
}

# --- IPVS itself
check "ip_vs loaded (/proc/net/ip_vs)" test -e /proc/net/ip_vs
for s in net.ipv4.vs.conntrack net.ipv4.vs.expire_nodest_conn net.ipv4.ip_forward; do
	check "sysctl $s exists" test -w "/proc/sys/${s//.//}"
done
check "ipvsadm talks to the kernel (ipvsadm -Ln)" eval 'ipvsadm -Ln >/dev/null'

# --- topology
topology() {
	echo 1 >/proc/sys/net/ipv4/ip_forward &&
	ip -b - <<-EOF &&
		netns add $CLI
		netns add ${P}be1
		netns add ${P}be2
		link add ${P}cli type veth peer name eth0 netns $CLI
		addr add 10.0.1.1/24 dev ${P}cli
		addr add 10.0.3.1/24 dev ${P}cli
		link set ${P}cli up
		link add ${P}br type bridge
		addr add 10.0.2.1/24 dev ${P}br
		link set ${P}br up
		link add ${P}cli2 type veth peer name eth1 netns $CLI
		link set ${P}cli2 master ${P}br up
		link add ${P}be1 type veth peer name eth0 netns ${P}be1
		link set ${P}be1 master ${P}br up
		link add ${P}be2 type veth peer name eth0 netns ${P}be2
		link set ${P}be2 master ${P}br up
		addr add $MASQ/32 dev lo
		addr add $DR/32 dev lo
		addr add $TUN/32 dev lo
		addr add ${FNAT}0/32 dev lo
		addr add ${FNAT}1/32 dev lo
		addr add ${FNAT}2/32 dev lo
		addr add ${FNAT}3/32 dev lo
		addr add ${FNAT}4/32 dev lo
		addr add ${FNAT}5/32 dev lo
	EOF
	ip -n $CLI -b - <<-EOF &&
		link set lo up
		addr add 10.0.1.2/24 dev eth0
		addr add 10.0.3.2/24 dev eth0
		link set eth0 up
		route add default via 10.0.1.1
		addr add 10.0.2.2/24 dev eth1
		link set eth1 up
		route add $DR via 10.0.2.1 dev eth1
		route add $TUN via 10.0.2.1 dev eth1
	EOF
	backend 1 && backend 2
}
# backend I: its address, the droute and tunnel VIPs on lo, a route back to 10.0.1.0/24
backend() {
	ip -n "${P}be$1" -b - <<-EOF
		link set lo up
		addr add 10.0.2.1$1/24 dev eth0
		link set eth0 up
		route add 10.0.1.0/24 via 10.0.2.1
		addr add $DR/32 dev lo
		addr add $TUN/32 dev lo
		link set tunl0 up
	EOF
}
servers() {
	local i
	for i in 1 2; do
		nsenter --net=/run/netns/${P}be$i python3 -S "$T/server.py" be$i $PORT "$T/ready$i" &
		PIDS+=($!)
	done
	mkfifo "$T/tick"	# read -t on it: a sleep without a process
	for ((i = 0; i < 100; i++)); do
		[ -e "$T/ready1" ] && [ -e "$T/ready2" ] && return 0
		read -rt 0.1 <>"$T/tick"
	done
	return 1
}
check "namespaces, veth and a bridge: client ns, 2 backend ns, director in the root ns" \
	topology
check "backends' TCP servers listening (arp_ignore/announce set, tunl0 up)" servers

# --- services: one per scheduler (masq), droute, tunnel, fullnat variants (masq)
services() {
	local n=0 s v
	for s in $SCHEDS; do
		n=$((n + 1))
		echo "-A -t $MASQ:$((PORT + n)) -s $s"
		echo "-a -t $MASQ:$((PORT + n)) -r 10.0.2.11:$PORT -m -w 1"
		echo "-a -t $MASQ:$((PORT + n)) -r 10.0.2.12:$PORT -m -w 2"
	done
	for v in "$DR -g" "$TUN -i" "${FNAT}0 -m" "${FNAT}1 -m" "${FNAT}2 -m" "${FNAT}3 -m" \
		"${FNAT}4 -m" "${FNAT}5 -m"; do
		echo "-A -t ${v% *}:$PORT -s rr"
		echo "-a -t ${v% *}:$PORT -r 10.0.2.11:$PORT ${v#* }"
		echo "-a -t ${v% *}:$PORT -r 10.0.2.12:$PORT ${v#* }"
	done
}
check "every service created by one ipvsadm -R" eval 'services | ipvsadm -R'
ipvsadm -Ln >"$T/ln"
# readback SCHED PORT: ipvsadm -Ln shows the service with its scheduler and 2 Masq reals
readback() {
	local f in=0 reals=0
	while read -ra f; do
		case "${f[*]}" in
		"TCP $MASQ:$2 $1"*) in=1 ;;
		TCP* | UDP*) in=0 ;;
		"-> 10.0.2.1"[12]":$PORT Masq "[12]" "*) [ $in = 1 ] && reals=$((reals + 1)) ;;
		esac
	done <"$T/ln"
	[ $reals = 2 ]
}
n=0
for s in $SCHEDS; do
	n=$((n + 1))
	check "scheduler $s: service and 2 destinations read back by ipvsadm -Ln" \
		readback "$s" $((PORT + n))
done

# --- fullnat: masq + SNAT, so the backends (no route to 10.0.3.0/24) answer the director.
# IPVS must keep conntrack for NAT to see its packets.
echo 1 >/proc/sys/net/ipv4/vs/conntrack
FNAT_RULES=()		# "NAME|VIP|ok, or why the rules did not load"
IPT_NAMES=("iptables: MARK in mangle PREROUTING, MASQUERADE on the mark|${FNAT}1"
	"iptables: -m ipvs --vaddr VIP --vport PORT, SNAT --to-source|${FNAT}2"
	"iptables: -m conntrack --ctorigdst VIP --ctorigdstport PORT, MASQUERADE|${FNAT}3")
IPT_RULES="*mangle
-A PREROUTING -d ${FNAT}1/32 -p tcp --dport $PORT -j MARK --set-xmark 0x4000/0x4000
COMMIT
*nat
-A POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE
-A POSTROUTING -m ipvs --vaddr ${FNAT}2/32 --vport $PORT -j SNAT --to-source 10.0.2.1
-A POSTROUTING -m conntrack --ctorigdst ${FNAT}3 --ctorigdstport $PORT -j MASQUERADE
COMMIT"
if ! command -v $IPT >/dev/null; then
	echo "# $IPT not installed (Debian iptables): no xtables fullnat variants"
elif err=$(${IPT}-restore -n <<<"$IPT_RULES" 2>&1); then
	for r in "${IPT_NAMES[@]}"; do FNAT_RULES+=("$r|ok"); done
else
	for r in "${IPT_NAMES[@]}"; do FNAT_RULES+=("$r|${err%%$'\n'*}"); done
fi
# vipd's own way: an inet table, through nftables
NFT="table inet ${P}fnat {
	chain pre {
		type filter hook prerouting priority mangle;
		ip daddr ${FNAT}4 tcp dport $PORT meta mark set mark or 0x8000
	}
	chain post {
		type nat hook postrouting priority srcnat;
		meta mark & 0x8000 == 0x8000 masquerade
		ct original ip daddr ${FNAT}5 meta l4proto tcp ct original proto-dst $PORT snat ip to 10.0.2.1
	}
}"
if err=$(nft -f - <<<"$NFT" 2>&1); then
	FNAT_RULES+=("nft inet: mark in prerouting (mangle), masquerade on the mark|${FNAT}4|ok")
	FNAT_RULES+=("nft inet: ct original ip daddr VIP + proto-dst PORT, snat ip to|${FNAT}5|ok")
else
	echo "# nft: an inet table with nat chains does not load in this kernel:"
	echo "#   ${err%%$'\n'*}"
	echo "# (Debian's UML kernel has CONFIG_NF_TABLES_INET/IPV4/IPV6 and NFT_NAT unset)"
fi

# --- one client run through every service
targets=("direct,10.0.2.11,$PORT,1,2")
n=0
for s in $SCHEDS; do
	n=$((n + 1))
	targets+=("masq-$s,$MASQ,$((PORT + n)),$([ "$s" = rr ] && echo 4 || echo 2),2")
done
targets+=("droute,$DR,$PORT,4,2" "tunnel,$TUN,$PORT,4,2" "fnat-none,${FNAT}0,$PORT,1,1,10.0.3.2")
for r in "${FNAT_RULES[@]}"; do
	IFS='|' read -r name vip how <<<"$r"
	[ "$how" = ok ] && targets+=("fnat-$vip,$vip,$PORT,4,2,10.0.3.2")
done
client "${targets[@]}"

check "direct TCP from the client ns to backend 1" reached direct be1 10.0.2.2
check "masq (rr): TCP through the VIP reaches both backends, which see the client" \
	both masq-rr 10.0.1.2
for s in $SCHEDS; do
	[ "$s" = rr ] && continue
	check "masq with scheduler $s: connections through the VIP are answered" answered "masq-$s"
done
check "droute: TCP through the VIP reaches both backends, which answer the client directly" \
	both droute 10.0.2.2
check "tunnel (ipip): TCP through the VIP reaches both backends" both tunnel 10.0.2.2
check "fullnat control: without SNAT the backends cannot answer" refused fnat-none
vip=
for r in "${FNAT_RULES[@]}"; do
	IFS='|' read -r name v how <<<"$r"
	if [ "$how" != ok ]; then
		not_ok "fullnat with $name: rules load"
		echo "#   $how"
		continue
	fi
	desc="fullnat with $name: both backends reached, seeing the director's address"
	if both "fnat-$v" 10.0.2.1; then
		ok "$desc"
		[ -z "$vip" ] && vip=$v
	else
		not_ok "$desc"
	fi
done

# a working variant again, without IPVS conntrack: IPVS then marks its packets untracked,
# so no NAT rule ever sees them
if [ -n "$vip" ]; then
	echo 0 >/proc/sys/net/ipv4/vs/conntrack
	client "fnat-nonfct,$vip,$PORT,1,1,10.0.3.2"
	check "fullnat needs net.ipv4.vs.conntrack=1 (with 0, SNAT is not applied)" \
		refused fnat-nonfct
else
	not_ok "fullnat needs net.ipv4.vs.conntrack=1: no fullnat variant worked to try it"
fi
tap_done
