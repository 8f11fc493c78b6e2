#!/bin/sh
# Installs the Debian packages vipd needs to build (and, with "test", to run every
# test tier). Only missing packages are installed; nothing happens when all are there.
set -eu

BUILD="build-essential autoconf automake libtool pkg-config libev-dev libnl-3-dev \
libnl-genl-3-dev libnl-route-3-dev libbpf-dev libcurl4-openssl-dev libcjson-dev \
libmicrohttpd-dev libssl-dev libnftables-dev clang bpftool libsystemd-dev"
RUNTIME="iproute2 curl python3 ethtool bird2 libnftables1"
TEST="libcmocka-dev clang libclang-rt-14-dev valgrind wrk groff-base man-db bpftool libelf-dev zlib1g-dev \
iperf3 iputils-ping nftables bird2 user-mode-linux kmod ipvsadm iptables linux-source-6.1 flex bison bc \
python3-prometheus-client systemd debhelper dpkg-dev fakeroot debootstrap"

want="$BUILD $RUNTIME"
[ "${1:-build}" = test ] && want="$want $TEST"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
