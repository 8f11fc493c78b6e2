"""GET /metrics end to end, parsed by a real Prometheus text parser (prometheus_client's, the
Debian package python3-prometheus-client), with traffic through vipd's XDP plane.

Topology: tests/lib/netns.py's (a client, a node running `vipd --dataplane xdp`, three
backends on the node's bridge; xdp_pass on the veth peers, TX checksum offload off). One load
balancer "web" (nat, TCP health check) over the three backends, and one "dead" whose backends
listen nowhere, so its VIP is not announced. Checks: the format and content type, build info
and process series, one connection moving exactly the counters of the backend that served it,
a burst moving the load balancer's, probe histograms and results, and the health gauges
flipping when a backend's server is killed by PID. A second vipd (no data plane) with
--api-token-file checks that /metrics asks for the token like every endpoint but /healthz.

Run: BUILDDIR=build/plain python3 tests/integration/metrics.py   (VIPD overrides BUILDDIR/vipd)
"""
import math
import os
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.dont_write_bytecode = True
os.environ.setdefault("VIPD", os.path.join(
    os.environ.get("BUILDDIR", os.path.join(TOP, "build", "plain")), "vipd"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # tests/run's python3 may be another interpreter than Debian's, whose package this is.
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families
from vipdtest import VIPD, Vipd, done, ok, tmpdir  # noqa: E402
import netns  # noqa: E402
from netns import Topology  # noqa: E402
from health import NsVipd  # noqa: E402
from health_topo import HealthTopo, hello  # noqa: E402

VIP, DEAD_VIP = "10.231.100.10", "10.231.100.11"
PORT, BACKEND_PORT, DEAD_PORT = 80, 8080, 8099
HC = {"type": "tcp", "interval": "200ms", "timeout": "200ms", "fail_count": 2, "rise_count": 2}
T0 = time.time()


def wait_for(cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


class Scrape:
    """One GET /metrics: the raw response and the samples as the parser read them."""

    def __init__(self, conn):
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        self.status = r.status
        self.ctype = r.getheader("Content-Type", "")
        self.text = r.read().decode()
        conn.close()
        self.error = None
        self.families = []
        self.samples = {}  # (name, frozenset(labels)) -> value
        self.dups = []
        try:
            self.families = list(text_string_to_metric_families(self.text))
        except Exception as e:  # the parser's verdict is the check
            self.error = f"{type(e).__name__}: {e}"
        for fam in self.families:
            for s in fam.samples:
                key = (s.name, frozenset(s.labels.items()))
                if key in self.samples:
                    self.dups.append(key)
                self.samples[key] = s.value

    def get(self, name, **labels):
        """The value of the one sample with that name whose labels include these; None if
        none, a list if several."""
        hits = [v for (n, ls), v in self.samples.items()
                if n == name and set(labels.items()) <= set(ls)]
        if not hits:
            return None
        return hits[0] if len(hits) == 1 else hits

    def family(self, name):
        return next((f for f in self.families if f.name == name), None)


def backend_labels(b):
    return {"lb": "web", "vip": VIP, "port": str(PORT), "protocol": "tcp",
            "backend": f"{b.ip[4]}:{BACKEND_PORT}"}


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    topo = Topology(prefix="pm-")
    pin_dir = f"/sys/fs/bpf/vipd-{topo.tag}"
    tok_vipd = None
    try:
        obj = netns.build_xdp_pass(tmpdir("vipd-metrics-"))
        topo.build()
        topo.attach_xdp_pass(obj)
        topo.start_servers([BACKEND_PORT])
        ok(True, "topology: client, node, lan bridge, 3 backends, xdp_pass, servers up")
        vipd = NsVipd(topo.node, ["--dataplane", "xdp", "--adapter", Topology.ADAPTER,
                                  "--bpf-pin-dir", pin_dir], nsenter=True)
        if not ok(vipd.start(), "vipd --dataplane xdp starts in the node", vipd.logs()[-2000:]):
            return
        scrape = lambda: Scrape(vipd.conn())  # noqa: E731
        try:
            run_checks(topo, vipd, scrape)
        except Exception:  # a missing series must fail a check, not end the plan
            ok(False, "the checks ran to the end", traceback.format_exc())
        tok_vipd = token_checks(topo)
        st = vipd.stop()
        ok(st == 0, "vipd stops on SIGTERM", f"exit {st}")
    finally:
        if tok_vipd is not None and tok_vipd.proc.poll() is None:
            tok_vipd.stop()
        topo.destroy()
        shutil.rmtree(pin_dir, ignore_errors=True)
        print(f"# wall time {time.time() - T0:.1f} s", flush=True)


def run_checks(topo, vipd, scrape):
    st, lb = vipd.api("POST", "/loadbalancer", {
        "name": "web", "vip": VIP, "port": PORT, "protocol": "tcp", "forwarding": "nat",
        "health_check": HC,
        "backends": [{"ip": b.ip[4], "port": BACKEND_PORT} for b in topo.backends]})
    ok(st == 201, "POST /loadbalancer web: 3 backends, tcp health check", f"{st} {lb}")
    st, dead = vipd.api("POST", "/loadbalancer", {
        "name": "dead", "vip": DEAD_VIP, "port": PORT, "protocol": "tcp", "forwarding": "nat",
        "health_check": HC, "backends": [{"ip": topo.backends[0].ip[4], "port": DEAD_PORT}]})
    ok(st == 201, "POST /loadbalancer dead: its one backend listens nowhere", f"{st} {dead}")
    def settled():
        s = scrape()
        return (all(s.get("vipd_backend_up", **backend_labels(b)) == 1 for b in topo.backends)
                and s.get("vipd_backend_health_state", lb="dead", state="down") == 1)
    ok(wait_for(settled, 10), "web's 3 backends up, dead's down (vipd_backend_up, "
       "vipd_backend_health_state)")
    ok(scrape().get("vipd_lb_healthy_backends", lb="web") == 3, "vipd_lb_healthy_backends 3")

    s = scrape()
    ok(s.status == 200, "GET /metrics: 200", s.status)
    ok(s.ctype.startswith("text/plain; version=0.0.4"), "Content-Type: text/plain; version=0.0.4",
       s.ctype)
    ok(s.error is None and len(s.families) > 20, f"the Prometheus parser reads every line "
       f"({len(s.families)} families, {len(s.samples)} samples)", s.error or s.text[:1500])
    ok(all(f.name.startswith("vipd_") for f in s.families), "every name starts with vipd_",
       [f.name for f in s.families if not f.name.startswith("vipd_")])
    ok(not s.dups, "no sample appears twice", s.dups[:5])
    fams = {f.name: f.type for f in s.families}
    want = {"vipd_up": "gauge", "vipd_build_info": "gauge", "vipd_lb_packets": "counter",
            "vipd_backend_connections": "counter", "vipd_backend_up": "gauge",
            "vipd_backend_probe_duration_seconds": "histogram",
            "vipd_backend_probes": "counter", "vipd_reconcile_duration_seconds": "histogram",
            "vipd_vip_announced": "gauge", "vipd_process_start_time_seconds": "gauge"}
    ok(all(fams.get(k) == v for k, v in want.items()), "families have their types",
       {k: fams.get(k) for k in want})
    _, hz = vipd.api("GET", "/healthz")
    ok(s.get("vipd_up") == 1, "vipd_up 1")
    ok(s.get("vipd_build_info", version=hz.get("version"), dataplane="xdp",
             announce="none") == 1, f"vipd_build_info{{version={hz.get('version')}, "
       f"dataplane=xdp, announce=none}} 1", short(s, "vipd_build_info"))
    start = s.get("vipd_process_start_time_seconds")
    ok(start is not None and T0 - 5 <= start <= time.time(), "process start time is this run's",
       start)
    ok((s.get("vipd_reconcile_duration_seconds_count") or 0) >= 1 and
       s.get("vipd_reconcile_errors_total") is not None, "reconcile passes are counted",
       s.get("vipd_reconcile_duration_seconds_count"))
    ok(s.get("vipd_vip_announced", vip=VIP, method="none") == 1 and
       s.get("vipd_vip_announced", vip=DEAD_VIP, method="none") == 0,
       "vipd_vip_announced: 1 for web's VIP, 0 for dead's (no healthy backend)",
       short(s, "vipd_vip_announced"))
    ok(s.get("vipd_backend_up", lb="dead") == 0 and
       (s.get("vipd_backend_probes_total", lb="dead", result="refused") or 0) > 0,
       "dead's backend: up 0, probes refused", short(s, "vipd_backend_probes_total", lb="dead"))
    ok(s.get("vipd_bird_connected") is None and s.get("vipd_cloud_api_retries_total") is None,
       "no BIRD and no cloud series without --bgp and --project")
    check_histogram(s, topo.backends[0])

    # One connection: exactly one backend's counters move.
    before = scrape()
    try:
        served = hello(topo.client, VIP, PORT, timeout=2.0)
    except OSError as e:
        served = None
        ok(False, "one TCP connection through the VIP", e)
    if served:
        key = backend_labels(named(topo, served))
        conns0 = before.get("vipd_backend_connections_total", **key)
        wait_for(lambda: scrape().get("vipd_backend_connections_total", **key) != conns0, 3)
        after = scrape()
        moved = {}
        for b in topo.backends:
            moved[b.name] = {m: (after.get(m, **backend_labels(b)) or 0) -
                             (before.get(m, **backend_labels(b)) or 0)
                             for m in ("vipd_backend_packets_total", "vipd_backend_bytes_total",
                                       "vipd_backend_connections_total")}
        mine = moved[served]
        ok(mine["vipd_backend_connections_total"] == 1 and mine["vipd_backend_packets_total"] > 0
           and mine["vipd_backend_bytes_total"] > 0,
           f"one connection served by {served}: its connections +1, packets and bytes grow",
           moved)
        ok(all(v == 0 for n, d in moved.items() if n != served for v in d.values()),
           "the other backends' counters do not move", moved)

    # A burst: the load balancer's counters follow the sum of its backends'.
    before = scrape()
    counts = {}
    for _ in range(30):
        try:
            n = hello(topo.client, VIP, PORT, timeout=2.0)
            counts[n] = counts.get(n, 0) + 1
        except OSError:
            pass
    after = scrape()
    lb_conn = after.get("vipd_lb_connections_total", lb="web") - \
        before.get("vipd_lb_connections_total", lb="web")
    per = {b.name: after.get("vipd_backend_connections_total", **backend_labels(b)) -
           before.get("vipd_backend_connections_total", **backend_labels(b))
           for b in topo.backends}
    ok(sum(counts.values()) == 30 and lb_conn == 30 and
       all(per[n] == counts.get(n, 0) for n in per),
       f"30 connections: vipd_lb_connections_total +30, each backend's + what it served "
       f"({counts})", f"lb +{lb_conn}, backends {per}")
    ok(after.get("vipd_lb_packets_total", lb="web") > before.get("vipd_lb_packets_total", lb="web"),
       "vipd_lb_packets_total grows")

    # Active connections: one held open.
    held = topo.client.connect(VIP, PORT, 2.0)
    try:
        name = held.makefile("rb").readline().decode().split()[0]
        b = named(topo, name)
        act = wait_for(lambda: (scrape().get("vipd_backend_active_connections",
                                             **backend_labels(b)) or 0) >= 1, 4)
        ok(act, f"a held connection shows in vipd_backend_active_connections of {name}")
    finally:
        held.close()

    # Kill a backend's server by PID: its gauges flip, refused probes are counted.
    victim = topo.backends[1]
    lbl = backend_labels(victim)
    refused0 = scrape().get("vipd_backend_probes_total", result="refused", **lbl)
    HealthTopo.kill_server(victim)
    t0 = time.monotonic()
    down = wait_for(lambda: scrape().get("vipd_backend_up", **lbl) == 0, 5)
    s = scrape()
    ok(down and s.get("vipd_backend_health_state", state="down", **lbl) == 1 and
       s.get("vipd_backend_health_state", state="up", **lbl) == 0,
       f"server of {victim.name} killed by PID: vipd_backend_up 0, health_state down 1 "
       f"(after {time.monotonic() - t0:.2f} s)", short(s, "vipd_backend_health_state", **lbl))
    ok(s.get("vipd_backend_probes_total", result="refused", **lbl) > refused0,
       "its refused probes are counted", (refused0, s.get("vipd_backend_probes_total", **lbl)))
    ok(s.get("vipd_lb_healthy_backends", lb="web") == 2 and
       all(s.get("vipd_backend_up", **backend_labels(b)) == 1
           for b in topo.backends if b is not victim),
       "the others stay up; vipd_lb_healthy_backends 2")


def short(s, name, **labels):
    """The samples of name with these labels, one per line, for a failure's detail."""
    return "\n".join(f"{dict(ls)} {v}" for (n, ls), v in s.samples.items()
                     if n == name and set(labels.items()) <= set(ls))


def named(topo, name):
    return next(b for b in topo.backends if b.name == name)


def check_histogram(s, b):
    lbl = backend_labels(b)
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in s.samples.items()
                      if n == "vipd_backend_probe_duration_seconds_bucket" and
                      set(lbl.items()) <= set(ls)), key=lambda x: x[0])
    count = s.get("vipd_backend_probe_duration_seconds_count", **lbl)
    total = s.get("vipd_backend_probe_duration_seconds_sum", **lbl)
    ok(len(buckets) > 2 and buckets[-1][0] == math.inf and buckets[-1][1] == count and
       count > 0 and all(buckets[i][1] <= buckets[i + 1][1] for i in range(len(buckets) - 1))
       and 0 < total < count * 0.2,
       f"probe latency histogram of {b.name}: cumulative buckets, +Inf = _count = {count}, "
       f"_sum {total:.4f} s" if count and total is not None else "probe latency histogram",
       buckets)
    oks = s.get("vipd_backend_probes_total", result="ok", **lbl)
    all_results = s.get("vipd_backend_probes_total", **lbl)
    ok(oks and oks > 0 and isinstance(all_results, list) and sum(all_results) == count,
       "probes by result: ok > 0, the results add up to the histogram's _count",
       (oks, all_results, count))


def token_checks(topo):
    """A vipd with --api-token-file: /metrics needs the bearer token, /healthz does not."""
    d = tmpdir("vipd-metrics-tok-")
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write("s3cret-metrics\n")
    os.chmod(tok, 0o600)
    v = TokVipd(topo.node, ["--dataplane", "none", "--api-token-file", tok])
    if not ok(v.start(), "second vipd with --api-token-file starts", v.logs()[-1500:]):
        return v
    st, _ = v.request("GET", "/metrics")
    ok(st == 401, "GET /metrics without the token: 401", st)
    st, body = v.request("GET", "/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    ok(st == 200 and "vipd_up 1" in body, "GET /metrics with the token: 200", st)
    v.stop()
    return v


class TokVipd(NsVipd):
    """NsVipd on a port of its own, so it runs beside the first."""

    def __init__(self, ns, args):
        super().__init__(ns, args)
        self.port = 10002


if __name__ == "__main__":
    main()
    done()
