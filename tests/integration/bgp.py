"""BGP mode against real BIRD 2 daemons in namespaces this test makes:

    client ns              router ns (BIRD, AS 65000)          node ns (BIRD, AS 65001)
    c-r --------------- r-c              r-n --------------- n-r    + the announcer
    10.232.1.2/24      10.232.1.1/24   10.232.0.2/30         10.232.0.1/30
    fd00:e32:1::2/64   fd00:e32:1::1   fd00:e32::2/64        fd00:e32::1/64

The node's BIRD includes the shipped bird/vipd.conf (paths pointed at a temp dir) and
exports `filter vipd_export` to the router; the router installs what it learns in its
kernel, so the client's traffic to a VIP reaches the node, which holds the VIP on lo.

The announcer is driven through tests/unit/bird_driver (the announcer on a libev loop, one
command a line); when vipd itself runs in BGP mode (`vipd --bgp` wired), a last section
does the same through vipd's API. Checks: a VIP shows at the router within 1 s and is
withdrawn within 1 s; the client reaches it; only vipd's routes leave the node; a BIRD killed
and restarted gets the routes back with nothing done to the announcer; a BIRD that is down
neither stops the announcer nor loses a change; a configuration BIRD rejects is logged with
BIRD's message and leaves the previous routes in force; a burst of changes is one
configure; 1,000 VIPs (time to the router printed); GRACEFUL_SHUTDOWN then withdrawal on
shutdown. Every namespace, BIRD and driver made here is removed at the end, also on failure.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import VIPD, SRCDIR, api_request, done, ok, run  # noqa: E402
from netns import Netns, ping  # noqa: E402

BUILDDIR = os.environ.get("BUILDDIR", os.path.join(SRCDIR, "build", "plain"))
DRIVER = os.path.join(BUILDDIR, "tests", "unit", "bird_driver")
BIRD = shutil.which("bird") or "/usr/sbin/bird"

NODE_IP = {4: "10.232.0.1", 6: "fd00:e32::1"}
ROUTER_IP = {4: "10.232.0.2", 6: "fd00:e32::2"}
ROUTER_CLIENT_IP = {4: "10.232.1.1", 6: "fd00:e32:1::1"}
CLIENT_IP = {4: "10.232.1.2", 6: "fd00:e32:1::2"}
TIMERS = "connect delay time 1; connect retry time 1; error wait time 1, 2;"


class Cli:
    """BIRD's control socket, spoken directly (faster to poll than forking birdc)."""

    def __init__(self, path, timeout=5):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.reply()  # the greeting

    def _line(self):
        while b"\n" not in self.buf:
            data = self.s.recv(65536)
            if not data:
                raise ConnectionError("BIRD closed the socket")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")

    def reply(self):
        """[(code, text)] up to the reply's last line; async "+" lines are skipped."""
        out, code = [], None
        while True:
            line = self._line()
            if line.startswith("+"):
                continue
            if line.startswith(" "):
                out.append((code, line[1:]))
                continue
            code = int(line[:4])
            out.append((code, line[5:]))
            if line[4] == " ":
                return out

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\n")
        return self.reply()

    def routes(self, table):
        """The prefixes in table."""
        nets = set()
        for _, text in self.cmd(f"show route table {table}"):
            if text and not text[0].isspace():
                tok = text.split()[0]
                if "/" in tok:
                    nets.add(tok)
        return nets

    def all_routes(self):
        return self.routes("master4") | self.routes("master6")

    def count(self, table):
        for _, text in self.cmd(f"show route count table {table}"):
            m = re.match(r"(\d+) of \d+ routes", text)
            if m:
                return int(m.group(1))
        return 0

    def close(self):
        self.s.close()


class Bird:
    """One BIRD we run in the foreground, by PID."""

    def __init__(self, ns, name, d, conf_text):
        self.ns, self.name, self.d = ns, name, d
        self.conf = os.path.join(d, f"{name}.conf")
        self.sock = os.path.join(d, f"{name}.ctl")
        self.pidfile = os.path.join(d, f"{name}.pid")
        self.log = os.path.join(d, f"{name}.log")
        self.write_conf(conf_text)
        self.p = None

    def write_conf(self, text):
        with open(self.conf, "w") as f:
            f.write(f'log "{self.log}" all;\n' + text)

    def start(self, timeout=10):
        out = open(os.path.join(self.d, f"{self.name}.out"), "ab")
        self.p = subprocess.Popen(self.ns.exec_argv([BIRD, "-f", "-c", self.conf, "-s", self.sock,
                                                     "-P", self.pidfile]),
                                  stdout=out, stderr=subprocess.STDOUT)
        out.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.p.poll() is not None:
                return False
            try:
                Cli(self.sock, timeout=1).close()
                return True
            except OSError:
                time.sleep(0.02)
        return False

    def kill(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
        if self.p:
            self.p.wait()

    def cli(self):
        return Cli(self.sock)

    def log_count(self, needle):
        try:
            with open(self.log) as f:
                return f.read().count(needle)
        except OSError:
            return 0


class Driver:
    """tests/unit/bird_driver: the announcer on a loop, in the node namespace."""

    def __init__(self, ns, sock, routes, d, extra=()):
        self.log = os.path.join(d, f"driver-{time.monotonic_ns()}.log")
        self.logf = open(self.log, "wb")
        self.p = subprocess.Popen(ns.exec_argv([DRIVER, "--socket", sock, "--routes", routes,
                                                "--lo"] + list(extra)),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.logf, bufsize=0)
        self.ready = self._read(10) == "ready"

    def _read(self, timeout):
        line = b""
        deadline = time.time() + timeout
        while not line.endswith(b"\n"):
            r, _, _ = select.select([self.p.stdout], [], [], max(0, deadline - time.time()))
            if not r:
                return None
            c = self.p.stdout.read(1)
            if not c:
                return None
            line += c
        return line.decode().strip()

    def send(self, line):
        self.p.stdin.write(line.encode() + b"\n")

    def cmd(self, line, timeout=30):
        self.send(line)
        return self._read(timeout)

    def sync(self, *vips):
        r = self.cmd("sync " + " ".join(vips))
        return int(r.split("rc=")[1]) if r and "rc=" in r else None

    def stats(self):
        r = self.cmd("stats") or ""
        return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", r)}

    def alive(self):
        return self.p.poll() is None

    def logs(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.logf.close()


def wait_for(cond, timeout, step=0.005):
    """Seconds until cond() held, or None after timeout."""
    t0 = time.monotonic()
    while True:
        if cond():
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(step)


def node_conf(d, extra=""):
    return f"""router id {NODE_IP[4]};
protocol device {{}}
include "{d}/vipd.conf";
{extra}
# The operator's own route: it must not leave through vipd_export.
protocol static mystatic {{ ipv4; route 10.250.0.0/24 blackhole; route 10.250.1.1/32 blackhole; }}
protocol bgp up4 {{
	local {NODE_IP[4]} as 65001; neighbor {ROUTER_IP[4]} as 65000; {TIMERS}
	ipv4 {{ import none; export filter vipd_export; }};
}}
protocol bgp up6 {{
	local {NODE_IP[6]} as 65001; neighbor {ROUTER_IP[6]} as 65000; {TIMERS}
	ipv6 {{ import none; export filter vipd_export; }};
}}
"""


def router_conf():
    return f"""router id {ROUTER_IP[4]};
protocol device {{}}
protocol kernel {{ ipv4 {{ import none; export all; }}; }}
protocol kernel {{ ipv6 {{ import none; export all; }}; }}
protocol bgp node4 {{
	local {ROUTER_IP[4]} as 65000; neighbor {NODE_IP[4]} as 65001; {TIMERS}
	ipv4 {{ import all; export none; }};
}}
protocol bgp node6 {{
	local {ROUTER_IP[6]} as 65000; neighbor {NODE_IP[6]} as 65001; {TIMERS}
	ipv6 {{ import all; export none; }};
}}
"""


class Topology:
    def __init__(self):
        tag = "xbgp-" + os.urandom(3).hex()
        self.client, self.router, self.node = (Netns(f"{tag}-{n}") for n in
                                               ("client", "router", "node"))
        self.made = []

    def build(self):
        for ns in (self.client, self.router, self.node):
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True,
                           timeout=30)
            self.made.append(ns)
            ns.ip("link", "set", "lo", "up")
            ns.run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                   "net.ipv6.conf.default.accept_dad=0", "net.ipv4.conf.all.rp_filter=0",
                   "net.ipv4.conf.default.rp_filter=0")
        self.router.run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        for a, an, b, bn in ((self.client, "c-r", self.router, "r-c"),
                             (self.router, "r-n", self.node, "n-r")):
            subprocess.run(["ip", "link", "add", an, "netns", a.name, "type", "veth", "peer",
                            "name", bn, "netns", b.name], check=True, capture_output=True,
                           timeout=30)
        for ns, dev, ips, p4, p6 in ((self.client, "c-r", CLIENT_IP, 24, 64),
                                     (self.router, "r-c", ROUTER_CLIENT_IP, 24, 64),
                                     (self.router, "r-n", ROUTER_IP, 30, 64),
                                     (self.node, "n-r", NODE_IP, 30, 64)):
            ns.ip("addr", "add", f"{ips[4]}/{p4}", "dev", dev)
            ns.ip("-6", "addr", "add", f"{ips[6]}/{p6}", "dev", dev, "nodad")
            ns.ip("link", "set", dev, "up")
        for ns, gw in ((self.client, ROUTER_CLIENT_IP), (self.node, ROUTER_IP)):
            ns.ip("route", "add", "default", "via", gw[4])
            ns.ip("-6", "route", "add", "default", "via", gw[6])

    def destroy(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, timeout=30)
        self.made = []


def main():
    if not os.path.exists(BIRD) or not os.access(DRIVER, os.X_OK):
        ok(False, "bird (Debian bird2) and the announcer driver are there",
           f"bird={BIRD} driver={DRIVER}")
        return
    d = tempfile.mkdtemp(prefix="vipd-bgp-")
    os.chmod(d, 0o755)
    routes = os.path.join(d, "routes")
    with open(os.path.join(SRCDIR, "bird", "vipd.conf")) as f:
        snippet = f.read()
    with open(os.path.join(d, "vipd.conf"), "w") as f:
        f.write(snippet.replace("/run/vip[d]/", os.path.join(d, "route[s]") + "/"))
    topo = Topology()
    birds, drivers = [], []
    try:
        topo.build()
        node = Bird(topo.node, "node", d, node_conf(d))
        router = Bird(topo.router, "router", d, router_conf())
        birds += [node, router]
        # The route files do not exist yet: the snippet's patterns let BIRD start anyway.
        ok(node.start() and router.start(),
           "both BIRDs start (the node's before vipd made its route files)",
           open(os.path.join(d, "node.out")).read() if os.path.exists(
               os.path.join(d, "node.out")) else "")
        rc = router.cli()

        def established():
            text = "\n".join(t for _, t in rc.cmd("show protocols"))
            return text.count("Established") == 2
        ok(wait_for(established, 20, 0.1) is not None, "BGP sessions node <-> router established")

        drv = Driver(topo.node, node.sock, routes, d)
        drivers.append(drv)
        ok(drv.ready, "the announcer starts next to BIRD", drv.logs())
        ok(os.path.exists(os.path.join(routes, "bird-routes4.conf")) and
           os.path.exists(os.path.join(routes, "bird-routes6.conf")),
           "the route files exist (empty) from the start")

        # --- announce and withdraw, timed ------------------------------------------------
        vip4, vip6 = "10.240.0.1", "fd00:240::1"
        t0 = time.monotonic()
        r = drv.sync(vip4, vip6)
        t_ann = wait_for(lambda: {f"{vip4}/32", f"{vip6}/128"} <= rc.all_routes(), 5)
        t_ann = time.monotonic() - t0 if t_ann is not None else None
        ok(r == 0 and t_ann is not None and t_ann < 1.0,
           f"a VIP (IPv4 and IPv6) is at the router within 1 s "
           f"({t_ann * 1000:.0f} ms)" if t_ann is not None else "a VIP reaches the router",
           f"rc={r} routes={rc.all_routes()}\n{drv.logs()}")
        lo = topo.node.ip("addr", "show", "dev", "lo")
        ok(vip4 in lo and vip6 in lo, "the VIP is on the node's lo", lo)
        ok(ping(topo.client, vip4, timeout=1, tries=3) and ping(topo.client, vip6, timeout=1,
                                                                tries=3),
           "the client behind the router reaches the VIP (IPv4 and IPv6) on the node")
        got = rc.all_routes()
        ok(not any(n.startswith("10.250.") for n in got),
           "vipd_export lets only vipd's routes out (the operator's own static stays home)",
           str(got))
        t0 = time.monotonic()
        r = drv.sync()
        t_wd = wait_for(lambda: not rc.all_routes(), 5)
        t_wd = time.monotonic() - t0 if t_wd is not None else None
        ok(r == 0 and t_wd is not None and t_wd < 1.0,
           f"removed, it is withdrawn at the router within 1 s ({t_wd * 1000:.0f} ms)"
           if t_wd is not None else "removed, it is withdrawn at the router",
           f"rc={r} routes={rc.all_routes()}")
        gone = wait_for(lambda: vip4 not in topo.node.ip("addr", "show", "dev", "lo"), 2)
        ok(gone is not None, "and it leaves lo")

        # --- BIRD killed and restarted ---------------------------------------------------
        drv.sync(vip4, vip6)
        wait_for(lambda: len(rc.all_routes()) == 2, 5)
        before = drv.stats()
        node.kill()
        ok(wait_for(lambda: not rc.all_routes(), 10) is not None,
           "the node's BIRD killed: the router drops the routes")
        ok(drv.alive() and drv.stats().get("connected") == 0,
           "the announcer lives on without BIRD", drv.logs())
        t0 = time.monotonic()
        node.start()
        back = wait_for(lambda: len(rc.all_routes()) == 2, 30, 0.02)
        ok(back is not None, f"BIRD restarted: the routes come back with nothing done to the "
           f"announcer ({back:.1f} s, BGP session setup included)" if back is not None else
           "BIRD restarted: the routes come back", str(rc.all_routes()))
        st = wait_for(lambda: drv.stats().get("in_sync") == 1, 10)
        after = drv.stats()
        ok(st is not None and after["connects"] == before["connects"] + 1 and
           after["configures"] == before["configures"] + 1,
           "the announcer reconnected by itself and pushed its routes once more",
           f"{before} -> {after}")

        # --- BIRD down while things change ---------------------------------------------
        node.kill()
        wait_for(lambda: drv.stats().get("connected") == 0, 5)
        r = drv.sync(vip4, "10.240.0.2")
        ok(r == -107 and drv.alive(), "a change while BIRD is down: reported (ENOTCONN), "
           "not fatal", f"rc={r}")
        node.start()
        ok(wait_for(lambda: rc.routes("master4") == {f"{vip4}/32", "10.240.0.2/32"}, 30, 0.02)
           is not None, "BIRD back: the router has the set of the change made while it was down",
           str(rc.all_routes()))
        wait_for(lambda: drv.stats().get("in_sync") == 1, 10)

        # --- a configuration BIRD rejects -------------------------------------------------
        node.write_conf(node_conf(d, f'include "{d}/no-such-file.conf";'))
        failed0 = drv.stats()["failed"]
        drv.sync(vip4, "10.240.0.3")
        ok(wait_for(lambda: drv.stats().get("failed") == failed0 + 1, 5) is not None and
           "code=8002" in drv.logs() and "Unable to open included file" in drv.logs(),
           "a broken include in bird.conf: BIRD's error is logged with its message",
           drv.logs()[-2000:])
        time.sleep(0.3)
        ok(rc.routes("master4") == {f"{vip4}/32", "10.240.0.2/32"},
           "and the previous routes stay in force", str(rc.all_routes()))
        node.write_conf(node_conf(d))
        r = drv.sync(vip4, "10.240.0.3")
        ok(r == -5, "the next sync reports the rejection (EIO) and asks BIRD again", f"rc={r}")
        ok(wait_for(lambda: rc.routes("master4") == {f"{vip4}/32", "10.240.0.3/32"}, 5)
           is not None, "bird.conf fixed: the wanted routes reach the router",
           str(rc.all_routes()))

        # --- coalescing -------------------------------------------------------------------
        wait_for(lambda: drv.stats().get("in_sync") == 1, 5)
        c0, l0 = drv.stats()["configures"], node.log_count("Reconfigured")
        addrs = " ".join(f"10.240.1.{i}" for i in range(1, 201))
        drv.cmd(f"burst 200 {addrs}")
        ok(wait_for(lambda: drv.stats().get("in_sync") == 1, 5) is not None and
           drv.stats()["configures"] == c0 + 1 and node.log_count("Reconfigured") == l0 + 1,
           "200 changes in one pass: one configure (counted by the announcer and by BIRD)",
           f"configures {c0} -> {drv.stats()['configures']}, BIRD log "
           f"{l0} -> {node.log_count('Reconfigured')}")
        ok(wait_for(lambda: rc.count("master4") == 200, 5) is not None,
           "and the router has the final set", rc.count("master4"))
        c0 = drv.stats()["configures"]
        for i in range(1, 51):
            drv.send(f"sync 10.240.2.{i}")
        for _ in range(50):
            drv._read(10)
        wait_for(lambda: drv.stats().get("in_sync") == 1, 5)
        n_conf = drv.stats()["configures"] - c0
        ok(n_conf < 10 and wait_for(lambda: rc.routes("master4") == {"10.240.2.50/32"}, 5)
           is not None,
           f"50 syncs in separate loop passes: {n_conf} configures, final set at the router")

        # --- 1,000 VIPs -------------------------------------------------------------------
        drv.sync()
        wait_for(lambda: not rc.all_routes(), 5)
        t0 = time.monotonic()
        drv.send("gen 1000 0")
        t_1k = wait_for(lambda: rc.count("master4") == 1000, 30, 0.002)
        drv._read(30)
        print(f"# 1,000 VIPs: sync to all 1,000 routes at the router "
              f"{(time.monotonic() - t0) * 1000 if t_1k is None else t_1k * 1000:.0f} ms",
              flush=True)
        ok(t_1k is not None, "1,000 VIPs announced through one BIRD reach the router")
        routed = ping(topo.client, "10.240.3.232", timeout=1, tries=3)  # the 1000th
        ok(routed, "the client reaches the 1,000th VIP")
        t0 = time.monotonic()
        drv.send("gen 0 0")
        t_1kw = wait_for(lambda: rc.count("master4") == 0, 30, 0.002)
        drv._read(60)
        print(f"# 1,000 VIPs: withdrawn at the router in "
              f"{t_1kw * 1000 if t_1kw is not None else -1:.0f} ms", flush=True)
        ok(t_1kw is not None, "1,000 VIPs withdrawn")

        # --- shutdown: GRACEFUL_SHUTDOWN, then withdrawal ---------------------------------
        drv.stop()
        drv = Driver(topo.node, node.sock, routes, d, ["--graceful", "1.5"])
        drivers.append(drv)
        drv.sync(vip4)
        wait_for(lambda: rc.routes("master4") == {f"{vip4}/32"}, 5)

        def community():
            text = "\n".join(t for _, t in rc.cmd(f"show route {vip4}/32 all"))
            return "(65535,0)" in text
        ok(not community(), "announced normally: no GRACEFUL_SHUTDOWN community")
        t0 = time.monotonic()
        drv.send("withdraw")
        saw = wait_for(community, 1.4, 0.01)
        gone = wait_for(lambda: not rc.all_routes(), 5)
        r = drv._read(10)
        ok(saw is not None, "on shutdown the route first carries GRACEFUL_SHUTDOWN (65535,0)")
        ok(gone is not None and time.monotonic() - t0 >= 1.5 and r and r.startswith("withdrawn"),
           f"then it is withdrawn, after the graceful period ({r})",
           f"{rc.all_routes()} {r}")
        with open(os.path.join(routes, "bird-routes4.conf")) as f:
            ok("route" not in f.read(), "the route files are left empty for BIRD's next start")

        vipd_section(topo, node, rc, d)
        rc.close()
    finally:
        for drv in drivers:
            drv.stop()
        if drivers:
            bad = [drv.logs() for drv in drivers if drv.p.returncode != 0 or
                   "Sanitizer" in drv.logs() or "runtime error" in drv.logs()]
            ok(not bad, "the announcer exited cleanly (no crash, leak or sanitizer report)",
               "\n".join(bad)[-3000:])
        for b in birds:
            b.kill()
        topo.destroy()
        shutil.rmtree(d, ignore_errors=True)


def vipd_section(topo, node, rc, d):
    """The same through vipd itself, once `vipd --bgp` is wired."""
    r = run([VIPD, "--check-config", "--bgp", "--bird-socket", node.sock])
    if not ok(r.returncode == 0, "vipd --check-config --bgp accepts BGP mode", r.stderr):
        return
    state = os.path.join(d, "vipd-state")
    os.makedirs(state)
    routes = os.path.join(d, "routes")
    log = open(os.path.join(d, "vipd.log"), "wb")
    port = 10001
    p = subprocess.Popen(topo.node.exec_argv(
        [VIPD, "--foreground", "--dataplane", "none", "--bgp", "--bird-socket", node.sock,
         "--bird-routes", routes, "--ipam-range", "10.241.0.10-10.241.0.20",
         "--api-listen", f"127.0.0.1:{port}", "--state-dir", state]),
        stdout=log, stderr=subprocess.STDOUT)

    def api(method, path, body=None):
        return api_request(topo.node.http("127.0.0.1", port, timeout=5), method, path, body)

    def vlog():
        with open(os.path.join(d, "vipd.log"), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]

    try:
        def healthy():
            try:
                return api("GET", "/healthz")[0] == 200
            except OSError:
                return False
        ok(wait_for(healthy, 20, 0.05) is not None, "vipd --bgp starts next to BIRD", vlog())
        st, lb = api("POST", "/loadbalancer", {"name": "web", "port": 80})
        vip = lb.get("eip") or lb.get("vip") if isinstance(lb, dict) else None
        t0 = time.monotonic()
        st2, _ = api("POST", f"/loadbalancer/{lb['uuid']}/backend",
                     {"ip": ROUTER_IP[4], "port": 80})
        t = wait_for(lambda: f"{vip}/32" in rc.all_routes(), 5)
        ok(st in (200, 201) and st2 in (200, 201) and t is not None and
           time.monotonic() - t0 < 1.0,
           f"a load balancer created through the API: its VIP at the router within 1 s "
           f"({(time.monotonic() - t0) * 1000:.0f} ms)", f"{st} {lb} {st2}\n{vlog()}")
        t0 = time.monotonic()
        api("DELETE", f"/loadbalancer/{lb['uuid']}")
        t = wait_for(lambda: f"{vip}/32" not in rc.all_routes(), 5)
        ok(t is not None and time.monotonic() - t0 < 1.0,
           f"deleted: withdrawn within 1 s ({(time.monotonic() - t0) * 1000:.0f} ms)")
        st, lb = api("POST", "/loadbalancer", {"name": "web2", "port": 80})
        api("POST", f"/loadbalancer/{lb['uuid']}/backend", {"ip": ROUTER_IP[4], "port": 80})
        vip = lb.get("eip") or lb.get("vip")
        wait_for(lambda: f"{vip}/32" in rc.all_routes(), 5)
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        ok(wait_for(lambda: f"{vip}/32" not in rc.all_routes(), 5) is not None,
           "SIGTERM: vipd withdraws its routes before it exits", vlog())
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        main()
    except Exception as e:  # noqa: BLE001 - a crash is one failed check, after cleanup
        ok(False, f"the test ran to the end ({type(e).__name__}: {e})")
    done()
