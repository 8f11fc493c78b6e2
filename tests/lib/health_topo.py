"""Namespaces for the health-check end-to-end test (tests/integration/health.py): a client
behind a BGP router, a node running vipd (XDP + BGP through its own BIRD), two backends on
the node's L2 segment, and beside them an L2 (ARP) node with a client of its own.

    client ns          router ns (BIRD 65000)        node ns (BIRD 65001, vipd XDP+BGP)
    c-r ------------ r-c        r-n --------------- n-r (adapter)    n-lan ----+
    10.234.1.2/24    10.234.1.1  10.234.0.2/30       10.234.0.1/30  10.234.2.1 |
                                                                                |
    lan ns: bridge br0 <- l-node, l-b1, l-b2, l-arp  --------------------------+
      b1 ns: b-lan 10.234.2.11/24   b2 ns: b-lan 10.234.2.12/24 (default via the node)
      arpn ns: a-lan 10.234.2.3/24, a-c 10.234.3.1/24 (vipd --arp) --- arpc ns: c-a 10.234.3.2/24

vipd puts its XDP program on n-r and n-lan: their peers (r-n, l-node) carry an xdp_pass, and
every veth has TX checksum offload off (see tests/lib/netns.py).

The backend server is netns.py's (`python3 netns.py serve NAME PORT`): it greets each
connection with "NAME PEER\\n"; "download BYTES MS" is answered with BYTES bytes spread evenly
over MS milliseconds.
"""
import os
import secrets
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from netns import Netns, ping  # noqa: E402
from vipdtest import tmpdir  # noqa: E402

CLIENT_IP = "10.234.1.2"
ROUTER_CLIENT_IP = "10.234.1.1"
ROUTER_IP = "10.234.0.2"
NODE_IP = "10.234.0.1"
NODE_LAN_IP = "10.234.2.1"
ARPN_LAN_IP = "10.234.2.3"
ARPN_IP = "10.234.3.1"
ARPC_IP = "10.234.3.2"
BACKEND_IPS = {"b1": "10.234.2.11", "b2": "10.234.2.12"}
ADAPTER = "n-r"       # the node's interface towards the router: vipd's --adapter
LAN_IF = "n-lan"
ARP_ADAPTER = "a-c"   # the L2 node's interface towards its client
ARPC_IF = "c-a"


class Backend:
    def __init__(self, name, ns, ip):
        self.name, self.ns, self.ip = name, ns, ip
        self.server = None


class HealthTopo:
    """Every namespace and server made here goes in destroy() (also at exit through the caller's
    finally)."""

    def __init__(self, prefix="he2e-"):
        self.tag = prefix + secrets.token_hex(3)
        def n(role):
            return Netns(f"{self.tag}-{role}")
        self.client, self.router, self.node, self.lan = (n(r) for r in
                                                         ("client", "router", "node", "lan"))
        self.arpn, self.arpc = n("arpn"), n("arpc")
        self.backends = [Backend(name, n(name), ip) for name, ip in BACKEND_IPS.items()]
        self._made = []
        self._procs = []

    def namespaces(self):
        return [self.client, self.router, self.node, self.lan, self.arpn, self.arpc] + \
            [b.ns for b in self.backends]

    def _veth(self, ns_a, name_a, ns_b, name_b):
        subprocess.run(["ip", "link", "add", name_a, "netns", ns_a.name, "type", "veth",
                        "peer", "name", name_b, "netns", ns_b.name], check=True,
                       capture_output=True, timeout=30)
        for ns, name in ((ns_a, name_a), (ns_b, name_b)):
            # Frames that leave a veth for an XDP peer must carry complete checksums.
            ns.run("ethtool", "-K", name, "tx", "off")

    @staticmethod
    def _addr(ns, dev, cidr):
        ns.ip("addr", "add", cidr, "dev", dev)
        ns.ip("link", "set", dev, "up")

    def build(self):
        for ns in self.namespaces():
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True,
                           timeout=30)
            self._made.append(ns)
            ns.ip("link", "set", "lo", "up")
            ns.run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                   "net.ipv4.conf.default.rp_filter=0")
        for ns in (self.router, self.node):
            ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")

        self._veth(self.client, "c-r", self.router, "r-c")
        self._veth(self.router, "r-n", self.node, ADAPTER)
        self._veth(self.node, LAN_IF, self.lan, "l-node")
        self._veth(self.arpn, "a-lan", self.lan, "l-arp")
        self._veth(self.arpc, ARPC_IF, self.arpn, ARP_ADAPTER)
        self.lan.ip("link", "add", "br0", "type", "bridge", "stp_state", "0",
                    "mcast_snooping", "0")
        for b in self.backends:
            self._veth(b.ns, "b-lan", self.lan, f"l-{b.name}")
        for port in ["l-node", "l-arp"] + [f"l-{b.name}" for b in self.backends]:
            self.lan.ip("link", "set", port, "master", "br0", "up")
        self.lan.ip("link", "set", "br0", "up")

        self._addr(self.client, "c-r", f"{CLIENT_IP}/24")
        self._addr(self.router, "r-c", f"{ROUTER_CLIENT_IP}/24")
        self._addr(self.router, "r-n", f"{ROUTER_IP}/30")
        self._addr(self.node, ADAPTER, f"{NODE_IP}/30")
        self._addr(self.node, LAN_IF, f"{NODE_LAN_IP}/24")
        self._addr(self.arpn, "a-lan", f"{ARPN_LAN_IP}/24")
        self._addr(self.arpn, ARP_ADAPTER, f"{ARPN_IP}/24")
        self._addr(self.arpc, ARPC_IF, f"{ARPC_IP}/24")
        self.client.ip("route", "add", "default", "via", ROUTER_CLIENT_IP)
        self.node.ip("route", "add", "default", "via", ROUTER_IP)
        for b in self.backends:
            self._addr(b.ns, "b-lan", f"{b.ip}/24")
            b.ns.ip("route", "add", "default", "via", NODE_LAN_IP)
        self._resolve_neighbours()
        return self

    def _resolve_neighbours(self, timeout=10):
        """Every first packet finds its neighbour entry (XDP forwards only to known MACs)."""
        pairs = [(self.node, ROUTER_IP), (self.router, NODE_IP), (self.client, ROUTER_CLIENT_IP),
                 (self.arpc, ARPN_IP)]
        for b in self.backends:
            pairs += [(self.node, b.ip), (b.ns, NODE_LAN_IP), (self.arpn, b.ip)]
        deadline = time.time() + timeout
        for ns, target in pairs:
            while not ping(ns, target, timeout=0.5):
                if time.time() > deadline:
                    raise RuntimeError(f"{ns.name} cannot ping {target}")

    def attach_xdp_pass(self, obj):
        """xdp_pass on the peers of the interfaces vipd's program will sit on."""
        for ns, dev in ((self.router, "r-n"), (self.lan, "l-node")):
            ns.ip("link", "set", "dev", dev, "xdpdrv", "obj", obj, "sec", "xdp")

    # --- backend servers, by PID -------------------------------------------------------

    def start_server(self, b, port, timeout=10):
        argv = b.ns.exec_argv([sys.executable, netns.__file__, "serve", b.name,
                               str(port)])
        err = tempfile.TemporaryFile()  # a pipe nobody reads could fill and block it
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        p.errfile = err
        self._procs.append(p)
        r, _, _ = select.select([p.stdout], [], [], timeout)
        line = p.stdout.readline() if r else b""
        if line.strip() != b"ready":
            err.seek(0)
            raise RuntimeError(f"server {b.name} did not start: {line!r} "
                               f"{err.read(2000).decode(errors='replace')}")
        b.server = p
        return p

    @staticmethod
    def kill_server(b):
        """SIGKILL to the server's PID: its listener goes, new connections are refused."""
        p = b.server
        if p is not None and p.poll() is None:
            os.kill(p.pid, 9)
            p.wait()
        b.server = None

    def destroy(self):
        for p in self._procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            p.errfile.close()
        self._procs = []
        for ns in reversed(self._made):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)
        self._made = []


class TopoRun:
    """The frame of a run on a HealthTopo: the topology, a scratch directory BIRD (running as
    bird) can read, the XDP pin directory, and the vipds and BIRDs the run starts (appended to
    vipds and birds). cleanup() ends all of them; a run with more to end (sniffers, fake APIs,
    namespaces of its own) does it in close_more(), after the daemons and before the router's
    route watch closes."""

    def __init__(self, prefix, scratch_prefix):
        self.topo = HealthTopo(prefix=prefix)
        self.d = tmpdir(scratch_prefix)
        os.chmod(self.d, 0o755)
        self.pin_dir = f"/sys/fs/bpf/vipd-{self.topo.tag}"
        self.birds, self.vipds = [], []
        self.rw = None

    def close_more(self):
        pass

    def cleanup(self):
        for v in self.vipds:
            if v.alive():
                v.proc.kill()
                v.proc.wait()
        for b in self.birds:
            b.kill()
        self.close_more()
        if self.rw:
            self.rw.close()
        self.topo.destroy()
        shutil.rmtree(self.pin_dir, ignore_errors=True)


# --- the client's side -----------------------------------------------------------------

def hello(ns, addr, port, timeout=1.0):
    """The name of the backend that answered one short TCP connection from ns."""
    with ns.connect(addr, port, timeout) as s, s.makefile("rb") as f:
        line = f.readline().decode()
        if not line:
            raise ConnectionError("closed before the greeting")
        return line.split()[0]


class RouteWatch:
    """The IPv4 main table of a namespace read over rtnetlink (cheap enough to poll every few
    milliseconds, unlike forking ip)."""

    def __init__(self, ns):
        with ns.entered():
            self.s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.s.settimeout(2)
        self.seq = 0

    def routes(self):
        """{"a.b.c.d/len"} of the main table."""
        self.seq += 1
        # RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP; struct rtmsg with family AF_INET
        self.s.send(struct.pack("=LHHLL", 28, 26, 0x301, self.seq, 0)
                    + struct.pack("=BBBBBBBBI", socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0))
        out = set()
        while True:
            data = self.s.recv(65536)
            off = 0
            while off + 16 <= len(data):
                ln, typ, _, seq, _ = struct.unpack_from("=LHHLL", data, off)
                if ln < 16:
                    return out
                if seq != self.seq:
                    off += (ln + 3) & ~3
                    continue
                if typ == 3:  # NLMSG_DONE
                    return out
                if typ == 2:  # NLMSG_ERROR
                    raise OSError(-struct.unpack_from("=i", data, off + 16)[0], "route dump")
                if typ == 24:  # RTM_NEWROUTE
                    _, dlen, _, _, table = struct.unpack_from("=BBBBB", data, off + 16)
                    a, dst = off + 28, None
                    while a + 4 <= off + ln:
                        alen, atyp = struct.unpack_from("=HH", data, a)
                        if alen < 4:
                            break
                        if atyp == 1:  # RTA_DST
                            dst = socket.inet_ntoa(data[a + 4:a + 8])
                        elif atyp == 15:  # RTA_TABLE
                            table = struct.unpack_from("=I", data, a + 4)[0]
                        a += (alen + 3) & ~3
                    if dst and table == 254:
                        out.add(f"{dst}/{dlen}")
                off += (ln + 3) & ~3

    def has(self, vip):
        return f"{vip}/32" in self.routes()

    def close(self):
        self.s.close()
