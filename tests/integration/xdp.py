"""vipd's XDP data plane end to end, in network namespaces this test makes (tests/lib/netns.py):
a client, a node running `vipd --dataplane xdp`, three backends on the node's L2 segment
serving TCP and UDP with their own name. For fullnat, nat and dsr, over IPv4 and IPv6:
connections spread by weight, per-backend counters, active connection counts (held open,
closed, drained), drain and removal with a live connection, kill -9 and restart of vipd
during a transfer (pinned maps adopted), and non-VIP traffic to and through the node."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import VIPD, Vipd, done, ok, tmpdir  # noqa: E402
import netns  # noqa: E402
from bpfmaps import percpu_sum  # noqa: E402
from netns import Topology, family_of, ping, xdp_attached  # noqa: E402

MODES = ("fullnat", "nat", "dsr")
WEIGHTS = (1, 1, 2)       # b1, b2, b3
N_FLOWS = 600             # per spread check: a share's 10-point tolerance is ~5 sigma
TOLERANCE = 10.0          # percentage points
VIP_PORT = 80
BACKEND_PORT = {"fullnat": 8080, "nat": 8080, "dsr": 80}  # DSR keeps the VIP's port
VIPS = {"fullnat": {4: "10.231.100.10", 6: "fd00:e2e:f::10"},
        "nat": {4: "10.231.100.20", 6: "fd00:e2e:f::20"},
        "dsr": {4: "10.231.100.30", 6: "fd00:e2e:f::30"}}
REMOVAL = {"fullnat": "delete", "nat": "drain", "dsr": "delete"}
N_HELD = 5                # TCP connections held open for the active connection count
ACTIVE_WAIT = 2.0         # s for active_connections to follow (vipd counts at most once a second)
NODE_PORT = 2222          # a TCP/UDP service of the node itself, not a VIP
API_PORT = 10001
COUNTERS = ["no_backend", "family", "no_snat", "snat_exhausted", "ttl", "no_neigh", "fib_fail",
            "dsr_offlink", "map_full", "snat_reused"]
T0 = time.time()


def ep(addr, port):
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class NodeVipd(Vipd):
    """vipd in the node namespace with the XDP plane, its API on the node's loopback."""

    def __init__(self, topo, pin_dir, state_dir=None, private_sys=False):
        super().__init__([], state_dir=state_dir, port=API_PORT)
        self.topo = topo
        self.pin_dir = pin_dir
        self.private_sys = private_sys

    def argv(self):
        # nsenter keeps the host's /sys/fs/bpf, so the pins are seen; ip netns exec mounts a
        # fresh /sys where they are not, and vipd must find the maps through the program.
        enter = self.topo.node.exec_argv if self.private_sys else self.topo.node.nsenter_argv
        return enter([
            VIPD, "--foreground", "--dataplane", "xdp", "--adapter", Topology.ADAPTER,
            "--bpf-pin-dir", self.pin_dir, "--api-listen", f"127.0.0.1:{self.port}",
            "--state-dir", self.state_dir])

    def conn(self):
        return self.topo.node.http("127.0.0.1", self.port)


# --- traffic -------------------------------------------------------------------------------

def tcp_hello(ns, addr, port, timeout=2.0):
    """(backend name, the source address it saw) from one short TCP connection."""
    with ns.connect(addr, port, timeout) as s, s.makefile("rb") as f:
        name, peer = f.readline().decode().split()
        return name, peer


def udp_socket(ns, addr):
    s = ns.socket(family_of(addr), socket.SOCK_DGRAM)
    s.settimeout(1.0)
    return s


def udp_hello(s, addr, port):
    """(backend name, source seen) for one datagram on socket s; the reply must come from addr."""
    s.sendto(b"hello\n", (addr, port))
    data, src = s.recvfrom(2048)
    if src[0] != addr:
        raise OSError(f"reply from {src[0]}, not {addr}")
    name, peer = data.decode().split()
    return name, peer


def load(kind, ns, addr, port, n, max_s=30):
    """n flows (kind tcp: connections; udp: datagrams from n distinct sockets) to addr:port.
    Returns ({backend: flows}, {source addresses seen}, [errors])."""
    counts, peers, errors, socks = {}, set(), [], []
    deadline = time.time() + max_s
    try:
        for _ in range(n):
            if time.time() > deadline or len(errors) >= 5:
                errors.append("stopped early")
                break
            try:
                if kind == "tcp":
                    name, peer = tcp_hello(ns, addr, port)
                else:
                    s = udp_socket(ns, addr)
                    socks.append(s)  # kept open: every datagram is a flow of its own
                    name, peer = udp_hello(s, addr, port)
            except (OSError, ValueError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                continue
            counts[name] = counts.get(name, 0) + 1
            peers.add(peer)
    finally:
        for s in socks:
            s.close()
    return counts, peers, errors


def wait_serving(kind, ns, addr, port, timeout=5.0):
    """True once addr:port answers; UDP probe sockets are returned to keep their flows."""
    deadline = time.time() + timeout
    keep = []
    while time.time() < deadline:
        try:
            if kind == "tcp":
                tcp_hello(ns, addr, port, timeout=0.5)
            else:
                s = udp_socket(ns, addr)
                keep.append(s)
                s.settimeout(0.5)
                udp_hello(s, addr, port)
            return True, keep
        except (OSError, ValueError):
            time.sleep(0.1)
    return False, keep


def spread_ok(counts, n, names, weights=WEIGHTS):
    total = sum(weights)
    got = [counts.get(b, 0) for b in names]
    good = sum(got) == n and all(abs(100.0 * g / n - 100.0 * w / total) <= TOLERANCE
                                 for g, w in zip(got, weights))
    return good, "/".join(str(g) for g in got)


class Long:
    """A long-lived TCP connection through a VIP; each exchange names the backend that echoed."""

    def __init__(self, ns, addr, port):
        self.s = ns.connect(addr, port, timeout=3.0)
        self.f = self.s.makefile("rb")
        self.backend, self.peer = self.f.readline().decode().split()
        self.n = 0

    def exchange(self):
        self.n += 1
        text = f"ping {self.n}"
        try:
            self.s.sendall(text.encode() + b"\n")
            line = self.f.readline().decode().rstrip("\n")
        except OSError as e:
            return f"error: {e}"
        name, _, echo = line.partition(" ")
        return name if echo == text else f"bad echo {line!r}"

    def close(self):
        self.f.close()
        self.s.close()


class Stream(threading.Thread):
    """Echoes 32 KiB batches of numbered lines through a VIP until stopped, checking each."""

    def __init__(self, ns, addr, port, max_s=25):
        super().__init__(daemon=True)
        self.ns, self.addr, self.port, self.max_s = ns, addr, port, max_s
        self.stop = threading.Event()
        self.bytes = 0
        self.error = None
        self.backend = None
        self.started = threading.Event()

    def run(self):
        try:
            with self.ns.connect(self.addr, self.port, timeout=5.0) as s, s.makefile("rb") as f:
                self.transfer(s, f)
        except (OSError, IndexError) as e:
            self.error = f"{type(e).__name__}: {e} after {self.bytes} bytes"
        finally:
            self.started.set()

    def transfer(self, s, f):
        fill = b"x" * 990
        self.backend = f.readline().split()[0]
        self.started.set()
        prefix = self.backend + b" "
        seq = 0
        deadline = time.time() + self.max_s
        while not self.stop.is_set() and time.time() < deadline:
            lines = [b"%08d %s\n" % (seq + i, fill) for i in range(32)]
            s.sendall(b"".join(lines))
            for want in lines:
                got = f.readline()
                if got != prefix + want:
                    self.error = f"line {seq}: got {got[:40]!r}"
                    return
            seq += len(lines)
            self.bytes += sum(len(x) for x in lines)


# --- vipd's side -------------------------------------------------------------------------------

def counters(pin_dir):
    """vipd's global drop/event counters from the pinned map, summed over CPUs."""
    r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned",
                        os.path.join(pin_dir, "counters")], capture_output=True, text=True,
                       timeout=20)
    if r.returncode != 0:
        return f"bpftool: {r.stderr.strip()}"
    out = {}
    try:
        for key, total in percpu_sum(json.loads(r.stdout)).items():
            if total:
                out[COUNTERS[key] if key < len(COUNTERS) else key] = total
    except (ValueError, KeyError, TypeError) as e:
        return f"cannot parse bpftool output ({e}): {r.stdout[:300]}"
    return out


class diag:
    """What a failing check prints: vipd's counters, the node's XDP stats, vipd's log. Built
    only when printed (vipdtest.ok() formats its detail on failure only)."""

    def __init__(self, topo, v, pin_dir, head=""):
        self.topo, self.v, self.pin_dir, self.head = topo, v, pin_dir, head

    def __str__(self):
        lines = [self.head] if self.head else []
        lines.append(f"counters: {counters(self.pin_dir)}")
        for dev in (Topology.ADAPTER, Topology.LAN_IF):
            r = self.topo.node.run("ethtool", "-S", dev, check=False)
            stats = [x.strip() for x in r.stdout.splitlines()
                     if "xdp" in x and not x.strip().endswith(": 0")]
            lines.append(f"{dev}: {' '.join(stats)}")
        if self.v is not None and self.v.proc is not None:
            lines += ["vipd log (tail):"] + self.v.logs().splitlines()[-12:]
        return "\n".join(lines)


def lb_body(mode, fam, proto, topo):
    return {"name": f"{mode}-{proto}{fam}", "vip": VIPS[mode][fam], "port": VIP_PORT,
            "protocol": proto, "forwarding": mode,
            "backends": [{"ip": b.ip[fam], "port": BACKEND_PORT[mode], "weight": w}
                         for b, w in zip(topo.backends, WEIGHTS)]}


LB_KEY = "load balancer"


def backend_stats(v, lb_uuid):
    """{backend ip: stats dict or None, LB_KEY: the load balancer's own stats} of a load
    balancer, or an error string."""
    st, lb = v.request("GET", f"/loadbalancer/{lb_uuid}")
    if st != 200:
        return f"GET /loadbalancer/{lb_uuid}: {st} {lb}"
    out = {b["ip"]: b.get("stats") for b in lb["backends"]}
    out[LB_KEY] = lb.get("stats")
    return out


def active_of(v, lb_uuid):
    """{backend ip: active_connections, LB_KEY: the load balancer's} or an error string."""
    st = backend_stats(v, lb_uuid)
    if isinstance(st, str):
        return st
    try:
        return {k: s["active_connections"] for k, s in st.items()}
    except (TypeError, KeyError):
        return f"no active_connections in {st}"


def wait_active(v, lb_uuid, want, timeout=ACTIVE_WAIT):
    """Polls the load balancer until want(active_of(...)) holds: (held, last answer, seconds)."""
    t0 = time.time()
    while True:
        got = active_of(v, lb_uuid)
        if not isinstance(got, str) and want(got):
            return True, got, time.time() - t0
        if time.time() - t0 > timeout:
            return False, got, time.time() - t0
        time.sleep(0.1)


def conns_entries(pin_dir):
    """How many flows the pinned conns map holds, or an error string."""
    r = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", os.path.join(pin_dir, "conns")],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return f"bpftool: {r.stderr.strip()}"
    try:
        return len(json.loads(r.stdout))
    except ValueError as e:
        return f"cannot parse bpftool output ({e})"


def walk_timing(v, lb_uuid, pin_dir):
    """Prints what a GET /loadbalancer costs with a fresh walk of conns and from the cache."""
    costs = []
    for _ in range(3):
        time.sleep(1.1)  # past vipd's cache of the count
        t0 = time.perf_counter()
        v.request("GET", f"/loadbalancer/{lb_uuid}")
        t1 = time.perf_counter()
        v.request("GET", f"/loadbalancer/{lb_uuid}")
        costs.append(((t1 - t0) * 1000, (time.perf_counter() - t1) * 1000))
    walk, cached = min(c[0] for c in costs), min(c[1] for c in costs)
    print(f"# active_connections: GET /loadbalancer {walk:.2f} ms with a walk of conns "
          f"({conns_entries(pin_dir)} entries), {cached:.2f} ms from the cache: the walk "
          f"costs ~{max(walk - cached, 0.0):.2f} ms", flush=True)


def active_check(topo, v, mode, fam, lb, timing_pin_dir=None):
    """N_HELD TCP connections held open through the VIP count as active, per backend as they
    went; closing them (FIN) brings every count back to 0. The load balancer has just served
    N_FLOWS short connections, which must not count."""
    vip = VIPS[mode][fam]
    held, errors = [], []
    for _ in range(N_HELD):
        try:
            held.append(Long(topo.client, vip, VIP_PORT))
        except (OSError, ValueError) as e:
            errors.append(f"{type(e).__name__}: {e}")
    want = {b.ip[fam]: sum(h.backend == b.name for h in held) for b in topo.backends}
    want[LB_KEY] = N_HELD
    good, got, took = wait_active(v, lb["uuid"], lambda a: a == want)
    spread = "/".join(str(want[b.ip[fam]]) for b in topo.backends)
    ok(good and not errors, f"{mode}: with {N_HELD} TCP connections held open through "
       f"{ep(vip, VIP_PORT)}, its stats.active_connections is {N_HELD} and the backends' add up "
       f"to it as the connections went ({spread}); the {N_FLOWS} closed before do not count",
       f"errors {errors}; want {want}; got {got}")
    if timing_pin_dir:
        walk_timing(v, lb["uuid"], timing_pin_dir)
    for h in held:
        h.close()
    good, got, took = wait_active(v, lb["uuid"], lambda a: not any(a.values()))
    ok(good, f"{mode}: once those clients close (FIN), active_connections of the IPv{fam} load "
       f"balancer and of each backend fall to 0 within {ACTIVE_WAIT:.0f} s (took {took:.1f} s)",
       got)


def udp_active_check(v, mode, fam, lb, served):
    """UDP has no close: each flow just used counts until it is idle (30 s)."""
    def want(a):
        return a[LB_KEY] >= served and a[LB_KEY] == sum(n for k, n in a.items() if k != LB_KEY)
    good, got, _ = wait_active(v, lb["uuid"], want)
    ok(good and served > 0, f"{mode}: the {served} UDP IPv{fam} flows just used count as active "
       f"connections (load balancer {got.get(LB_KEY) if isinstance(got, dict) else '?'}, the "
       f"sum of its backends')", got)


def stats_grew(before, after, topo, fam, counts):
    """Each backend's connections grew by exactly the flows it served, and the load balancer's
    by all of them; packets and bytes too."""
    if isinstance(before, str) or isinstance(after, str):
        return False, "", f"{before} / {after}"
    conns, pkts, good = [], [], sum(counts.values()) > 0
    l0, l1 = before.get(LB_KEY), after.get(LB_KEY)
    if not l0 or not l1:
        return False, "", f"no load balancer stats: {before} / {after}"
    lb_dc = l1["connections"] - l0["connections"]
    good = good and lb_dc == sum(counts.values()) and l1["packets"] > l0["packets"]
    for b in topo.backends:
        s0, s1 = before.get(b.ip[fam]), after.get(b.ip[fam])
        if not s0 or not s1:
            return False, "", f"no stats for {b.ip[fam]}: {before} / {after}"
        dc = s1["connections"] - s0["connections"]
        dp = s1["packets"] - s0["packets"]
        db = s1["bytes"] - s0["bytes"]
        served = counts.get(b.name, 0)
        good = good and dc == served and dp >= served and db >= 42 * dp
        conns.append(str(dc))
        pkts.append(str(dp))
    return good, f"connections +{'/+'.join(conns)} (load balancer +{lb_dc}), " \
        f"packets +{'/+'.join(pkts)}", \
        f"before {before}\nafter {after}\nserved {counts}"


def main():
    # timeout(1) stops with SIGTERM: unwind so the finally below and atexit clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    topo = Topology(prefix=os.environ.get("VIPD_NETNS_PREFIX", "xe2e-"))
    pin_dir = f"/sys/fs/bpf/vipd-e2e-{topo.tag}"
    v = None
    try:
        v = run(topo, pin_dir)
    except Exception:  # a bug in the test itself: report it, still clean up and end the plan
        ok(False, "the test ran to its end", traceback.format_exc())
    finally:
        if v is not None and v.proc is not None and v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()
        topo.destroy()
        shutil.rmtree(pin_dir, ignore_errors=True)
    print(f"# wall time {time.time() - T0:.1f} s", flush=True)
    done()


def run(topo, pin_dir):
    work = tmpdir("vipd-xdp-e2e-")
    names = [b.name for b in topo.backends]

    # --- topology, servers and plain routing, before vipd -------------------------------
    try:
        obj = netns.build_xdp_pass(work)
        topo.build()
        topo.attach_xdp_pass(obj)
        topo.add_vip_on_backends(VIPS["dsr"][4])
        topo.add_vip_on_backends(VIPS["dsr"][6])
        topo.start_servers(sorted(set(BACKEND_PORT.values())))
        node_srv = topo.serve(topo.node, "node", [NODE_PORT])
        topo.wait_ready([node_srv])
        built = None
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        built = e
    if not ok(built is None, "topology: client, node, lan bridge and 3 backend namespaces "
              "with IPv4+IPv6, xdp_pass on the veth peers, servers started", built):
        return None
    seen = []
    for b in topo.backends:
        for fam in (4, 6):
            try:
                seen.append(tcp_hello(topo.client, b.ip[fam], BACKEND_PORT["nat"]))
            except (OSError, ValueError) as e:
                seen.append((b.name, str(e)))
    ok(seen == [(b.name, topo.CLIENT_IP[f]) for b in topo.backends for f in (4, 6)],
       "plain routing: the client reaches each backend through the node (v4 and v6)", seen)

    # --- vipd --------------------------------------------------------------------------------
    state_dir = tmpdir("vipd-xdp-state-")
    v = NodeVipd(topo, pin_dir, state_dir=state_dir)
    if not ok(v.start(), "vipd --dataplane xdp starts in the node namespace and answers /healthz",
              v.logs() if v.proc else ""):
        return v
    lbs = {}
    created = []
    for mode in MODES:
        for fam in (4, 6):
            for proto in ("tcp", "udp"):
                st, lb = v.request("POST", "/loadbalancer", lb_body(mode, fam, proto, topo))
                created.append((mode, fam, proto, st))
                if st == 201:
                    lbs[mode, fam, proto] = lb
    ok(all(c[3] == 201 for c in created), "12 load balancers created through the API "
       "(fullnat, nat, dsr x IPv4, IPv6 x TCP, UDP; weights 1,1,2)",
       [c for c in created if c[3] != 201])
    time.sleep(0.3)
    progs = {dev: xdp_attached(topo.node, dev) for dev in (Topology.ADAPTER, Topology.LAN_IF)}
    ok(all(progs.values()), f"vipd's program is attached to {Topology.ADAPTER} (adapter) and "
       f"{Topology.LAN_IF} (towards the backends): ids {progs}", diag(topo, v, pin_dir))

    # --- per mode: spread, sources, stats, drain/remove, IPv6 ------------------------------
    for mode in MODES:
        for fam in (4, 6):
            vip = VIPS[mode][fam]
            for proto in ("tcp", "udp"):
                lb = lbs.get((mode, fam, proto))
                if lb is None:
                    ok(False, f"{mode}: {proto.upper()} IPv{fam} load balancer exists")
                    continue
                up, keep = wait_serving(proto, topo.client, vip, VIP_PORT)
                before = backend_stats(v, lb["uuid"])
                counts, peers, errors = {}, set(), ["the VIP never answered"]
                if up:
                    counts, peers, errors = load(proto, topo.client, vip, VIP_PORT, N_FLOWS)
                after = backend_stats(v, lb["uuid"])
                for s in keep:
                    s.close()
                good, got = spread_ok(counts, N_FLOWS, names)
                what = "connections" if proto == "tcp" else "flows"
                ok(up and good and not errors,
                   f"{mode}: {N_FLOWS} {proto.upper()} {what} to {ep(vip, VIP_PORT)} spread 1:1:2 "
                   f"over 3 backends, each share within {TOLERANCE:g} points (got {got})",
                   diag(topo, v, pin_dir, f"answered at all: {up}; errors: {errors[:5]}"))
                want_src = topo.NODE_LAN_IP[fam] if mode == "fullnat" else topo.CLIENT_IP[fam]
                who = "the node" if mode == "fullnat" else "the client"
                ok(peers == {want_src}, f"{mode}: backends see {want_src} ({who}) as the "
                   f"{proto.upper()} IPv{fam} source", peers)
                good, figures, detail = stats_grew(before, after, topo, fam, counts)
                ok(good, f"{mode}: GET /loadbalancer shows per-backend stats of {proto.upper()} "
                   f"IPv{fam} grown by the flows each served ({figures})", detail)
                if proto == "tcp":
                    timing = pin_dir if (mode, fam) == ("fullnat", 4) else None
                    active_check(topo, v, mode, fam, lb, timing)
                else:
                    udp_active_check(v, mode, fam, lb, sum(counts.values()))
            removal_check(topo, v, pin_dir, mode, fam, lbs.get((mode, fam, "tcp")), names)

    # --- kill -9 during a transfer, restart, adoption --------------------------------------
    v = restart_check(topo, v, pin_dir, state_dir, lbs, names)
    if v is not None and v.proc is not None and v.proc.poll() is None:
        v = private_sys_restart(topo, v, pin_dir, state_dir, lbs)

    # --- non-VIP traffic ------------------------------------------------------------------------
    for fam in (4, 6):
        node_ip = topo.NODE_CLIENT_IP[fam]
        ok(ping(topo.client, node_ip, timeout=1.0, tries=3),
           f"non-VIP: the client pings the node ({node_ip})")
        try:
            got = tcp_hello(topo.client, node_ip, NODE_PORT)
        except (OSError, ValueError) as e:
            got = str(e)
        ok(got == ("node", topo.CLIENT_IP[fam]),
           f"non-VIP: TCP to a port of the node that is no VIP ({ep(node_ip, NODE_PORT)})", got)
        b = topo.backends[0]
        try:
            got = tcp_hello(topo.client, b.ip[fam], BACKEND_PORT["nat"])
            s = udp_socket(topo.client, b.ip[fam])
            got = (got, udp_hello(s, b.ip[fam], BACKEND_PORT["nat"]))
            s.close()
        except (OSError, ValueError) as e:
            got = str(e)
        want = ("b1", topo.CLIENT_IP[fam])
        ok(got == (want, want), f"non-VIP: TCP and UDP routed through the node to a backend's own"
           f" address ({ep(b.ip[fam], BACKEND_PORT['nat'])})", got)

    # --- SIGTERM ------------------------------------------------------------------------------
    if v is not None and v.proc is not None and v.proc.poll() is None:
        rc = v.stop()
        still = {dev: xdp_attached(topo.node, dev) for dev in (Topology.ADAPTER, Topology.LAN_IF)}
        try:
            after = tcp_hello(topo.client, VIPS["fullnat"][4], VIP_PORT)[0]
        except (OSError, ValueError) as e:
            after = str(e)
        ok(rc == 0 and all(still.values()) and after in names,
           "vipd exits 0 on SIGTERM and leaves the program attached: the VIP still forwards",
           f"exit {rc}, attached {still}, VIP answer {after}\n" + v.logs()[-1500:])
        r = subprocess.run(topo.node.nsenter_argv([VIPD, "--xdp-unload", "--bpf-pin-dir",
                                                   pin_dir]),
                           capture_output=True, text=True, timeout=60)
        gone = {dev: xdp_attached(topo.node, dev) for dev in (Topology.ADAPTER, Topology.LAN_IF)}
        try:
            routed = tcp_hello(topo.client, topo.backends[0].ip[4], BACKEND_PORT["nat"])[0]
        except (OSError, ValueError) as e:
            routed = str(e)
        ok(r.returncode == 0 and not any(gone.values()) and not os.path.exists(pin_dir)
           and routed == "b1",
           "vipd --xdp-unload detaches the program from both interfaces and removes the pins; "
           "routed traffic still flows", f"exit {r.returncode}: {r.stdout}{r.stderr}\n"
           f"attached {gone}, pins left: {os.path.exists(pin_dir)}, routed: {routed}")
    return v


def removal_check(topo, v, pin_dir, mode, fam, lb, names):
    """A live connection to backend X; X removed (DELETE) or drained; new connections avoid X,
    the live one keeps going; then X is put back."""
    how = REMOVAL[mode]
    vip = VIPS[mode][fam]
    if lb is None:
        ok(False, f"{mode}: {how} check has its IPv{fam} load balancer")
        return
    try:
        live = Long(topo.client, vip, VIP_PORT)
    except (OSError, ValueError) as e:
        ok(False, f"{mode}: a long-lived connection to {ep(vip, VIP_PORT)} opens", e)
        return
    x = live.backend
    bx = next(b for b in lb["backends"] if b["ip"] == topo.backends[names.index(x)].ip[fam])
    path = f"/loadbalancer/{lb['uuid']}/backend/{bx['uuid']}"
    before = v.reconcile_runs()
    if how == "delete":
        st, resp = v.request("DELETE", path)
    else:
        st, resp = v.request("POST", path + "/drain")
    synced = v.wait_reconciled(before=before)  # the maps follow on the next reconcile pass
    counts, _, errors = load("tcp", topo.client, vip, VIP_PORT, 120)
    echoes = [live.exchange() for _ in range(3)]
    got = "/".join(str(counts.get(n, 0)) for n in names)
    ok(st == 200 and synced and counts.get(x, 0) == 0 and sum(counts.values()) == 120
       and not errors and echoes == [x] * 3,
       f"{mode}: after {'DELETE of' if how == 'delete' else 'draining'} backend {x}, 120 new "
       f"connections to {ep(vip, VIP_PORT)} avoid it (got {got}) while a connection opened "
       f"before still exchanges data with {x}",
       diag(topo, v, pin_dir,
            f"API {st} {resp}; errors {errors[:5]}; live connection answers {echoes}; "
            f"reconcile pass seen {synced}"))
    if how == "drain":
        good, got, _ = wait_active(v, lb["uuid"], lambda a: a.get(bx["ip"]) == 1
                                   and a[LB_KEY] == 1)
        ok(good, f"{mode}: the drained backend {x} shows active_connections 1 while the "
           f"connection opened before stays open (load balancer 1; the 120 new ones closed)", got)
    else:
        good, got, _ = wait_active(v, lb["uuid"], lambda a: a[LB_KEY] == 1)
        ok(good, f"{mode}: after the DELETE of {x} the load balancer still counts the connection "
           f"held open to it: active_connections 1", got)
    # Put X back so the restart checks see every backend again.
    before = v.reconcile_runs()
    if how == "delete":
        st, resp = v.request("POST", f"/loadbalancer/{lb['uuid']}/backend",
                             {"ip": bx["ip"], "port": bx["port"], "weight": bx["weight"]})
        if st == 201:
            lb["backends"] = [b for b in lb["backends"] if b["uuid"] != bx["uuid"]] + [resp]
    else:
        st, resp = v.request("POST", path + "/undrain")
    synced = v.wait_reconciled(before=before)
    counts, _, errors = load("tcp", topo.client, vip, VIP_PORT, 120)
    ok(st in (200, 201) and synced and counts.get(x, 0) > 0 and not errors,
       f"{mode}: {x} {'added back' if how == 'delete' else 'undrained'}, new connections reach it"
       f" again (got {'/'.join(str(counts.get(n, 0)) for n in names)})",
       f"API {st} {resp}; errors {errors[:5]}; reconcile pass seen {synced}")
    echo = live.exchange()
    ok(echo == x, f"{mode}: the connection opened before the {how} still talks to {x}", echo)
    live.close()
    good, got, took = wait_active(v, lb["uuid"], lambda a: not any(a.values()))
    ok(good, f"{mode}: once that connection closes, active_connections of {x} and of the load "
       f"balancer fall to 0 (took {took:.1f} s)", got)


def private_sys_restart(topo, v, pin_dir, state_dir, lbs):
    """kill -9, then a vipd under ip netns exec, whose /sys/fs/bpf holds none of the pins: it
    must adopt the maps of the program attached to the adapter."""
    lb = lbs.get(("fullnat", 4, "tcp"))
    try:
        live = Long(topo.client, VIPS["fullnat"][4], VIP_PORT)
    except (OSError, ValueError) as e:
        live = e
    before = backend_stats(v, lb["uuid"]) if lb else "no lb"
    v.kill9()
    v3 = NodeVipd(topo, pin_dir, state_dir=state_dir, private_sys=True)
    started = v3.start()
    log = v3.logs() if v3.proc else ""
    m = re.search(r"maps_adopted=(\d+)", log)
    ok(started and m is not None and int(m.group(1)) > 0,
       f"a vipd started with ip netns exec (pins out of sight) adopts the maps of the attached "
       f"program ({m.group(0) if m else 'no adoption logged'})", log[-2000:])
    if isinstance(live, Exception):
        ok(False, "fullnat: a connection opened before the ip netns exec restart", live)
    else:
        echoes = [live.exchange() for _ in range(2)]
        ok(echoes == [live.backend] * 2, f"fullnat: a connection opened before that restart keeps"
           f" its backend {live.backend}", echoes)
        live.close()
    after = backend_stats(v3, lb["uuid"]) if lb and started else "no stats"
    ok(isinstance(before, dict) and isinstance(after, dict) and
       after[LB_KEY]["connections"] >= before[LB_KEY]["connections"] > 0,
       "the counters carried on through the ip netns exec restart", f"{before}\n{after}")
    return v3


def restart_check(topo, v, pin_dir, state_dir, lbs, names):
    vip = VIPS["fullnat"][4]
    lives = {}
    for mode in MODES:
        for fam in (4, 6):
            try:
                lives[mode, fam] = Long(topo.client, VIPS[mode][fam], VIP_PORT)
            except (OSError, ValueError) as e:
                lives[mode, fam] = e
    stats_lb = lbs.get(("fullnat", 4, "tcp"))
    before = backend_stats(v, stats_lb["uuid"]) if stats_lb else "no lb"
    stream = Stream(topo.client, vip, VIP_PORT)
    stream.start()
    stream.started.wait(5)
    time.sleep(1.0)
    at_kill = stream.bytes
    v.kill9()
    time.sleep(1.5)
    at_start = stream.bytes
    v2 = NodeVipd(topo, pin_dir, state_dir=state_dir)
    started = v2.start()
    time.sleep(1.0)
    stream.stop.set()
    stream.join(15)
    ok(stream.backend is not None and stream.error is None and not stream.is_alive()
       and at_start > at_kill,
       f"fullnat: a TCP stream through {ep(vip, VIP_PORT)} survives kill -9 of vipd and the "
       f"restart ({stream.bytes >> 10} KiB echoed by {(stream.backend or b'?').decode()}, "
       f"{(at_start - at_kill) >> 10} KiB while no vipd ran)",
       diag(topo, v2, pin_dir, f"error {stream.error}; alive {stream.is_alive()}"))
    progs = {dev: xdp_attached(topo.node, dev) for dev in (Topology.ADAPTER, Topology.LAN_IF)}
    ok(started and all(progs.values()),
       f"the restarted vipd (same pin dir and state dir) answers /healthz, program attached "
       f"{progs}", v2.logs() if v2.proc else "")
    if not started:
        return v2
    for (mode, fam), live in lives.items():
        if isinstance(live, Exception):
            ok(False, f"{mode}: a long-lived IPv{fam} connection opened before the kill", live)
            continue
        echoes = [live.exchange() for _ in range(2)]
        ok(echoes == [live.backend] * 2,
           f"{mode}: an IPv{fam} connection opened before the kill keeps its backend "
           f"{live.backend} after the restart", echoes)
        live.close()
    after = backend_stats(v2, stats_lb["uuid"]) if stats_lb else "no lb"
    if isinstance(before, dict) and isinstance(after, dict):
        c0 = sum((s or {}).get("connections", 0) for s in before.values())
        c1 = sum((s or {}).get("connections", 0) for s in after.values())
        ok(c0 > 0 and c1 >= c0 + 1, f"the restarted vipd adopted the pinned maps: fullnat "
           f"counters went on from {c0} to {c1} connections, not reset", f"{before}\n{after}")
    else:
        ok(False, "the restarted vipd reports stats", f"{before}\n{after}")
    for mode in MODES:
        counts, _, errors = load("tcp", topo.client, VIPS[mode][4], VIP_PORT, N_FLOWS)
        good, got = spread_ok(counts, N_FLOWS, names)
        ok(good and not errors, f"{mode}: after the restart {N_FLOWS} new TCP connections spread "
           f"1:1:2, each share within {TOLERANCE:g} points (got {got})",
           diag(topo, v2, pin_dir, f"errors {errors[:5]}"))
    return v2


if __name__ == "__main__":
    main()
