#!/bin/bash
# vipd's IPVS plane (src/dataplane/ipvs.c) against a real IPVS, with ipvsadm as the
# independent reader: every scheduler, masq/droute/tunnel, weights, persistence, IPv4 and
# IPv6; a second sync sends nothing; drift is repaired; foreign services (made with
# ipvsadm) survive every sync and the cleanup; drain and health-down are weight 0; counters
# match `ipvsadm -Ln --stats`; and a benchmark of 1,000 services x 10 destinations.
# fullnat (masq + nftables SNAT) needs a kernel with nftables NAT, which Debian's UML kernel
# lacks: vipd_fullnat.sh covers it in a kernel from build-kernel.
# Prints TAP. Run it through the runner (it refuses to run anywhere else: it changes IPVS):
#   tests/uml/uml-run --rw "$PWD" -- tests/uml/ipvs.sh
# BUILDDIR (default build/plain) holds tests/unit/ipvs_driver.
set -u -o pipefail

if ! grep -q 'User Mode Linux' /proc/cpuinfo 2>/dev/null; then
	echo "ipvs.sh: not inside user-mode-linux; run it with tests/uml/uml-run" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../lib/tap.sh
. "$HERE/../lib/tap.sh"
BUILDDIR=${BUILDDIR:-$HERE/../../build/plain}
DRIVER=$BUILDDIR/tests/unit/ipvs_driver
T=$(mktemp -d)
STATE=$T/state
DUMMY=ipvst0

cleanup() {
	ipvsadm -C 2>/dev/null
	ip link del $DUMMY 2>/dev/null
	ip netns del ipvst-base 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

if [ ! -x "$DRIVER" ]; then
	not_ok "ipvs_driver built ($DRIVER)"
	tap_done
	exit 1
fi

# drv ARGS...: one driver process; stdout in $T/out (echoed as comments), stderr in $T/err
drv() {
	local rc
	"$DRIVER" --state-dir "$STATE" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	sed 's/^/#   /' "$T/out"
	[ $rc = 0 ] || grep -v 'level=info' "$T/err" | sed 's/^/#   stderr: /'
	return $rc
}
# syncs: the message counts of the last run's syncs ("41 0"); a failed sync shows as "rc=N"
syncs() {
	sed -n 's/^sync rc=0 messages=\([0-9]*\).*/\1/p; s/^sync \(rc=-[0-9]*\).*/\1/p' "$T/out" |
		tr '\n' ' ' | sed 's/ $//'
}
# expect_syncs WANT ARGS...: a driver run whose syncs sent exactly WANT messages
expect_syncs() {
	local want=$1
	shift
	drv "$@"
	[ "$(syncs)" = "$want" ] || { echo "#   sent: $(syncs), want: $want"; return 1; }
}
# state: what ipvsadm holds, one rule a line, sorted (ipvsadm -Sn)
state() { ipvsadm -Sn | sort; }
# same_state FILE: ipvsadm holds exactly FILE's rules (the foreign ones included)
same_state() {
	# no /dev/fd in the guest: no process substitution
	sort "$1" >"$T/want.state"
	state >"$T/have.state"
	if ! diff "$T/want.state" "$T/have.state" >"$T/diff"; then
		sed 's/^/#   /' "$T/diff"
		return 1
	fi
}
# norm: ipvsadm's table with blanks squeezed and trimmed
norm() { tr -s ' ' | sed 's/^ //; s/ $//'; }
# listed PATTERN [ARGS]: a line of `ipvsadm -Ln ARGS` (normalized) matches PATTERN (grep -x)
listed() {
	local p=$1
	shift
	ipvsadm -Ln "$@" | norm | grep -qx -- "$p"
}

# --- foreign services: made by hand, never vipd's
cat >"$T/foreign" <<-EOF
	-A -t 10.9.9.9:80 -s rr
	-a -t 10.9.9.9:80 -r 10.9.9.10:80 -m -w 3
	-A -u [2001:db8::9]:53 -s dh
	-A -f 7 -s rr
	-A -t 10.1.0.99:80 -s wlc
EOF
check "foreign services made with ipvsadm -R (TCP, UDP over IPv6, fwmark, and one on a \
VIP vipd wants)" ipvsadm -R <"$T/foreign"

# --- config A: every scheduler, every forwarding method, persistence, IPv6, skipped backends
b2() { # two backends on PORT with weights W1 W2
	echo "[{\"ip\": \"10.2.0.1\", \"port\": $1, \"weight\": $2},
	       {\"ip\": \"10.2.0.2\", \"port\": $1, \"weight\": $3}]"
}
lb() { # NAME VIP PORT PROTO SCHED FWD BACKENDS [EXTRA]
	echo "{\"name\": \"$1\", \"vip\": \"$2\", \"port\": $3, \"protocol\": \"$4\",
	       \"scheduler\": \"$5\", \"forwarding\": \"$6\", \"backends\": $7 ${8:+, $8}}"
}
config_a() {
	local n=0 s
	echo '{"loadbalancers": ['
	for s in mh rr wrr lc wlc sh dh; do
		n=$((n + 1))
		lb s-$s 10.1.0.$n 80 tcp $s nat "$(b2 8080 1 2)"
		echo ,
	done
	lb dsr 10.1.0.10 80 tcp rr dsr "$(b2 80 1 3)"
	echo ,
	lb tun 10.1.0.11 80 tcp rr tunnel "$(b2 80 1 1)"
	echo ,
	lb fnat 10.1.0.12 80 tcp rr nat '[{"ip": "10.2.0.1", "port": 8080},
		{"ip": "10.2.0.2", "port": 8080}, {"ip": "10.2.0.3", "port": 8080, "type": "LOCAL"},
		{"ip": "10.2.0.4", "port": 8080, "state": "drained"}]'
	echo ,
	lb udp 10.1.0.13 53 udp rr nat "$(b2 53 1 1)" '"persistence": "5m"'
	echo ,
	lb v6 2001:db8::1 443 tcp wrr nat '[{"ip": "fd00::1", "port": 8443, "weight": 5},
		{"ip": "fd00::2", "port": 8443}]' '"persistence": "2s"'
	echo ,
	lb v6dsr 2001:db8::2 80 tcp sh dsr '[{"ip": "fd00::1", "port": 80}]'
	echo ,
	lb conflict 10.1.0.99 80 tcp rr nat '[{"ip": "10.2.0.1", "port": 8080}]'
	echo ,
	lb dsrport 10.1.0.14 80 tcp rr dsr '[{"ip": "10.2.0.5", "port": 8080}]'
	echo ']}'
}
config_a >"$T/a.json"
# mh hashes flows (mh-port) and both hashing schedulers skip a weight-0 backend (fallback)
sched_flags() {
	case $1 in
	mh) echo " -b mh-fallback,mh-port" ;;
	sh) echo " -b sh-fallback" ;;
	esac
}
ln_flags() { # as ipvsadm -Ln shows them
	case $1 in
	mh) echo " (mh-fallback,mh-port)" ;;
	sh) echo " (sh-fallback)" ;;
	esac
}
# What ipvsadm should hold after A: 14 services and 27 destinations of vipd's, the foreign.
expect_a() {
	local n=0 s
	for s in mh rr wrr lc wlc sh dh; do
		n=$((n + 1))
		echo "-A -t 10.1.0.$n:80 -s $s$(sched_flags $s)"
		echo "-a -t 10.1.0.$n:80 -r 10.2.0.1:8080 -m -w 1"
		echo "-a -t 10.1.0.$n:80 -r 10.2.0.2:8080 -m -w 2"
	done
	cat <<-EOF
		-A -t 10.1.0.10:80 -s rr
		-a -t 10.1.0.10:80 -r 10.2.0.1:80 -g -w 1
		-a -t 10.1.0.10:80 -r 10.2.0.2:80 -g -w 3
		-A -t 10.1.0.11:80 -s rr
		-a -t 10.1.0.11:80 -r 10.2.0.1:80 -i -w 1 --tun-type ipip
		-a -t 10.1.0.11:80 -r 10.2.0.2:80 -i -w 1 --tun-type ipip
		-A -t 10.1.0.12:80 -s rr
		-a -t 10.1.0.12:80 -r 10.2.0.1:8080 -m -w 1
		-a -t 10.1.0.12:80 -r 10.2.0.2:8080 -m -w 1
		-a -t 10.1.0.12:80 -r 10.2.0.4:8080 -m -w 0
		-A -u 10.1.0.13:53 -s rr -p 300
		-a -u 10.1.0.13:53 -r 10.2.0.1:53 -m -w 1
		-a -u 10.1.0.13:53 -r 10.2.0.2:53 -m -w 1
		-A -t [2001:db8::1]:443 -s wrr -p 2
		-a -t [2001:db8::1]:443 -r [fd00::1]:8443 -m -w 5
		-a -t [2001:db8::1]:443 -r [fd00::2]:8443 -m -w 1
		-A -t [2001:db8::2]:80 -s sh -b sh-fallback
		-a -t [2001:db8::2]:80 -r [fd00::1]:80 -g -w 1
		-A -t 10.1.0.14:80 -s rr
		-a -t 10.1.0.14:80 -r 10.2.0.5:8080 -g -w 1
	EOF
	cat "$T/foreign"
}
expect_a >"$T/a.state"

# --- from empty, then again in the same process and in a new one
check "sync A from empty: 41 messages (14 services, 27 destinations), then 0 in the same \
process" expect_syncs "41 0" load "$T/a.json" sync sync
check "ipvsadm -Sn holds exactly A's services and destinations and the foreign ones" \
	same_state "$T/a.state"
check "the service on the foreign VIP is reported as a conflict (once) and left alone" \
	eval "[ \$(grep -c 'did not create.*service=tcp/10.1.0.99:80' '$T/err') = 1 ]"
check "ownership file lists vipd's 14 services, not the foreign ones" \
	eval '[ "$(grep -vc "^#" "$STATE/ipvs-services")" = 14 ] &&
	      ! grep -q "10.9.9.9\|10.1.0.99\|2001:db8::9" "$STATE/ipvs-services"'
for s in conntrack expire_nodest_conn; do
	check "sysctl net.ipv4.vs.$s = 1" grep -qx 1 /proc/sys/net/ipv4/vs/$s
done
check "sysctl net.ipv4.ip_forward = 1" grep -qx 1 /proc/sys/net/ipv4/ip_forward
check "sysctl net.ipv6.conf.all.forwarding = 1" grep -qx 1 /proc/sys/net/ipv6/conf/all/forwarding
n=0
for s in mh rr wrr lc wlc sh dh; do
	n=$((n + 1))
	check "ipvsadm -Ln: scheduler $s on 10.1.0.$n:80 with 2 Masq destinations" \
		eval "listed 'TCP 10.1.0.$n:80 $s$(ln_flags $s)' &&
		      [ \$(state | grep -c '^-a -t 10.1.0.$n:80 .* -m ') = 2 ]"
done
check "ipvsadm -Ln: dsr is Route" listed '-> 10.2.0.2:80 Route 3 0 0'
check "ipvsadm -Ln: tunnel is Tunnel (ipip)" listed '-> 10.2.0.1:80 Tunnel 1 0 0'
check "ipvsadm -Ln: nat is Masq; the drained backend has weight 0; LOCAL is left out" \
	eval "listed '-> 10.2.0.4:8080 Masq 0 0 0' && ! ipvsadm -Ln | grep -q 10.2.0.3:"
check "ipvsadm -Ln: UDP with persistence 5m = persistent 300" \
	listed 'UDP 10.1.0.13:53 rr persistent 300'
check "ipvsadm -Ln: IPv6 service with persistence 2s" \
	listed 'TCP \[2001:db8::1\]:443 wrr persistent 2'
check "ipvsadm -Ln: IPv6 destinations" listed '-> \[fd00::1\]:8443 Masq 5 0 0'
check "a new process (restart) reads its ownership file and sends nothing" \
	expect_syncs "0" load "$T/a.json" sync

# --- the foreign service on a wanted VIP goes away: vipd takes the address over
ipvsadm -D -t 10.1.0.99:80
check "the conflicting foreign service deleted by hand: vipd creates its own (2 messages)" \
	expect_syncs "2 0" load "$T/a.json" sync sync
check "ipvsadm -Ln: 10.1.0.99:80 is now vipd's rr service" \
	eval "listed 'TCP 10.1.0.99:80 rr' && listed '-> 10.2.0.1:8080 Masq 1 0 0' -t 10.1.0.99:80"
grep -v '10.1.0.99' "$T/a.state" >"$T/a2.state"
printf '%s\n' "-A -t 10.1.0.99:80 -s rr" "-a -t 10.1.0.99:80 -r 10.2.0.1:8080 -m -w 1" \
	>>"$T/a2.state"
grep -v '10.1.0.99' "$T/foreign" >"$T/foreign2"

# --- drift made by hand on vipd's services is repaired, and only that
ipvsadm -d -t 10.1.0.1:80 -r 10.2.0.1:8080
ipvsadm -e -t 10.1.0.2:80 -r 10.2.0.1:8080 -m -w 9
ipvsadm -D -t 10.1.0.3:80
ipvsadm -E -t 10.1.0.4:80 -s rr
ipvsadm -a -t 10.1.0.5:80 -r 10.2.0.9:8080 -m
check "drift repaired with 7 messages (a dest re-added, a weight reset, a service and its 2 \
dests re-made, a scheduler reset, a stray dest removed)" expect_syncs "7" load "$T/a.json" sync
check "ipvsadm -Sn holds exactly A again" same_state "$T/a2.state"

# --- drain and health: weight 0 (IPVS keeps the connections), one message each way
check "drain one backend: 1 message" expect_syncs "1" load "$T/a.json" drain 0 1 sync
check "ipvsadm -Ln: the drained backend has weight 0" \
	eval "listed '-> 10.2.0.2:8080 Masq 0 0 0' -t 10.1.0.1:80"
check "undrained (the model again): 1 message, weight 2 back" \
	eval "expect_syncs 1 load '$T/a.json' sync &&
	      listed '-> 10.2.0.2:8080 Masq 2 0 0' -t 10.1.0.1:80"
check "a backend whose health check fails: 1 message, weight 0; up again: 1 message" \
	eval "expect_syncs '1' load '$T/a.json' down 1 0 sync &&
	      listed '-> 10.2.0.1:8080 Masq 0 0 0' -t 10.1.0.2:80 &&
	      expect_syncs '1' load '$T/a.json' down 1 0 up 1 0 sync"
check "one weight changed in the model: exactly 1 message" \
	expect_syncs "0 1" load "$T/a.json" sync weight 13 0 4 sync
check "ipvsadm -Ln: that weight is 4" \
	eval "listed '-> 10.2.0.1:8080 Masq 4 0 0' -t 10.1.0.99:80"
check "back to A: 1 message" expect_syncs "1" load "$T/a.json" sync

# --- config B: edits of every kind
config_b() {
	echo '{"loadbalancers": ['
	lb s-mh 10.1.0.1 80 tcp wlc nat "$(b2 8080 1 2)"; echo ,        # scheduler changed
	lb s-rr 10.1.0.2 80 tcp rr nat "$(b2 8080 1 5)"; echo ,         # a weight changed
	lb s-wrr 10.1.0.3 80 tcp wrr nat '[{"ip": "10.2.0.1", "port": 8080}]'; echo , # dest gone
	lb s-lc 10.1.0.4 80 tcp lc nat '[{"ip": "10.2.0.1", "port": 8080},
		{"ip": "10.2.0.2", "port": 8080, "weight": 2}, {"ip": "10.2.0.3", "port": 8080}]'
	echo ,                                                          # a dest added
	lb s-sh 10.1.0.6 80 tcp sh nat "$(b2 8080 1 2)" '"persistence": "60s"'; echo ,
	lb s-dh 10.1.0.7 80 tcp dh dsr "$(b2 8080 1 2)"; echo ,         # nat -> dsr
	lb dsr 10.1.0.10 80 tcp rr dsr "$(b2 80 1 3)"; echo ,
	lb tun 10.1.0.11 80 tcp rr tunnel "$(b2 80 1 1)"; echo ,
	lb fnat 10.1.0.12 80 tcp rr nat '[{"ip": "10.2.0.1", "port": 8080},
		{"ip": "10.2.0.2", "port": 8080}, {"ip": "10.2.0.3", "port": 8080, "type": "LOCAL"},
		{"ip": "10.2.0.4", "port": 8080, "state": "drained"}]'; echo ,
	lb udp 10.1.0.13 53 udp rr nat "$(b2 53 1 1)"; echo ,          # persistence off
	lb v6 2001:db8::1 444 tcp wrr nat '[{"ip": "fd00::1", "port": 8443, "weight": 5},
		{"ip": "fd00::2", "port": 8443}]' '"persistence": "2s"'; echo , # port changed
	lb v6dsr 2001:db8::2 80 tcp sh dsr '[{"ip": "fd00::1", "port": 80}]'; echo ,
	lb conflict 10.1.0.99 80 tcp rr nat '[{"ip": "10.2.0.1", "port": 8080}]'; echo ,
	lb dsrport 10.1.0.14 80 tcp rr dsr '[{"ip": "10.2.0.5", "port": 8080}]'; echo ,
	lb new 10.1.0.20 80 tcp rr nat '[{"ip": "10.2.0.7", "port": 8080}]'      # s-wlc removed
	echo ']}'
}
config_b >"$T/b.json"
{
	grep -v -e ' 10.1.0.[1-7]:80 ' -e '10.1.0.13:53' -e '2001:db8::1\]' "$T/a2.state"
	cat <<-EOF
		-A -t 10.1.0.1:80 -s wlc
		-a -t 10.1.0.1:80 -r 10.2.0.1:8080 -m -w 1
		-a -t 10.1.0.1:80 -r 10.2.0.2:8080 -m -w 2
		-A -t 10.1.0.2:80 -s rr
		-a -t 10.1.0.2:80 -r 10.2.0.1:8080 -m -w 1
		-a -t 10.1.0.2:80 -r 10.2.0.2:8080 -m -w 5
		-A -t 10.1.0.3:80 -s wrr
		-a -t 10.1.0.3:80 -r 10.2.0.1:8080 -m -w 1
		-A -t 10.1.0.4:80 -s lc
		-a -t 10.1.0.4:80 -r 10.2.0.1:8080 -m -w 1
		-a -t 10.1.0.4:80 -r 10.2.0.2:8080 -m -w 2
		-a -t 10.1.0.4:80 -r 10.2.0.3:8080 -m -w 1
		-A -t 10.1.0.6:80 -s sh -p 60 -b sh-fallback
		-a -t 10.1.0.6:80 -r 10.2.0.1:8080 -m -w 1
		-a -t 10.1.0.6:80 -r 10.2.0.2:8080 -m -w 2
		-A -t 10.1.0.7:80 -s dh
		-a -t 10.1.0.7:80 -r 10.2.0.1:8080 -g -w 1
		-a -t 10.1.0.7:80 -r 10.2.0.2:8080 -g -w 2
		-A -u 10.1.0.13:53 -s rr
		-a -u 10.1.0.13:53 -r 10.2.0.1:53 -m -w 1
		-a -u 10.1.0.13:53 -r 10.2.0.2:53 -m -w 1
		-A -t [2001:db8::1]:444 -s wrr -p 2
		-a -t [2001:db8::1]:444 -r [fd00::1]:8443 -m -w 5
		-a -t [2001:db8::1]:444 -r [fd00::2]:8443 -m -w 1
		-A -t 10.1.0.20:80 -s rr
		-a -t 10.1.0.20:80 -r 10.2.0.7:8080 -m -w 1
	EOF
} >"$T/b.state"
check "edit to B: 15 messages (2 SET_SERVICE scheduler/persistence, 1 SET persistence off, \
1 SET_DEST weight, 2 SET_DEST nat->dsr, 1 DEL_DEST, 1 NEW_DEST, 1 DEL_SERVICE, a service \
moved to another port = DEL + NEW + 2 NEW_DEST, a new service + 1 dest)" \
	expect_syncs "15 0" load "$T/b.json" sync sync
check "ipvsadm -Sn holds exactly B (and the foreign services)" same_state "$T/b.state"

# --- counters: connections from this node to two VIPs (IPVS schedules local clients too);
# the backends sit behind a dummy link that drops everything, so each stays a SYN
ip link add $DUMMY type dummy && ip addr add 10.0.0.1/8 dev $DUMMY && ip link set $DUMMY up
for _ in 1 2 3; do
	timeout 1 bash -c 'exec 3<>/dev/tcp/10.1.0.2/80' 2>/dev/null
done
timeout 1 bash -c 'exec 3<>/dev/tcp/10.1.0.1/80' 2>/dev/null
# This kernel adds the per-CPU counters into the totals every 2 s (estimation timer), so a
# fixed wait can fall short: poll (up to 10 s) until the totals hold the 4 connections, then
# snapshot ipvsadm's view, let the driver read its own, and snapshot again; a fold between
# the two (late packets) shows as a difference, and the three are taken again.
stats_in=0
for _ in $(seq 50); do
	ipvsadm -Ln --stats --exact | norm >"$T/stats"
	if grep -qx 'TCP 10.1.0.2:80 3 [0-9]* 0 [0-9]* 0' "$T/stats" &&
		grep -qx 'TCP 10.1.0.1:80 1 [0-9]* 0 [0-9]* 0' "$T/stats"; then
		ipvsadm -Ln | norm >"$T/ln"
		drv load "$T/b.json" stats
		ipvsadm -Ln --stats --exact | norm >"$T/stats2"
		ipvsadm -Ln | norm >"$T/ln2"
		if cmp -s "$T/stats" "$T/stats2" && cmp -s "$T/ln" "$T/ln2"; then
			stats_in=1
			break
		fi
	fi
	sleep 0.2
done
echo "#   counters folded into the totals: $stats_in"
sed 's/^/#   /' "$T/stats"
# dest_line FILE SERVICE ADDR:PORT: the line of that destination under SERVICE in FILE
dest_line() {
	awk -v s="$2" -v e="-> $3" '/^(TCP|UDP|FWM) / { in_s = (index($0, s " ") == 1) }
		in_s && index($0, e " ") == 1 { print; exit }' "$1"
}
# stats_match LB SERVICE [ADDR:PORT]: the driver's packets, bytes and connections for the
# load balancer (or one backend) equal ipvsadm's (in + out), and active its ActiveConn
stats_match() {
	local lb=$1 svc=$2 ep=${3:-} line mine c ip op ib ob act
	if [ -n "$ep" ]; then
		line=$(dest_line "$T/stats" "$svc" "$ep")
		act=$(dest_line "$T/ln" "$svc" "$ep" | cut -d' ' -f5)
		mine=$(grep "^stats lb=$lb backend=$ep rc=0 " "$T/out")
	else
		line=$(grep "^$svc " "$T/stats")
		act=$(awk -v s="$svc" '/^(TCP|UDP|FWM) / { in_s = (index($0, s " ") == 1) }
			in_s && /^->/ { n += $5 } END { print n + 0 }' "$T/ln")
		mine=$(grep "^stats lb=$lb rc=0 " "$T/out")
	fi
	[ -n "$line" ] && [ -n "$mine" ] && [ -n "$act" ] || return 1
	read -r _ _ c ip op ib ob <<<"$line"
	echo "#   ipvsadm: conns=$c packets=$((ip + op)) bytes=$((ib + ob)) active=$act"
	[[ "$mine" == *" packets=$((ip + op)) bytes=$((ib + ob)) conns=$c active=$act" ]]
}
check "IPVS counted the connections (ipvsadm --stats: 3 on 10.1.0.2:80)" \
	grep -qx 'TCP 10.1.0.2:80 3 [0-9]* 0 [0-9]* 0' "$T/stats"
check "lb_stats equals ipvsadm -Ln --stats for 10.1.0.2:80 and 10.1.0.1:80" \
	eval "stats_match s-rr 'TCP 10.1.0.2:80' && stats_match s-mh 'TCP 10.1.0.1:80'"
check "backend_stats equals ipvsadm -Ln --stats for each destination of 10.1.0.2:80" \
	eval "stats_match s-rr 'TCP 10.1.0.2:80' 10.2.0.1:8080 &&
	      stats_match s-rr 'TCP 10.1.0.2:80' 10.2.0.2:8080"
check "no counters for a LOCAL backend IPVS does not have (rc=-ENOENT)" \
	grep -q '^stats lb=fnat backend=10.2.0.3:8080 rc=-2 ' "$T/out"
ip link del $DUMMY

# --- cleanup: kept with cleanup_on_exit off; then exactly vipd's services go
check "cleanup with cleanup_on_exit off sends nothing and keeps every service" \
	eval "drv --keep cleanup && grep -qx 'cleanup messages=0 ms=.*' '$T/out' &&
	      same_state '$T/b.state'"
check "cleanup removes vipd's 15 services (15 messages)" \
	eval "drv cleanup && grep -q '^cleanup messages=15 ' '$T/out'"
check "after cleanup ipvsadm -Sn holds exactly the foreign services" same_state "$T/foreign2"
check "the ownership file lists nothing" eval '! grep -v "^#" "$STATE/ipvs-services"'

# --- benchmark: 1,000 services x 10 destinations from empty, then one weight change.
# Baseline in the same run, afterwards and in a namespace of its own (IPVS keeps deleted
# destinations in a per-namespace trash list that every new destination is checked against):
# ipvsadm -R loading the same rules.
check "bench: 1000 x 10 from empty sends 11000 messages, a second sync 0, one weight change 1" \
	expect_syncs "11000 0 1" gen 1000 10 sync sync weight 500 3 7 sync
read -r full_ms idle_ms one_ms <<<"$(sed -n 's/^sync .* ms=\([0-9.]*\) .*/\1/p' "$T/out" | tr '\n' ' ')"
check "bench: ipvsadm -Ln shows 1000 services and 10000 destinations of vipd's" \
	eval "[ \$(ipvsadm -Ln | grep -c '^TCP  10\.100\.') = 1000 ] &&
	      [ \$(ipvsadm -Sn | grep -c '^-a -t 10\.100\..* -r 10\.200\.') = 10000 ]"
check "bench: the changed weight reads back (10.100.1.245:80 -> 10.200.19.140:8080 weight 7)" \
	listed '-> 10.200.19.140:8080 Masq 7 0 0' -t 10.100.1.245:80
check "bench: cleanup removes the 1000 services (1000 messages) and leaves the foreign ones" \
	eval "drv cleanup && grep -q '^cleanup messages=1000 ' '$T/out' && same_state '$T/foreign2'"
clean_ms=$(sed -n 's/^cleanup .* ms=\([0-9.]*\)$/\1/p' "$T/out")
awk 'BEGIN { for (i = 0; i < 1000; i++) {
	v = sprintf("10.100.%d.%d:80", int((i + 1) / 256), (i + 1) % 256)
	print "-A -t " v " -s wrr"
	for (j = 0; j < 10; j++) { d = i * 10 + j + 1
		printf "-a -t %s -r 10.200.%d.%d:8080 -m -w %d\n", v, int(d / 256), d % 256, 1 + j % 5 }
} }' >"$T/bench.rules"
BASE_NS=ipvst-base
base_ms=
# (lo up: without a local table IPVS takes every address for a broadcast one)
if ip netns add $BASE_NS && ip -n $BASE_NS link set lo up; then
	t0=$(date +%s%N)
	ip netns exec $BASE_NS ipvsadm -R <"$T/bench.rules" 2>"$T/base.err" &&
		base_ms=$((($(date +%s%N) - t0) / 1000000))
	head -3 "$T/base.err" | sed 's/^/#   ipvsadm: /'
	ip netns del $BASE_NS
fi
echo "# bench (inside UML): full sync 1000x10 = 11000 messages in $full_ms ms (target <= 2000)"
echo "#   baseline, ipvsadm -R of the same 11000 rules: ${base_ms:-failed} ms"
echo "#   sync with no change: 0 messages in $idle_ms ms (1 service dump + 1000 destination dumps)"
echo "#   one weight change: 1 message, sync in $one_ms ms"
echo "#   cleanup: 1000 messages in $clean_ms ms"
tap_done
