"""End-to-end packet rate through a node: 64-byte UDP packets/s delivered to a backend, for
plain routing, nftables DNAT+masquerade and vipd's XDP plane (fullnat), in one topology and
one run, plus a single-stream TCP figure (iperf3) for each of the three.

    client ns                    node ns                        backend ns
    c-node ------------------ n-client   n-back ------------------ b-node
    10.233.1.2/24          10.233.1.1/24 10.233.2.1/24          10.233.2.2/24
    pktgen_live (XDP_TX)     GRO on                            sink (XDP: count, drop)

Every veth has a queue per CPU, transmit queue i used by CPU i. The generator (pktgen_live)
runs a thread on each CPU that sends live frames with BPF_PROG_RUN +
BPF_F_TEST_XDP_LIVE_FRAMES out of c-node, each CPU its own share of XLIVE_FLOWS source ports
(a flow stays on one CPU, as with RSS). n-client has GRO on, so the veth takes those frames
without an XDP program of its own (vipd's program takes that place in path (c)). The
backend's sink counts and drops UDP to port 9 and passes everything else. The figure is what
the sink counted per second of sending: delivered Mpps, not sent.

Each CPU runs generator, node and sink for its packets in turn (the XDP_TX flush runs the
receiving softirqs inline), so the rate is the CPUs over the whole per-packet cost, and the
generator's and sink's share of it compresses every ratio. Two calibration paths in the same
run show how much: (0) the sink on n-client, dropping at the node's ingress (the fixed cost:
generator, a veth hop, the drop), and (f) a minimal XDP forwarder on n-client (bpf_fib_lookup,
TTL, MACs, bpf_redirect: sink.bpf.c's fwd), the most any XDP forwarder can show here.
"node ns" is the CPU time a packet costs beyond path (0), the node's own work.

Paths (client -> backend address unless said):
  (0), (f) as above;
  (a) routing:  the node routes;
  (b) nft DNAT: client -> NFT_VIP:9, the node DNATs to the backend and masquerades (the same
                job as fullnat); the table exists only while (b) runs;
  (c) vipd:     client -> XDP_VIP:9, `vipd --dataplane xdp --adapter n-client` in the node,
                fullnat; the client's default route takes the VIP to the node.
The UDP runs go round-robin, XLIVE_ROUNDS rounds of XLIVE_SECONDS / XLIVE_ROUNDS a path, so
load from elsewhere on the machine falls on every path alike. vipd starts once and keeps
running; for the other paths its program on n-client gives way to theirs (or none) and is put
back from its pin for (c). Its program stays on n-back throughout (only the backend's
traffic to the node enters there).

TCP: iperf3, one stream for XLIVE_TCP_SECONDS a path (port 5201); (a) and (b) before vipd
starts, (c) after. On veth every XDP program costs GSO/checksum offload (and the veths run
with tx checksum offload off so XDP sees complete checksums): reported without target.

Figures are reported, never asserted. The exit status is non-zero if the benchmark cannot
run or a path cannot be measured (it delivers nothing, vipd does not start).
Environment: XLIVE_SECONDS (5 a path), XLIVE_ROUNDS (5), XLIVE_FLOWS (1024 source ports),
XLIVE_TCP_SECONDS (5; 0 skips iperf3), VIPD (default $BUILDDIR/vipd), BUILDDIR (programs
built into $BUILDDIR/tests/bench; default a temporary directory), SRCDIR. Needs root, clang,
bpftool, libbpf, nft, iperf3, curl, nsenter."""
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from bpfmaps import percpu_sum  # noqa: E402

SRCDIR = os.path.abspath(
    os.environ.get("SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("BUILDDIR")
VIPD = os.environ.get("VIPD") or (os.path.join(BUILDDIR, "vipd") if BUILDDIR else "vipd")
SECONDS = float(os.environ.get("XLIVE_SECONDS", "5"))
ROUNDS = max(1, int(os.environ.get("XLIVE_ROUNDS", "5")))
FLOWS = int(os.environ.get("XLIVE_FLOWS", "1024"))
TCP_SECONDS = int(os.environ.get("XLIVE_TCP_SECONDS", "5"))

CLIENT_IP = "10.233.1.2"
NODE_C_IP = "10.233.1.1"
NODE_B_IP = "10.233.2.1"
BACKEND_IP = "10.233.2.2"
NFT_VIP = "10.233.100.1"
XDP_VIP = "10.233.100.2"
SINK_PORT = 9        # sink.bpf.c's SINK_PORT
TCP_PORT = 5201
SPORT_BASE = 10000
API_PORT = 10001     # on the node namespace's own loopback
NCPU = os.cpu_count() or 1
XDP_ATTACHED_DRV = 1  # ip -j's xdp.mode for native XDP

# Measured on this machine kind (2 cores shared by generator, node and sink).
ANCHORS = "XDP redirect forwarder 4.25 Mpps, plain routing 1.05 Mpps, nftables DNAT 0.89 Mpps"
TARGET_VS_ROUTING = 3.5
TARGET_VS_NFT = 4.0

PATHS = ("0", "f", "a", "b", "c")
NAMES = {"0": "(0) drop at the node's ingress", "f": "(f) minimal XDP forwarder",
         "a": "(a) plain routing", "b": "(b) nftables DNAT + masquerade",
         "c": "(c) vipd XDP fullnat"}
DST = {"0": BACKEND_IP, "f": BACKEND_IP, "a": BACKEND_IP, "b": NFT_VIP, "c": XDP_VIP}

NFT_RULES = f"""
table ip xlive {{
	chain pre {{
		type nat hook prerouting priority dstnat;
		ip daddr {NFT_VIP} udp dport {SINK_PORT} dnat to {BACKEND_IP}:{SINK_PORT}
		ip daddr {NFT_VIP} tcp dport {TCP_PORT} dnat to {BACKEND_IP}:{TCP_PORT}
	}}
	chain post {{
		type nat hook postrouting priority srcnat;
		oifname "n-back" ip daddr {BACKEND_IP} masquerade
	}}
}}
"""

T0 = time.time()


class BenchError(Exception):
    pass


def log(msg):
    print(f"# {msg}", file=sys.stderr, flush=True)


def sh(argv, timeout=30, check=True, input=None):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"{' '.join(argv)}: {e}") from e
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


class Topology:
    def __init__(self):
        self.tag = "xlive-" + secrets.token_hex(3)
        self.client, self.node, self.backend = (f"{self.tag}-{n}"
                                                for n in ("client", "node", "backend"))
        self.made = []

    def ns(self, ns, *argv, **kw):
        return sh(["ip", "netns", "exec", ns] + list(argv), **kw)

    def ip(self, ns, *args):
        return sh(["ip", "-n", ns] + list(args)).stdout

    def mac(self, ns, dev):
        return json.loads(self.ip(ns, "-j", "link", "show", "dev", dev))[0]["address"]

    def xdp(self, ns, dev):
        """(program id, attach mode) of the XDP program on dev; (None, None) if none."""
        info = json.loads(self.ip(ns, "-j", "-d", "link", "show", "dev", dev))[0]
        x = info.get("xdp") or {}
        return x.get("prog", {}).get("id"), x.get("mode")

    def veth(self, ns_a, a, ns_b, b):
        q = ["numtxqueues", str(NCPU), "numrxqueues", str(NCPU)]
        sh(["ip", "link", "add", a, "netns", ns_a] + q + ["type", "veth", "peer", "name", b,
                                                          "netns", ns_b] + q)
        for ns, dev in ((ns_a, a), (ns_b, b)):
            # XDP on the receiving end needs complete checksums (iperf3's TCP).
            self.ns(ns, "ethtool", "-K", dev, "tx", "off")
            # Transmit queue i from CPU i: each CPU feeds its own receive queue and NAPI.
            for i in range(NCPU):
                self.ns(ns, "sh", "-c", f"echo {1 << i:x} > /sys/class/net/{dev}/queues/"
                        f"tx-{i}/xps_cpus")

    def build(self, sink_obj):
        for ns in (self.client, self.node, self.backend):
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
            self.ip(ns, "link", "set", "lo", "up")
            self.ns(ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0",
                    "net.ipv4.conf.default.rp_filter=0", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1")
        self.ns(self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.veth(self.client, "c-node", self.node, "n-client")
        self.veth(self.node, "n-back", self.backend, "b-node")
        # A veth takes XDP_TX'd or redirected frames only with NAPI on its receiving end: GRO
        # on gives it that without an XDP program in the baselines' path. c-node: vipd
        # redirects the backend's TCP replies into n-client in path (c).
        self.ns(self.node, "ethtool", "-K", "n-client", "gro", "on")
        self.ns(self.client, "ethtool", "-K", "c-node", "gro", "on")
        for ns, dev, addr in ((self.client, "c-node", CLIENT_IP),
                              (self.node, "n-client", NODE_C_IP),
                              (self.node, "n-back", NODE_B_IP),
                              (self.backend, "b-node", BACKEND_IP)):
            self.ip(ns, "addr", "add", f"{addr}/24", "dev", dev)
            self.ip(ns, "link", "set", dev, "up")
        self.ip(self.client, "route", "add", "default", "via", NODE_C_IP)
        self.ip(self.backend, "route", "add", "default", "via", NODE_B_IP)
        # Permanent neighbours: no packet of a run waits for ARP (or is passed up by XDP).
        macs = {(ns, dev): self.mac(ns, dev) for ns, dev in (
            (self.client, "c-node"), (self.node, "n-client"), (self.node, "n-back"),
            (self.backend, "b-node"))}
        for ns, addr, dev, peer in (
                (self.client, NODE_C_IP, "c-node", (self.node, "n-client")),
                (self.node, CLIENT_IP, "n-client", (self.client, "c-node")),
                (self.node, BACKEND_IP, "n-back", (self.backend, "b-node")),
                (self.backend, NODE_B_IP, "b-node", (self.node, "n-back"))):
            self.ip(ns, "neigh", "replace", addr, "lladdr", macs[peer], "dev", dev,
                    "nud", "permanent")
        self.ip(self.backend, "link", "set", "dev", "b-node", "xdpdrv", "obj", sink_obj,
                "sec", "xdp")
        self.client_mac = macs[self.client, "c-node"]
        self.gw_mac = macs[self.node, "n-client"]

    def destroy(self):
        for ns in reversed(self.made):
            sh(["ip", "netns", "del", ns], check=False)
        self.made = []


class Sink:
    """The counter of the sink program attached to dev (read by map id through bpftool)."""

    def __init__(self, topo, ns, dev):
        prog, _ = topo.xdp(ns, dev)
        if prog is None:
            raise BenchError(f"no sink attached to {dev}")
        info = json.loads(sh(["bpftool", "-j", "prog", "show", "id", str(prog)]).stdout)
        self.map_id = None
        for m in info.get("map_ids") or []:
            minfo = json.loads(sh(["bpftool", "-j", "map", "show", "id", str(m)]).stdout)
            if minfo.get("name") == "sink_count":
                self.map_id = m
        if self.map_id is None:
            raise BenchError(f"{dev}'s program {prog} has no sink_count map")

    def read(self):
        out = sh(["bpftool", "-j", "map", "dump", "id", str(self.map_id)]).stdout
        return sum(percpu_sum(json.loads(out)).values())


def measure(topo, pktgen, sink, dst, seconds):
    """(frames delivered, frames sent, seconds of sending) of one pktgen_live run to dst:9."""
    before = sink.read()
    r = topo.ns(topo.client, pktgen, "--dev", "c-node", "--src-mac", topo.client_mac,
                "--dst-mac", topo.gw_mac, "--src", CLIENT_IP, "--dst", dst, "--dport",
                str(SINK_PORT), "--sport-base", str(SPORT_BASE), "--sports", str(FLOWS),
                "--seconds", f"{seconds:.3f}", "--threads", str(NCPU), timeout=seconds + 30)
    delivered = sink.read() - before
    m = re.search(r"sent=(\d+) seconds=([0-9.]+)", r.stdout)
    if not m:
        raise BenchError(f"pktgen_live said: {r.stdout.strip()} {r.stderr.strip()}")
    return delivered, int(m.group(1)), float(m.group(2))


def iperf(topo, dst, procs):
    """Gbit/s of one iperf3 TCP stream from the client to dst:TCP_PORT, or why not."""
    if TCP_SECONDS <= 0:
        return "skipped"
    if shutil.which("iperf3") is None:
        return "iperf3 not installed"
    srv = subprocess.Popen(["ip", "netns", "exec", topo.backend, "iperf3", "-s", "-1", "-p",
                            str(TCP_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(srv)
    try:
        deadline = time.time() + 5
        while f":{TCP_PORT}" not in topo.ns(topo.backend, "ss", "-Hltn").stdout:
            if time.time() > deadline or srv.poll() is not None:
                return "iperf3 server did not start"
            time.sleep(0.05)
        r = topo.ns(topo.client, "iperf3", "-J", "-c", dst, "-p", str(TCP_PORT), "-t",
                    str(TCP_SECONDS), "--connect-timeout", "3000", timeout=TCP_SECONDS + 20,
                    check=False)
        try:
            res = json.loads(r.stdout)
        except ValueError:
            return f"iperf3 failed: {r.stderr.strip() or r.stdout[:200]}"
        try:
            return res["end"]["sum_received"]["bits_per_second"] / 1e9
        except (KeyError, TypeError):
            return f"iperf3 failed: {res.get('error') if isinstance(res, dict) else res}"
    finally:
        stop(srv, 3)


def stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tail(path, n=8):
    try:
        with open(path, "rb") as f:
            return " | ".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class NodeVipd:
    """vipd in the node namespace, XDP plane on n-client, one UDP and one TCP fullnat load
    balancer on XDP_VIP with the backend behind them."""

    def __init__(self, topo, work, pin_dir, procs):
        self.topo, self.pin_dir = topo, pin_dir
        self.log = os.path.join(work, "vipd.log")
        if not os.access(VIPD, os.X_OK) and shutil.which(VIPD) is None:
            raise BenchError(f"no vipd at {VIPD} (set VIPD or BUILDDIR)")
        cfg = os.path.join(work, "vipd.json")
        lbs = [{"name": f"xlive-{proto}", "vip": XDP_VIP, "port": port, "protocol": proto,
                "forwarding": "fullnat",
                "backends": [{"ip": BACKEND_IP, "port": port, "weight": 1}]}
               for proto, port in (("udp", SINK_PORT), ("tcp", TCP_PORT))]
        with open(cfg, "w") as f:
            json.dump({"loadbalancers": lbs}, f)
        state = os.path.join(work, "state")
        os.makedirs(state, exist_ok=True)
        # nsenter, not ip netns exec: vipd pins into the host's /sys/fs/bpf.
        argv = self.nsenter([VIPD, "--foreground", "--dataplane", "xdp", "--adapter",
                             "n-client", "--bpf-pin-dir", pin_dir, "--api-listen",
                             f"127.0.0.1:{API_PORT}", "--state-dir", state, "-c", cfg])
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT)
        procs.append(self.proc)
        deadline = time.time() + 15
        while True:
            if self.proc.poll() is not None:
                raise BenchError(f"vipd exited {self.proc.returncode}: {tail(self.log)}")
            healthy = topo.ns(topo.node, "curl", "-sf", "-m", "1",
                              f"http://127.0.0.1:{API_PORT}/healthz", check=False)
            progs = [topo.xdp(topo.node, d) for d in ("n-client", "n-back")]
            if healthy.returncode == 0 and all(p for p, _ in progs):
                break
            if time.time() > deadline:
                raise BenchError("vipd did not answer /healthz with its program on n-client "
                                 f"and n-back within 15 s: {tail(self.log)}")
            time.sleep(0.1)
        if any(mode != XDP_ATTACHED_DRV for _, mode in progs):
            raise BenchError(f"vipd's program is not in native mode: {progs}")

    def nsenter(self, argv):
        return ["nsenter", f"--net=/run/netns/{self.topo.node}"] + argv

    def reattach(self):
        """Puts vipd's program back on n-client from its pin (another one may be there)."""
        sh(self.nsenter(["bpftool", "net", "attach", "xdpdrv", "pinned",
                         os.path.join(self.pin_dir, "prog"), "dev", "n-client", "overwrite"]))

    def counters(self):
        """vipd's non-zero drop/event counters (see vipd_bpf.h), or why not."""
        r = sh(["bpftool", "-j", "map", "dump", "pinned", os.path.join(self.pin_dir,
                                                                        "counters")],
               check=False)
        if r.returncode != 0:
            return r.stderr.strip()
        return {k: v for k, v in percpu_sum(json.loads(r.stdout or "[]")).items() if v}


def build(out):
    r = sh(["bash", os.path.join(SRCDIR, "tests", "bench", "build_xdp_live.sh"), out],
           timeout=180, check=False)
    if r.returncode != 0:
        raise BenchError(f"build_xdp_live.sh failed: {r.stderr.strip()[-2000:]}")
    return os.path.join(out, "pktgen_live"), os.path.join(out, "sink.bpf.o")


def ratio(x, base):
    return f"{x / base:.2f}x" if x and base else "-"


def report(res, tcp, errors):
    mpps = {k: r["delivered"] / r["secs"] / 1e6 for k, r in res.items()
            if k not in errors and r["secs"] > 0 and r["delivered"] > 0}
    # CPU time a packet costs beyond path (0): every CPU is busy for the whole run.
    node_ns = {k: NCPU * 1e3 / v - NCPU * 1e3 / mpps["0"] for k, v in mpps.items()
               if "0" in mpps and k != "0"}
    speed = {k: 1 / v for k, v in node_ns.items() if v > 0}
    a, b = mpps.get("a"), mpps.get("b")
    print(f"xdp_live: 64-byte UDP frames, client -- node -- backend (XDP drop sink), {FLOWS} "
          f"flows ({FLOWS // NCPU} source ports a CPU), {SECONDS:g} s a path in {ROUNDS} "
          f"rounds; {NCPU} CPUs, each running generator, node and sink in turn")
    print(f"{'path':31} {'Mpps':>7} {'rounds':>13} {'sent':>7} {'x routing':>9} {'x nft':>6} "
          f"{'node ns':>7} {'node x routing':>14} {'x nft':>6} {'TCP Gbit/s':>10}")
    for k in PATHS:
        if k not in mpps:
            print(f"{NAMES[k]:31} not measured: {errors.get(k, 'delivered nothing')}")
            continue
        r = res[k]
        span = f"{min(r['rounds']):.2f}-{max(r['rounds']):.2f}"
        t = tcp.get(k, "")
        t = f"{t:.2f}" if isinstance(t, float) else str(t)
        ns = f"{node_ns[k]:.0f}" if k in node_ns else "-"
        print(f"{NAMES[k]:31} {mpps[k]:7.3f} {span:>13} {r['sent'] / r['secs'] / 1e6:7.3f} "
              f"{ratio(mpps[k], a):>9} {ratio(mpps[k], b):>6} {ns:>7} "
              f"{ratio(speed.get(k), speed.get('a')):>14} "
              f"{ratio(speed.get(k), speed.get('b')):>6} {t:>10}")
    print(f"anchors (this machine kind, generator, node and sink sharing the CPUs): {ANCHORS}")
    c = mpps.get("c")
    if c and a and b:
        ra, rb = c / a, c / b
        print(f"target: vipd fullnat >= {TARGET_VS_ROUTING}x plain routing: {ra:.2f}x "
              f"({'met' if ra >= TARGET_VS_ROUTING else 'NOT met'}); >= {TARGET_VS_NFT}x "
              f"nftables DNAT: {rb:.2f}x ({'met' if rb >= TARGET_VS_NFT else 'NOT met'})")
        f = mpps.get("f")
        if f:
            print(f"the minimal XDP forwarder (f) reaches {f / a:.2f}x routing and {f / b:.2f}x "
                  f"nft DNAT here; vipd delivers {100 * c / f:.0f}% of its rate")
    else:
        print(f"target: vipd fullnat >= {TARGET_VS_ROUTING}x plain routing and >= "
              f"{TARGET_VS_NFT}x nftables DNAT: not measured")
    print(f"TCP: iperf3, 1 stream, {TCP_SECONDS} s a path; reported only (native XDP on veth "
          "costs GSO/checksum offload)")


def run(work, procs, pin_dir, topo):
    out = os.path.join(BUILDDIR, "tests", "bench") if BUILDDIR else os.path.join(work, "bin")
    pktgen, sink_obj = build(out)
    topo.build(sink_obj)
    sink = Sink(topo, topo.backend, "b-node")
    res = {k: {"delivered": 0, "sent": 0, "secs": 0.0, "rounds": []} for k in PATHS}
    tcp, errors = {}, {}

    def nft(on):
        if on:
            topo.ns(topo.node, "nft", "-f", "-", input=NFT_RULES)
        else:
            topo.ns(topo.node, "nft", "delete", "table", "ip", "xlive")

    def on_ingress(sec):
        if sec:
            topo.ip(topo.node, "-force", "link", "set", "dev", "n-client", "xdpdrv", "obj",
                    sink_obj, "sec", sec)
        else:
            topo.ip(topo.node, "link", "set", "dev", "n-client", "xdpdrv", "off")

    tcp["a"] = iperf(topo, BACKEND_IP, procs)
    nft(True)
    tcp["b"] = iperf(topo, NFT_VIP, procs)
    nft(False)
    vipd = None
    try:
        vipd = NodeVipd(topo, work, pin_dir, procs)
        tcp["c"] = iperf(topo, XDP_VIP, procs)
    except BenchError as e:
        errors["c"] = str(e)

    for _ in range(ROUNDS):
        for k in PATHS:
            if k in errors:
                continue
            counter = sink
            try:
                if k == "0":
                    on_ingress("xdp")
                    counter = Sink(topo, topo.node, "n-client")
                elif k == "f":
                    on_ingress("xdp_fwd")
                elif k in ("a", "b"):
                    on_ingress(None)
                    if k == "b":
                        nft(True)
                elif vipd.proc.poll() is not None:
                    raise BenchError(f"vipd exited {vipd.proc.returncode}: {tail(vipd.log)}")
                else:
                    vipd.reattach()
                try:
                    d, s, secs = measure(topo, pktgen, counter, DST[k], SECONDS / ROUNDS)
                finally:
                    if k == "b":
                        nft(False)
            except BenchError as e:
                errors[k] = str(e)
                continue
            r = res[k]
            r["delivered"] += d
            r["sent"] += s
            r["secs"] += secs
            r["rounds"].append(d / secs / 1e6)
    if vipd is not None:
        counters = vipd.counters()
        if counters:
            log(f"vipd's counters after (c) (indexes as in vipd_bpf.h): {counters}")
        if "c" not in errors and res["c"]["delivered"] <= 0:
            log(f"vipd's log: {tail(vipd.log)}")
        stop(vipd.proc)
    report(res, tcp, errors)
    return [f"{NAMES[k]}: {errors.get(k, 'delivered nothing')}" for k in PATHS
            if k in errors or res[k]["delivered"] <= 0]


def main():
    # timeout(1) stops with SIGTERM: unwind so the finally below cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        print("bench xdp_live: needs root", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="xlive-")
    topo = Topology()
    pin_dir = f"/sys/fs/bpf/{topo.tag}"
    procs = []
    try:
        failed = run(work, procs, pin_dir, topo)
    except BenchError as e:
        print(f"bench xdp_live: {e}", file=sys.stderr)
        return 1
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        topo.destroy()
        shutil.rmtree(pin_dir, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        log(f"wall time {time.time() - T0:.1f} s")
    for f in failed:
        print(f"bench xdp_live: {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
