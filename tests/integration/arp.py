"""L2 announcing in namespaces: a client and two nodes on one bridge. The nodes run the ARP
announcer (src/announce/arp.c) through tests/integration/announce_drive.c, a small driver built
here from the project's library, which takes "sync VIP..." / "withdraw" on stdin.

    client ns              bridge ns               node1 ns / node2 ns
    c0 10.233.0.2/24 ----- p-client  br0  p-n1 ----- n0 10.233.0.11/24   (node2: .12)
       fd00:a2b::2/64                     p-n2       fd00:a2b::11/64       (node2: ::12)

The client is set up as the issue's upstream would be to learn addresses it never asked for:
arp_accept=1 on its interface for IPv4; for IPv6 the kernel creates entries from unsolicited
NAs only on interfaces that forward (accept_untracked_na=1 plus forwarding=1: RFC 9131 router
behaviour); plain hosts only update entries they already have.

Checks: VIPs on the adapter with vipd's address protocol; the client's neighbour table maps
each VIP to the node's MAC before the client ever asked; the burst and the refresh on the
wire; real traffic (ping); an address removed by hand comes back and is logged; a second node
taking the VIPs over moves the client's entries within one refresh; a restarted announcer
removes its stale addresses at the first sync; withdrawing removes the address and stops the
frames; addresses the announcer did not add are never touched.
"""
import os
import re
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import SRCDIR, VIPD, api_request, done, ok, tmpdir  # noqa: E402
from netns import Netns, ping  # noqa: E402
from sniff import Sniffer  # noqa: E402

BUILDDIR = os.environ.get("BUILDDIR", os.path.join(SRCDIR, "build", "plain"))
REFRESH = 1.0          # the test's refresh interval (vipd's default is 3 s)
ADDRS_PROTO = 118      # src/announce/addrs.h
VIP4, VIP6 = "10.233.0.100", "fd00:a2b::100"
SHARED4 = "10.233.0.101"           # a VIP the operator put on node1 by hand: stays theirs
FOREIGN = ["10.233.0.200", "fd00:a2b::200"]  # the operator's, never VIPs
VIP_API = "10.233.0.150"           # made through the real vipd's API
API_PORT = 18601


def build_driver(directory):
    """Compiles the driver against BUILDDIR's libvipd.a, with that build's sanitizer flags."""
    mk = open(os.path.join(BUILDDIR, "Makefile")).read()

    def var(name):
        m = re.search(rf"^{name} = (.*)$", mk, re.M)
        return m.group(1).split() if m else []

    out = os.path.join(directory, "announce_drive")
    argv = (["gcc", "-std=gnu11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-g"]
            + var("SAN_CFLAGS") + [f"-I{SRCDIR}/src", f"-I{SRCDIR}",
                                   os.path.join(SRCDIR, "tests", "integration", "announce_drive.c"),
                                   os.path.join(BUILDDIR, "libvipd.a")]
            + var("LIBEV_LIBS") + var("SAN_LDFLAGS") + ["-o", out])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    return out if r.returncode == 0 else None, r.stderr


# --- netlink: addresses with their IFA_PROTO (iproute2 6.1 does not print it) -----------
def nl_addrs(ns, ifname):
    """[(address, prefixlen, proto)] on ifname in ns."""
    with ns.entered():
        ifindex = socket.if_nametoindex(ifname)
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        s.settimeout(5)
        # RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, family AF_UNSPEC
        s.send(struct.pack("=LHHLL", 24, 22, 0x301, 1, 0) + struct.pack("=BBBBI", 0, 0, 0, 0, 0))
        out = []
        while True:
            data = s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ = struct.unpack_from("=LH", data, off)
                if typ == 3:  # NLMSG_DONE
                    return out
                if typ == 2:  # NLMSG_ERROR
                    raise OSError(-struct.unpack_from("=i", data, off + 16)[0], "address dump")
                if typ == 20:  # RTM_NEWADDR
                    fam, plen, _, _, idx = struct.unpack_from("=BBBBI", data, off + 16)
                    a, attrs = off + 24, {}
                    while a + 4 <= off + ln:
                        alen, atyp = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        attrs[atyp] = data[a + 4:a + alen]
                        a += (alen + 3) & ~3
                    raw = attrs.get(2) or attrs.get(1)  # IFA_LOCAL, IFA_ADDRESS
                    if idx == ifindex and raw:
                        out.append((socket.inet_ntop(fam, raw), plen, attrs.get(11, b"\0")[0]))
                off += (ln + 3) & ~3
    finally:
        s.close()


def addr_proto(ns, ifname, ip):
    """The proto of ip on ifname, or None when it is not there."""
    for a, _, proto in nl_addrs(ns, ifname):
        if a == ip:
            return proto
    return None


def mac_of(ns, ifname):
    return ns.run("cat", f"/sys/class/net/{ifname}/address").stdout.strip().lower()


def neigh(ns, ifname, ip):
    """The MAC ns's neighbour table holds for ip (None if no usable entry)."""
    out = ns.ip("neigh", "show", "to", ip, "dev", ifname)
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return m.group(1) if m and "FAILED" not in out else None


def wait_for(cond, timeout, step=0.02):
    """Polls cond until true or timeout; returns (value, seconds taken)."""
    t0 = time.time()
    while True:
        v = cond()
        if v or time.time() - t0 > timeout:
            return v, time.time() - t0
        time.sleep(step)


# --- the announcer under test -----------------------------------------------------------
class Driver:
    """announce_drive in a namespace; commands on its stdin, answers on its stdout."""

    def __init__(self, binary, ns, adapter, refresh):
        self.log_path = os.path.join(tmpdir("xarp-log-"), "drive.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(ns.exec_argv([binary, adapter, str(refresh)]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)
        _drivers.append(self)
        self.ready = self._line(10) == "ready"

    def _line(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        return self.proc.stdout.readline().strip() if r else None

    def cmd(self, line, timeout=10):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def sync(self, *vips):
        return self.cmd("sync " + " ".join(vips)) == "sync 0"

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill9(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self):
        """End of input: the announcer is freed without withdrawing."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()
        return self.proc.returncode


_drivers = []


class Lan:
    """client, node1, node2 on a bridge in a fourth namespace."""

    def __init__(self):
        tag = "xarp-" + secrets.token_hex(3)
        self.br = Netns(tag + "-br")
        self.client = Netns(tag + "-client")
        self.nodes = [Netns(tag + "-node1"), Netns(tag + "-node2")]
        self.made = []

    def build(self):
        for ns in [self.br, self.client] + self.nodes:
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True,
                           timeout=30)
            self.made.append(ns)
            ns.ip("link", "set", "lo", "up")
            ns.run("sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0",
                   "net.ipv6.conf.all.accept_dad=0")
        self.br.ip("link", "add", "br0", "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
        ends = [(self.client, "c0", "p-client", 2)] + [
            (n, "n0", f"p-n{i + 1}", 11 + i) for i, n in enumerate(self.nodes)]
        for ns, inner, port, host in ends:
            subprocess.run(["ip", "link", "add", inner, "netns", ns.name, "type", "veth", "peer",
                            "name", port, "netns", self.br.name], check=True, capture_output=True,
                           timeout=30)
            self.br.ip("link", "set", port, "master", "br0", "up")
            ns.ip("addr", "add", f"10.233.0.{host}/24", "dev", inner)
            ns.ip("-6", "addr", "add", f"fd00:a2b::{host}/64", "dev", inner, "nodad")
            ns.ip("link", "set", inner, "up")
        self.br.ip("link", "set", "br0", "up")
        # What the client must set to learn addresses it never asked for (see the docstring).
        self.client.run("sysctl", "-qw", "net.ipv4.conf.c0.arp_accept=1",
                        "net.ipv6.conf.c0.forwarding=1", "net.ipv6.conf.c0.accept_untracked_na=1")
        for i, n in enumerate(self.nodes):
            if not ping(self.client, f"10.233.0.{11 + i}", timeout=1, tries=5):
                raise RuntimeError(f"client cannot reach node{i + 1}")
        return self

    def destroy(self):
        for d in _drivers:
            if d.proc.poll() is None:
                d.kill9()
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)
        self.made = []


def real_vipd(client, node, mac):
    """The same through the daemon: vipd --arp announces a load balancer made by the API and
    takes its address away when it is deleted."""
    state = tmpdir("xarp-state-")
    log = open(os.path.join(state, "vipd.log"), "wb")
    proc = subprocess.Popen(node.exec_argv([
        VIPD, "--foreground", "--arp", "--adapter", "n0", "--arp-refresh", "1s",
        "--dataplane", "none", "--state-dir", state, "--api-listen", f"127.0.0.1:{API_PORT}"]),
        stdout=log, stderr=log)
    def api(method, path, body=None):
        try:
            return api_request(node.http("127.0.0.1", API_PORT, timeout=5), method, path, body)
        except OSError as e:  # not listening yet, or gone
            return 0, str(e)

    try:
        up = wait_for(lambda: api("GET", "/healthz")[0] == 200, 10)
        ok(up, "vipd --arp --adapter n0 starts", open(log.name).read())
        if not up:
            return
        st, body = api("POST", "/loadbalancer", {"name": "web", "vip": VIP_API, "port": 80,
                                                "backends": [{"ip": "10.233.0.50", "port": 8080}]})
        t0 = time.time()
        got = wait_for(lambda: neigh(client, "c0", VIP_API) == mac, 3)
        ok(st == 201 and got and addr_proto(node, "n0", VIP_API) == ADDRS_PROTO,
           f"a load balancer created through vipd's API: its VIP goes on the adapter and the "
           f"client maps it to the node's MAC ({(time.time() - t0) * 1000:.0f} ms)",
           f"{st} {body}; neigh {neigh(client, 'c0', VIP_API)}; {nl_addrs(node, 'n0')}")
        uuid = body.get("uuid", "x") if isinstance(body, dict) else "x"
        st, body = api("DELETE", f"/loadbalancer/{uuid}")
        gone = wait_for(lambda: addr_proto(node, "n0", VIP_API) is None, 3)
        ok(st in (200, 204) and gone, "deleting it through the API removes the address",
           f"{st} {body}; {nl_addrs(node, 'n0')}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(10)
        ok(rc == 0, "vipd exits 0 on SIGTERM", open(log.name).read()[-2000:])
        log.close()


def main():
    # A timeout's SIGTERM still runs the finally below (namespaces, driver processes).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = tmpdir("xarp-")
    binary, err = build_driver(work)
    if not ok(binary is not None, "the announcer driver builds against the project's library",
              err):
        return
    lan = Lan()
    sniff = None
    try:
        lan.build()
        client, node1, node2 = lan.client, lan.nodes[0], lan.nodes[1]
        mac1, mac2 = mac_of(node1, "n0"), mac_of(node2, "n0")
        sniff = Sniffer(client, "c0")

        # The operator's own addresses on node1, one of them also used as a VIP.
        node1.ip("addr", "add", f"{FOREIGN[0]}/32", "dev", "n0")
        node1.ip("-6", "addr", "add", f"{FOREIGN[1]}/128", "dev", "n0", "nodad")
        node1.ip("addr", "add", f"{SHARED4}/32", "dev", "n0")
        client.ip("neigh", "flush", "dev", "c0")
        ok(neigh(client, "c0", VIP4) is None and neigh(client, "c0", VIP6) is None,
           "the client knows nothing of the VIPs at first")

        # --- announce on node1 ------------------------------------------------------
        d1 = Driver(binary, node1, "n0", REFRESH)
        ok(d1.ready, "the L2 announcer starts on node1", d1.logs())
        t0 = time.time()
        ok(d1.sync(VIP4, VIP6, SHARED4), "sync with two VIPs and a hand-made one returns 0",
           d1.logs())
        addrs = nl_addrs(node1, "n0")
        ok((VIP4, 32, ADDRS_PROTO) in addrs and (VIP6, 128, ADDRS_PROTO) in addrs,
           f"the VIPs are on the adapter as /32 and /128 with vipd's address protocol "
           f"({ADDRS_PROTO}), IPv4 and IPv6", addrs)
        ok(addr_proto(node1, "n0", SHARED4) == 0,
           "a VIP the operator had added already stays theirs (not re-marked)", addrs)
        v6flags = node1.ip("-6", "addr", "show", "dev", "n0")
        ok(re.search(rf"{VIP6}/128 scope global nodad deprecated", v6flags) is not None,
           "the IPv6 VIP skips DAD (usable at once) and is deprecated as a source", v6flags)

        got, dt = wait_for(lambda: neigh(client, "c0", VIP4) == mac1
                           and neigh(client, "c0", VIP6) == mac1, 2)
        ok(got, f"the client's neighbour table maps both VIPs to node1's MAC ({dt * 1000:.0f} ms)",
           client.ip("neigh", "show", "dev", "c0"))
        asked = (sniff.count("arp-req", VIP4, outgoing=True)
                 + sniff.count("ns", VIP6, outgoing=True))
        ok(asked == 0, "learned from gratuitous ARP / unsolicited NA: the client never asked",
           f"{asked} ARP requests / neighbour solicitations from the client")
        time.sleep(0.5)
        bursts = {k: sniff.count(k, ip, mac1, t0, t0 + 0.6)
                  for k, ip in (("garp-req", VIP4), ("garp-rep", VIP4), ("na", VIP6))}
        ok(all(n == 3 for n in bursts.values()),
           "a burst of 3 gratuitous ARP requests, 3 replies and 3 NAs in the first 0.6 s",
           bursts)
        ok(sniff.count("garp-rep", SHARED4, mac1, t0) >= 3,
           "the hand-made VIP is announced too (it is wanted)")

        ok(ping(client, VIP4, tries=3) and ping(client, VIP6, tries=3),
           "the client reaches both VIPs (real traffic to the node)")
        t1 = time.time()
        time.sleep(3.2 * REFRESH)
        refresh = {ip: sniff.announcements(ip, mac1, t1) for ip in (VIP4, VIP6)}
        ok(refresh[VIP4] >= 2 * 2 and refresh[VIP6] >= 2,
           f"periodic refresh every {REFRESH:g} s (frames in {3.2 * REFRESH:g} s: {refresh})")

        # --- an address removed by hand comes back ---------------------------------
        node1.ip("addr", "del", f"{VIP4}/32", "dev", "n0")
        node1.ip("-6", "addr", "del", f"{VIP6}/128", "dev", "n0")
        back, dt = wait_for(lambda: addr_proto(node1, "n0", VIP4) == ADDRS_PROTO
                            and addr_proto(node1, "n0", VIP6) == ADDRS_PROTO, 3)
        ok(back, f"addresses removed by hand are put back ({dt * 1000:.0f} ms)",
           nl_addrs(node1, "n0"))
        logs = d1.logs()
        ok(all(f"removed by someone else; putting it back\" iface=n0 addr={ip}" in logs
               for ip in (f"{VIP4}/32", f"{VIP6}/128")), "and each removal is logged", logs)

        # --- node2 takes over -------------------------------------------------------
        # node1 drops out without cleaning up (kill -9): its refresh stops, its addresses stay.
        d1.kill9()
        d2 = Driver(binary, node2, "n0", REFRESH)
        ok(d2.ready, "the L2 announcer starts on node2", d2.logs())
        ok(d2.sync(VIP4, VIP6), "node2 announces the same VIPs", d2.logs())
        moved, dt = wait_for(lambda: neigh(client, "c0", VIP4) == mac2
                             and neigh(client, "c0", VIP6) == mac2, 3 * REFRESH)
        ok(moved and dt <= REFRESH,
           f"the client's entries move to node2 within one refresh ({dt * 1000:.0f} ms, "
           f"refresh {REFRESH:g} s)", client.ip("neigh", "show", "dev", "c0"))

        # --- a restarted node1 cleans up what it left --------------------------------
        d1b = Driver(binary, node1, "n0", REFRESH)
        ok(d1b.ready and d1b.sync(), "node1's announcer restarts with nothing to announce",
           d1b.logs())
        left = nl_addrs(node1, "n0")
        ips = [a for a, _, _ in left]
        ok(VIP4 not in ips and VIP6 not in ips,
           "its addresses from before the restart are removed at the first sync", left)
        ok(all(ip in ips for ip in FOREIGN + [SHARED4])
           and all(p == 0 for a, _, p in left if a in FOREIGN + [SHARED4]),
           "addresses the announcer did not add are untouched throughout", left)
        d1b.close()

        ok(ping(client, VIP4, tries=3) and ping(client, VIP6, tries=3),
           "the client reaches both VIPs on node2")

        # --- partial withdraw, then withdraw everything on node2 ------------------------
        ok(d2.sync(VIP4), "node2 keeps only the IPv4 VIP")
        t2 = time.time()
        ok(addr_proto(node2, "n0", VIP6) is None and addr_proto(node2, "n0", VIP4) == ADDRS_PROTO,
           "the withdrawn IPv6 VIP leaves node2's adapter, the other stays",
           nl_addrs(node2, "n0"))
        time.sleep(2.5 * REFRESH)
        na, garp = sniff.announcements(VIP6, mac2, t2 + 0.05), sniff.announcements(VIP4, mac2, t2)
        ok(na == 0 and garp >= 2 * 2,
           f"NAs for it stop while the IPv4 VIP is still refreshed (NA {na}, ARP {garp})")

        ok(d2.cmd("withdraw") == "withdraw 0", "withdraw_all returns")
        t3 = time.time()
        ok(addr_proto(node2, "n0", VIP4) is None, "withdrawing removes the address",
           nl_addrs(node2, "n0"))
        time.sleep(2.5 * REFRESH)
        after = sniff.announcements(VIP4, mac2, t3 + 0.05)
        ok(after == 0, f"and the refresh stops (no frame in {2.5 * REFRESH:g} s)", after)
        node2.ip("addr", "add", f"{VIP4}/32", "dev", "n0")
        ok(d2.sync() and addr_proto(node2, "n0", VIP4) == 0,
           "the same address added by hand afterwards is someone else's: a sync leaves it",
           nl_addrs(node2, "n0"))
        rc = d2.close()
        ok(rc == 0, "the announcer exits cleanly at end of input", d2.logs())
        for d in (d1, d2, d1b):
            if "runtime error" in d.logs() or "AddressSanitizer" in d.logs():
                ok(False, "no sanitizer report", d.logs())
        real_vipd(client, node1, mac1)
    finally:
        if sniff:
            sniff.close()
        lan.destroy()


main()
done()
