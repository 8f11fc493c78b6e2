"""Network namespaces for vipd's end-to-end tests: a client, a node that runs vipd and
backends behind it, joined by veth pairs and a bridge, with IPv4 and IPv6 on every link.

    client ns            node ns                     lan ns            backend ns (x N)
    c-node ---------- n-client   n-lan ---------- l-node  br0  l-bK ---------- b-lan
    10.231.1.2/24   10.231.1.1   10.231.2.1/24                          10.231.2.1K/24
    fd00:e2e:a::2/64  fd00:e2e:a::1 fd00:e2e:b::1/64                    fd00:e2e:b::1K/64

The client's default route goes through the node, so the VIP ranges (VIP_NET) reach the
node with no announcement; the backends' default route goes through the node too (NAT
replies, and DSR replies leave that way because the node is the only router). The backends
sit on the node's L2 segment, so DSR can reach them by MAC.

Native XDP on veth needs help: XDP_TX and redirects out of a veth are only delivered when its
peer runs an XDP program too (attach_xdp_pass puts an xdp_pass on the peers of the node's
interfaces), and frames sent with checksum offload (CHECKSUM_PARTIAL) leave an XDP program
with a wrong checksum (build() turns TX offload off on every veth).

Every namespace and process made here is removed by Topology.destroy(), which also runs at
exit. `python3 netns.py serve NAME PORT...` is the backend server (see serve()).
"""
import atexit
import contextlib
import ctypes
import http.client
import os
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

CLONE_NEWNET = 0x40000000
IP_PKTINFO = 8  # Linux; Python's socket module lacks the constant before 3.12

_libc = ctypes.CDLL(None, use_errno=True)

# The same pass-all program the demo puts on veth peers.
XDP_PASS_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib",
                            "demo", "xdp_pass.bpf.c")


def build_xdp_pass(directory):
    """Compiles the xdp_pass program into directory; returns the object's path."""
    obj = os.path.join(directory, "xdp_pass.o")
    arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True, text=True,
                          timeout=30).stdout.strip()
    subprocess.run(["clang", "-O2", "-target", "bpf", f"-I/usr/include/{arch}", "-c",
                    XDP_PASS_SRC, "-o", obj], check=True, capture_output=True, timeout=60)
    return obj


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class Netns:
    """One named network namespace (/run/netns/NAME)."""

    def __init__(self, name):
        self.name = name
        self.path = f"/run/netns/{name}"

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.name] + list(argv)

    def nsenter_argv(self, argv):
        """Like exec_argv but keeps the host's mounts (its /sys/fs/bpf)."""
        return ["nsenter", f"--net={self.path}"] + list(argv)

    def run(self, *argv, check=True, timeout=30):
        r = subprocess.run(self.exec_argv(argv), capture_output=True, text=True,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name}: {' '.join(argv)}: {r.stderr.strip()}")
        return r

    def ip(self, *args, check=True):
        r = subprocess.run(["ip", "-n", self.name] + list(args), capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"{self.name}: ip {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    @contextlib.contextmanager
    def entered(self):
        """Runs the block with this thread in the namespace (sockets made there stay there)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(target)
            os.close(home)

    def socket(self, family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0):
        with self.entered():
            return socket.socket(family, type, proto)

    def http(self, host, port, timeout=10):
        """An HTTP connection whose socket is made in this namespace."""
        return NsHTTPConnection(self, host, port, timeout)

    def connect(self, addr, port, timeout=3.0):
        """A TCP socket connected from this namespace to addr:port."""
        s = self.socket(family_of(addr), socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
        except OSError:
            s.close()
            raise
        return s


class NsHTTPConnection(http.client.HTTPConnection):
    """HTTP to a listener inside a namespace: the socket is made there."""

    def __init__(self, ns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.ns = ns

    def connect(self):
        self.sock = self.ns.connect(self.host, self.port, self.timeout)


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _inet_checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def ping(ns, addr, timeout=1.0, tries=1):
    """One ICMP(v6) echo from ns to addr (raw socket: no ping binary needed). True if answered."""
    v6 = ":" in addr
    if v6:
        s = ns.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    else:
        s = ns.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    ident = secrets.randbits(16)
    try:
        for seq in range(tries):
            payload = secrets.token_bytes(16)
            typ, reply = (128, 129) if v6 else (8, 0)
            hdr = struct.pack("!BBHHH", typ, 0, 0, ident, seq)
            csum = 0 if v6 else _inet_checksum(hdr + payload)  # the kernel sums ICMPv6
            s.sendto(struct.pack("!BBHHH", typ, 0, csum, ident, seq) + payload, (addr, 0))
            deadline = time.time() + timeout
            while time.time() < deadline:
                s.settimeout(max(0.01, deadline - time.time()))
                try:
                    data, src = s.recvfrom(2048)
                except socket.timeout:
                    break
                if not v6:
                    data = data[(data[0] & 0xf) * 4:]  # raw IPv4 sockets see the IP header
                if (len(data) >= 8 and data[0] == reply and src[0] == addr
                        and struct.unpack("!H", data[4:6])[0] == ident
                        and data[8:] == payload):
                    return True
        return False
    finally:
        s.close()


def xdp_attached(ns, ifname):
    """The id of the XDP program on ifname, or None."""
    out = ns.ip("-d", "link", "show", "dev", ifname)
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("prog/xdp"):
            parts = line.split()
            if "id" in parts:
                return int(parts[parts.index("id") + 1])
    return None


class Backend:
    def __init__(self, name, ns, v4, v6):
        self.name = name
        self.ns = ns
        self.ip = {4: v4, 6: v6}
        self.server = None


class Topology:
    """client — node — lan bridge — N backends. Use as a context manager or call destroy()."""

    CLIENT_IP = {4: "10.231.1.2", 6: "fd00:e2e:a::2"}
    NODE_CLIENT_IP = {4: "10.231.1.1", 6: "fd00:e2e:a::1"}
    NODE_LAN_IP = {4: "10.231.2.1", 6: "fd00:e2e:b::1"}
    VIP_NET = {4: "10.231.100.0/24", 6: "fd00:e2e:f::/64"}
    ADAPTER = "n-client"  # the node's interface towards the client
    LAN_IF = "n-lan"      # the node's interface towards the backends

    def __init__(self, prefix="xe2e-", backends=3):
        self.tag = prefix + secrets.token_hex(3)
        self.client = Netns(self.tag + "-client")
        self.node = Netns(self.tag + "-node")
        self.lan = Netns(self.tag + "-lan")
        self.backends = [Backend(f"b{i + 1}", Netns(f"{self.tag}-b{i + 1}"),
                                 f"10.231.2.{11 + i}", f"fd00:e2e:b::{11 + i}")
                         for i in range(backends)]
        self._made = []
        self._procs = []
        self._destroyed = False
        atexit.register(self.destroy)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.destroy()

    def namespaces(self):
        return [self.client, self.node, self.lan] + [b.ns for b in self.backends]

    def _veth(self, ns_a, name_a, ns_b, name_b):
        subprocess.run(["ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
                        "peer", "name", name_b, "netns", ns_b.name], check=True,
                       capture_output=True, timeout=30)
        for ns, name in ((ns_a, name_a), (ns_b, name_b)):
            # Frames that leave a veth for an XDP peer must carry complete checksums.
            ns.run("ethtool", "-K", name, "tx", "off")

    def build(self):
        for ns in self.namespaces():
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True,
                           timeout=30)
            self._made.append(ns)
            ns.ip("link", "set", "lo", "up")
            # New namespaces inherit the host's IPv4 settings: make them predictable.
            ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                   "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.default.accept_dad=0",
                   "net.ipv6.conf.all.accept_dad=0")
        self.node.run("sysctl", "-qw", "net.ipv4.ip_forward=1",
                      "net.ipv6.conf.all.forwarding=1")

        self._veth(self.client, "c-node", self.node, self.ADAPTER)
        self._veth(self.node, self.LAN_IF, self.lan, "l-node")
        self.lan.ip("link", "add", "br0", "type", "bridge", "stp_state", "0",
                    "mcast_snooping", "0")
        self.lan.ip("link", "set", "l-node", "master", "br0", "up")
        for b in self.backends:
            self._veth(b.ns, "b-lan", self.lan, f"l-{b.name}")
            self.lan.ip("link", "set", f"l-{b.name}", "master", "br0", "up")
        self.lan.ip("link", "set", "br0", "up")

        def addr(ns, dev, ips, plen4, plen6):
            ns.ip("addr", "add", f"{ips[4]}/{plen4}", "dev", dev)
            ns.ip("-6", "addr", "add", f"{ips[6]}/{plen6}", "dev", dev, "nodad")
            ns.ip("link", "set", dev, "up")

        addr(self.client, "c-node", self.CLIENT_IP, 24, 64)
        addr(self.node, self.ADAPTER, self.NODE_CLIENT_IP, 24, 64)
        addr(self.node, self.LAN_IF, self.NODE_LAN_IP, 24, 64)
        self.client.ip("route", "add", "default", "via", self.NODE_CLIENT_IP[4])
        self.client.ip("-6", "route", "add", "default", "via", self.NODE_CLIENT_IP[6])
        for b in self.backends:
            # DSR: the VIPs sit on lo; ARP must never answer for them.
            b.ns.run("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1",
                     "net.ipv4.conf.all.arp_announce=2")
            addr(b.ns, "b-lan", b.ip, 24, 64)
            b.ns.ip("route", "add", "default", "via", self.NODE_LAN_IP[4])
            b.ns.ip("-6", "route", "add", "default", "via", self.NODE_LAN_IP[6])
        self._resolve_neighbours()
        return self

    def _resolve_neighbours(self, timeout=10):
        """Pings every neighbour of the node once, so no first packet waits for ARP/NDP."""
        deadline = time.time() + timeout
        targets = [self.CLIENT_IP[4], self.CLIENT_IP[6]]
        for b in self.backends:
            targets += [b.ip[4], b.ip[6]]
        for t in targets:
            while not ping(self.node, t, timeout=0.5):
                if time.time() > deadline:
                    raise RuntimeError(f"node cannot ping {t}")
        for b in self.backends:
            ping(b.ns, self.NODE_LAN_IP[4])
            ping(b.ns, self.NODE_LAN_IP[6])
        ping(self.client, self.NODE_CLIENT_IP[4])
        ping(self.client, self.NODE_CLIENT_IP[6])

    def attach_xdp_pass(self, obj):
        """xdp_pass on the peers of the node's interfaces, where vipd runs XDP."""
        for ns, dev in ((self.client, "c-node"), (self.lan, "l-node")):
            ns.ip("link", "set", "dev", dev, "xdpdrv", "obj", obj, "sec", "xdp")

    def add_vip_on_backends(self, vip):
        """DSR: each backend holds the VIP on lo."""
        plen = 128 if ":" in vip else 32
        for b in self.backends:
            b.ns.ip("addr", "add", f"{vip}/{plen}", "dev", "lo")

    def serve(self, ns, name, ports):
        """Starts serve(name, ports) in ns; wait_ready() before use."""
        argv = ns.exec_argv([sys.executable, os.path.abspath(__file__), "serve", name]
                            + [str(p) for p in ports])
        err = tempfile.TemporaryFile()  # a pipe nobody reads could fill and block it
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        p.errfile = err
        self._procs.append(p)
        return p

    @staticmethod
    def wait_ready(procs, timeout=10):
        deadline = time.time() + timeout
        for p in procs:
            r, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.time()))
            line = p.stdout.readline() if r else b""
            if line.strip() != b"ready":
                p.errfile.seek(0)
                raise RuntimeError(f"server {p.args} did not start: {line!r} "
                                   f"{p.errfile.read(2000).decode(errors='replace')}")

    def start_servers(self, ports, timeout=10):
        """A TCP and UDP server on every port of every backend, answering with its name."""
        for b in self.backends:
            b.server = self.serve(b.ns, b.name, ports)
        self.wait_ready([b.server for b in self.backends], timeout)

    def destroy(self):
        if self._destroyed:
            return
        self._destroyed = True
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.errfile.close()
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)


# --- the backend server ----------------------------------------------------------------------

def _tcp_conn(name, conn, peer):
    prefix = name.encode() + b" "
    try:
        with conn, conn.makefile("rb") as f:
            conn.settimeout(120)
            conn.sendall(f"{name} {peer}\n".encode())
            for line in f:
                words = line.split()
                if len(words) == 3 and words[0] == b"download":
                    _download(conn, int(words[1]), int(words[2]) / 1000.0)
                    return
                conn.sendall(prefix + line)
    except OSError:
        pass


def _download(conn, total, seconds, chunk=32768):
    """total bytes, paced evenly over seconds."""
    block = b"d" * chunk
    t0 = time.monotonic()
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        conn.sendall(block[:n])
        sent += n
        ahead = t0 + seconds * sent / total - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)


def _tcp_loop(name, ls):
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=_tcp_conn, args=(name, conn, peer[0]), daemon=True).start()


def _udp_loop(name, us, family):
    """Replies from the address the datagram went to (a DSR VIP on lo, not the routed source)."""
    while True:
        _, anc, _, peer = us.recvmsg(2048, socket.CMSG_SPACE(64))
        reply = f"{name} {peer[0]}\n".encode()
        out = []
        for level, typ, cdata in anc:
            if family == socket.AF_INET and level == socket.IPPROTO_IP and typ == IP_PKTINFO:
                _, _, dst = struct.unpack("i4s4s", cdata[:12])
                out = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("i4s4s", 0, dst, dst))]
            elif family == socket.AF_INET6 and typ == socket.IPV6_PKTINFO:
                dst = cdata[:16]
                out = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, struct.pack("16si", dst, 0))]
        try:
            us.sendmsg([reply], out, 0, peer)
        except OSError:
            pass


def serve(name, ports, lifetime=900):
    """Per port: TCP greets with "NAME PEER\\n" then echoes each line as "NAME LINE" (but
    answers "download BYTES MS" with BYTES bytes paced over MS milliseconds, then closes);
    UDP answers each datagram with "NAME PEER\\n". Prints "ready" once listening, exits when
    stdin closes (the test died) or after lifetime seconds."""
    threads = []
    for port in ports:
        for family, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            ls = socket.socket(family, socket.SOCK_STREAM)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            ls.bind((any_addr, port))
            ls.listen(512)
            threads.append(threading.Thread(target=_tcp_loop, args=(name, ls), daemon=True))
            us = socket.socket(family, socket.SOCK_DGRAM)
            if family == socket.AF_INET6:
                us.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                us.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                us.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            us.bind((any_addr, port))
            threads.append(threading.Thread(target=_udp_loop, args=(name, us, family),
                                            daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))
    signal.alarm(lifetime)
    sys.stdin.buffer.read()
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "serve":
        serve(sys.argv[2], [int(p) for p in sys.argv[3:]])
    else:
        sys.exit(f"usage: {sys.argv[0]} serve NAME PORT...")
