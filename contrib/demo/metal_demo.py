#!/usr/bin/python3
"""The Equinix Metal demo, started by contrib/demo-metal.sh (which installs the dependencies and
builds vipd first); narrates on stdout. It runs on this host, in namespaces it makes (prefix
dm-), the topology of the end-to-end test tests/integration/metal.py, whose pieces it imports
(the fake's wrapper, the BIRD configurations, the namespaces of tests/lib/health_topo.py):

    client ns          router ns: Metal's two peers           node ns
    c-r ------------ r-c      r-n -------------------------- n-r (vipd's adapter, XDP)
    10.234.1.2/24    10.234.1.1  169.254.255.1/24, .2/24      169.254.255.10/24 (customer_ip)
                                 (BIRD, AS 65530, MD5)        n-lan -- b1 10.234.2.11
                                                                    -- b2 10.234.2.12
    In the node namespace, on loopback: the fake Metal API and metadata service
    (tests/fake-metal), vipd's API; and the node's BIRD, which includes bird/vipd.conf.

What it shows: vipd --bgp --project P --metro ny starting against the fake (device from the
metadata, BGP neighbours into BIRD's peer file, reservations listed), both BGP sessions
Established; `vipctl lb create` without a VIP going from pending to an elastic IP reserved
at the fake with vipd's tags, the /32 reaching the router and real TCP from the client; a 429
with Retry-After holding the next load balancer pending with its reason, then converging;
vipd killed with -9 after a reservation was made but before its answer arrived, and restarted:
no second reservation, the address adopted; `vipctl lb delete` withdrawing the route and
releasing the address; SIGTERM releasing nothing. Prints a summary with the figures.

Environment: VIPD, VIPCTL (default build/demo/vipd, vipctl). Everything started here is
stopped by PID and every namespace removed, also on failure or SIGTERM/SIGINT. Exit status 0
when everything shown worked as described, 1 otherwise (each problem is named).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, "..", ".."))
os.environ.setdefault("VIPD", os.path.join(TOP, "build", "demo", "vipd"))
VIPCTL = os.environ.get("VIPCTL") or os.path.join(os.path.dirname(os.environ["VIPD"]), "vipctl")
sys.dont_write_bytecode = True  # importing the tests' modules must leave nothing in the tree
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))
sys.path.insert(0, os.path.join(TOP, "tests", "integration"))
from vipdtest import tmpdir  # noqa: E402
from netns import build_xdp_pass, ping  # noqa: E402
from bgp import Bird, wait_for  # noqa: E402
from health import NsVipd  # noqa: E402
import health_topo as ht  # noqa: E402
from health_topo import RouteWatch, TopoRun, hello  # noqa: E402
import metal as mt  # noqa: E402

METRO = "ny"
BOLD, PLAIN = ("\033[1m", "\033[0m") if sys.stdout.isatty() else ("", "")
HC = ["--check", "tcp", "--interval", "300ms", "--timeout", "200ms", "--fall", "2",
      "--rise", "1"]
BACKENDS = list(ht.BACKEND_IPS.values())
LOG_KEYS = ("Equinix Metal", "BIRD", "elastic IP", "reserving", "reservation")


def say(text):
    print(f"\n{BOLD}== {text}{PLAIN}", flush=True)


def out(text="", indent="  "):
    for line in str(text).splitlines() or [""]:
        print(indent + line, flush=True)


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def mask(text):
    return re.sub(r'password "[^"]*"', 'password "********"', text)


def log_line(line):
    """A vipd log line without its timestamp."""
    return re.sub(r"^\S+T\S+\s+", "", line)


class Demo(TopoRun):
    def __init__(self):
        super().__init__("dm-", "vipd-demo-metal-")
        self.routes_dir = os.path.join(self.d, "routes")
        self.state_dir = tmpdir("vipd-demo-metal-state-")
        self.fake = self.v = None
        self.lbs = {}
        self.summary, self.problems = [], []

    # --- bookkeeping ---------------------------------------------------------------------------

    def check(self, cond, what):
        """A claim the narration makes; a false one is named and fails the demo."""
        if not cond:
            self.problems.append(what)
            out(f"PROBLEM: {what}")
        return cond

    def note(self, text):
        self.summary.append(text)

    def close_more(self):
        if self.fake:
            self.fake.stop()

    # --- helpers --------------------------------------------------------------------------------

    def ctl(self, *args, show=True):
        r = subprocess.run(self.topo.node.nsenter_argv([VIPCTL] + list(args)),
                           capture_output=True, text=True, timeout=30)
        if show:
            out(f"$ vipctl {' '.join(args)}")
            out(r.stdout.rstrip() + r.stderr.rstrip(), "    ")
        if r.returncode != 0:
            raise RuntimeError(f"vipctl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def create(self, name):
        """vipctl lb create NAME (no --vip) and its two backends: the load balancer's uuid."""
        text = self.ctl("lb", "create", name, "--port", str(mt.PORT), "--forwarding", "fullnat",
                        *HC)
        uuid = text.split()[1]
        self.lbs[name] = uuid
        for ip in BACKENDS:
            self.ctl("backend", "add", name, f"{ip}:{mt.BACKEND_PORT}", show=False)
        out(f"(and vipctl backend add {name} {BACKENDS[0]}:{mt.BACKEND_PORT}, "
            f"{BACKENDS[1]}:{mt.BACKEND_PORT})")
        return uuid

    def lb(self, name):
        return self.v.lb(self.lbs[name])

    def vipd(self):
        v = NsVipd(self.topo.node, [
            "--dataplane", "xdp", "--adapter", ht.ADAPTER, "--bpf-pin-dir", self.pin_dir,
            "--bgp", "--bird-socket", self.node.sock, "--bird-routes", self.routes_dir,
            "--project", mt.PROJECT, "--metro", METRO,
            "--metal-api-url", self.fake.api_url(), "--metal-metadata-url", self.fake.meta_url()],
            nsenter=True)
        v.state_dir = self.state_dir
        v.env["METAL_AUTH_TOKEN"] = mt.TOKEN
        self.vipds.append(v)
        return v

    def start_vipd(self):
        self.v = v = self.vipd()
        t0 = time.monotonic()
        if not v.start():
            raise RuntimeError(f"vipd did not start (exit status {v.proc.poll()}):\n" +
                               v.tail(30))
        t = wait_for(lambda: "Equinix Metal ready" in v.logs(), 30, 0.02)
        if t is None:
            raise RuntimeError("vipd's Equinix Metal start-up did not finish:\n" + v.tail(30))
        return time.monotonic() - t0

    def metal_log(self):
        lines = self.v.logs().splitlines()
        return [log_line(ln) for ln in lines if any(k in ln for k in LOG_KEYS)]

    def sessions(self):
        """The node BIRD's vipd_metal* protocols: {name: state line}."""
        c = self.node.cli()
        try:
            rows = [t for _, t in c.cmd("show protocols")]
        finally:
            c.close()
        return {r.split()[0]: r for r in rows if r.startswith("vipd_metal")}

    def birdc(self, *args):
        r = subprocess.run(["birdc", "-s", self.node.sock] + list(args), capture_output=True,
                           text=True, timeout=30)
        return "\n".join(ln for ln in r.stdout.splitlines() if not ln.startswith("BIRD "))

    def router_routes(self):
        return self.topo.router.ip("route", "show", "proto", "bird").strip()

    def traffic(self, vip, n):
        """n TCP connections from the client behind the router: ({backend: count}, errors)."""
        counts, errors = {}, 0
        deadline = time.time() + 30
        for _ in range(n):
            if time.time() > deadline:
                errors += 1
                break
            try:
                name = hello(self.topo.client, vip, mt.PORT)
                counts[name] = counts.get(name, 0) + 1
            except (OSError, ValueError):
                errors += 1
        return counts, errors

    @staticmethod
    def spread(counts, errors=0):
        s = " ".join(f"{k}={counts[k]}" for k in sorted(counts))
        return s + (f" errors={errors}" if errors else "")

    def show_reservation(self, r):
        out(f"id {r['id']}  {r['address']}/{r['cidr']}  state {r['state']}  "
            f"metro {(r.get('metro') or {}).get('code')}  type {r['type']}")
        out(f"tags {json.dumps(r.get('tags'))}")

    # --- acts -----------------------------------------------------------------------------------

    def setup(self):
        say(f"topology: client -- router (Metal's two BGP peers) -- node (vipd, XDP) -- b1, b2; "
            f"namespaces {self.topo.tag}-*")
        topo = self.topo
        obj = build_xdp_pass(self.d)
        topo.build()
        topo.attach_xdp_pass(obj)
        topo.node.ip("addr", "add", f"{mt.CUSTOMER_IP}/24", "dev", ht.ADAPTER)
        for peer in mt.PEERS:
            topo.router.ip("addr", "add", f"{peer}/24", "dev", "r-n")
        if not ping(topo.router, mt.CUSTOMER_IP, timeout=1, tries=3):
            raise RuntimeError("the router cannot reach the node's customer_ip")
        for b in topo.backends:
            topo.start_server(b, mt.BACKEND_PORT)
        out(f"router r-n: {mt.PEERS[0]}/24 and {mt.PEERS[1]}/24 (Metal's peers), node n-r: "
            f"{mt.CUSTOMER_IP}/24 (the device's customer_ip)")
        out(f"backends b1 {BACKENDS[0]}, b2 {BACKENDS[1]}: a TCP server on port "
            f"{mt.BACKEND_PORT}; the client {ht.CLIENT_IP} sits behind the router")

        say("the fake Metal API starts on the node's loopback")
        out("tests/fake-metal/fake_metal.py is a local stand-in for the Equinix Metal API v1 and")
        out("its metadata service, built from the request and response shapes Metal's OpenAPI")
        out("spec documents (the real platform is retired, so nothing here talks to it).")
        self.fake = mt.Fake(topo.node, self.d)
        if not self.fake.start():
            raise RuntimeError("the fake did not start:\n" + self.fake.errors())
        out(f"API      {self.fake.api_url()}   (token checked on every request)")
        out(f"metadata {self.fake.meta_url()}")
        out(f"project {mt.PROJECT}, metro {METRO}; the device's BGP neighbours: "
            f"{', '.join(mt.PEERS)} AS 65530, MD5,")
        out(f"customer_ip {mt.CUSTOMER_IP} AS 65000; public IPv4 from {mt.POOL}")

        say("BIRD: the node's includes the stock bird/vipd.conf; two in the router play Metal's "
            "peers")
        with open(os.path.join(TOP, "bird", "vipd.conf")) as f:
            snippet = f.read()
        with open(os.path.join(self.d, "vipd.conf"), "w") as f:
            f.write(snippet.replace("/run/vip[d]/", os.path.join(self.d, "route[s]") + "/"))
        self.node = Bird(topo.node, "node", self.d, mt.node_bird_conf(self.d))
        self.peers = [Bird(topo.router, f"peer{i + 1}", self.d, mt.peer_bird_conf(i))
                      for i in range(len(mt.PEERS))]
        self.birds += [self.node] + self.peers
        if not (self.node.start() and all(p.start() for p in self.peers)):
            raise RuntimeError("BIRD did not start")
        out("node BIRD: no peers of its own yet (they come from vipd's peer file)")
        out(f"router: BIRD on {mt.PEERS[0]} and on {mt.PEERS[1]}, AS 65530, password from the "
            "fake,")
        out("waiting for the node; the first puts what it learns into the router's kernel table")
        self.rw = RouteWatch(topo.router)

    def act_start(self):
        say(f"vipd --bgp --project {mt.PROJECT[:8]}... --metro {METRO} (token in "
            "METAL_AUTH_TOKEN)")
        out(f"$ METAL_AUTH_TOKEN=... vipd --foreground --bgp --project {mt.PROJECT} "
            f"--metro {METRO} \\")
        out(f"    --dataplane xdp --adapter {ht.ADAPTER} --bird-socket node.ctl "
            "--bird-routes routes/ \\")
        out("    --metal-api-url http://127.0.0.1:.../metal/v1 "
            "--metal-metadata-url http://127.0.0.1:.../metadata")
        t_ready = self.start_vipd()
        out(f"start-up, from vipd's log (ready {ms(t_ready)} after the start):")
        for ln in self.metal_log():
            out(ln, "    ")
        self.check(mt.TOKEN not in self.v.logs(), "the token never appears in vipd's log")
        with open(os.path.join(self.routes_dir, "bird-peers.conf")) as f:
            peers = f.read()
        out("BIRD's peer file written by vipd (routes/bird-peers.conf; password masked here):")
        out(mask(peers).rstrip(), "    ")
        self.check(all(f"neighbor {p} as 65530;" in peers for p in mt.PEERS) and
                   f'password "{mt.MD5}";' in peers,
                   "the peer file names both peers with the fake's MD5 password")
        t0 = time.monotonic()
        t = wait_for(lambda: sum("Established" in s for s in self.sessions().values()) == 2,
                     30, 0.05)
        out(f"$ birdc show protocols   (on the node, {ms(time.monotonic() - t0)} later)")
        out(self.birdc("show", "protocols"), "    ")
        if self.check(t is not None, "both Metal BGP sessions Established"):
            self.note(f"start-up: device from the metadata, 2 BGP neighbours into BIRD's peer "
                      f"file, reservations listed: ready {ms(t_ready)}; both MD5 sessions "
                      f"Established {ms(t_ready + t)} after vipd started")

    def act_create(self):
        say("vipctl lb create web, without a VIP: pending until Metal reserves an elastic IP")
        out("(the fake is told to hold its answer to the next POST /ips for 1 s, as a real API")
        out(" may, so that the pending state can be seen)")
        self.fake.fail({"path_regex": "/ips$", "method": "POST", "delay_ms": 1000})
        since = self.fake.last_seq()
        t0 = time.monotonic()
        uuid = self.create("web")
        cur = self.lb("web")
        self.ctl("lb", "list")
        out(f"pending_reason: {cur.get('pending_reason')!r}")
        self.check(cur.get("status") == "pending" and not cur.get("vip"),
                   "web is pending, with no vip, while the reservation is under way")
        t_res = t_route = None
        vip = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and t_route is None:
            now = time.monotonic()
            if t_res is None:
                res = self.fake.reservations(uuid)
                if res:
                    t_res, vip = now, res[0]["address"]
            elif self.rw.has(vip):
                t_route = now
            time.sleep(0.002 if t_res else 0.005)
        cur = self.lb("web")
        out(f"the reservation appears at the fake {ms(t_res and t_res - t0)} after the create "
            f"(1 s of it the fake's hold)")
        self.ctl("lb", "list")
        self.check(cur.get("status") == "active" and cur.get("vip") == vip,
                   f"web is active with the reserved address {vip}")
        say("the fake's state: one reservation, with vipd's tags")
        res = self.fake.reservations()
        for r in res:
            self.show_reservation(r)
        posts = [r for r in self.fake.requests(since) if r["method"] == "POST"]
        if posts:
            b = posts[-1]["body"]
            out(f"vipd asked: POST {posts[-1]['path']} {json.dumps(b, separators=(',', ':'))}"
                if len(json.dumps(b)) < 200 else
                f"vipd asked: POST {posts[-1]['path']} type={b.get('type')} "
                f"quantity={b.get('quantity')} metro={b.get('metro')} "
                f"fail_on_approval_required={b.get('fail_on_approval_required')}")
        self.check(len(res) == 1 and f"vipd:lb={uuid}" in res[0].get("tags", []),
                   "exactly one reservation, tagged vipd:lb=<web's uuid>")
        say(f"the router learns {vip}/32 over BGP")
        r2r = None if t_route is None or t_res is None else t_route - t_res
        out(f"$ ip -n {self.topo.router.name} route show proto bird   "
            f"({ms(r2r)} after the reservation)")
        out(self.router_routes(), "    ")
        if self.check(t_route is not None, f"{vip}/32 in the router's kernel table"):
            self.note(f"web: vipctl lb create -> pending -> {vip} reserved at the fake "
                      f"{ms(t_res - t0)} (1 s of it the fake's hold); reservation -> /32 in the "
                      f"router's kernel table {ms(r2r)}")
        say(f"real TCP from the client behind the router to web {vip}:{mt.PORT}")
        counts, errors = self.traffic(vip, 100)
        out(f"100 connections: {self.spread(counts, errors)}")
        self.check(sum(counts.values()) == 100 and len(counts) == 2,
                   "100 connections reach both backends")
        self.note(f"web: 100 TCP connections from the client: {self.spread(counts, errors)}")
        self.vip_web = vip

    def act_429(self):
        say("the API answers the next reservation with 429 Too Many Requests, Retry-After: 2")
        self.fake.fail({"path_regex": "/ips$", "method": "POST", "status": 429,
                        "retry_after": 2})
        since = self.fake.last_seq()
        w0, t0 = time.time(), time.monotonic()
        uuid = self.create("api")
        reason = None
        t_active = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cur = self.lb("api")
            if cur.get("status") == "active":
                t_active = time.monotonic() - t0
                break
            if reason is None and "429" in (cur.get("pending_reason") or ""):
                reason = cur["pending_reason"]
                out(f"+{ms(time.monotonic() - t0)}: vipctl lb list says")
                self.ctl("lb", "list")
                out(f"pending_reason: {reason!r}")
            time.sleep(0.02)
        vip = self.lb("api").get("vip")
        t_route = wait_for(lambda: vip and self.rw.has(vip), 20, 0.002)
        t_route = None if t_route is None else time.monotonic() - t0
        self.check(reason is not None, "while it waits, api is pending with a reason naming "
                   "the 429")
        posts = [r for r in self.fake.requests(since) if r["method"] == "POST"]
        out("timeline, from the fake's request log and vipd's API:")
        steps = [(0, "vipctl lb create api")]
        steps += [(p["time"] - w0, f"POST /ips -> {p['status']}" +
                   (" (Retry-After: 2)" if p["status"] == 429 else "")) for p in posts]
        steps += [(t_active, f"api active, vip {vip}"),
                  (t_route, f"{vip}/32 in the router's kernel table")]
        for t, what in steps:
            out(f"{'+' + ms(t):>9}  {what}", "    ")
        for ln in self.metal_log():
            if "retrying" in ln and "429" in ln:
                out("vipd's log: " + ln)
                break
        statuses = [p["status"] for p in posts]
        gap = posts[1]["time"] - posts[0]["time"] if len(posts) >= 2 else None
        self.check(statuses == [429, 201], f"POST answers were 429 then 201 ({statuses})")
        self.check(gap is not None and gap >= 2.0, "the retry waited at least Retry-After")
        self.check(t_route is not None and len(self.fake.reservations(uuid)) == 1,
                   "api converges: one reservation, its /32 at the router")
        self.note(f"429 + Retry-After 2: api pending ({reason!r}); {len(posts) - 1} retry "
                  f"after {gap:.2f} s; active {ms(t_active)}, /32 at the router "
                  f"{ms(t_route)} after the create" if gap is not None else
                  "429: no retry seen")
        self.vip_api = vip

    def act_kill9(self):
        say("kill -9 at the worst moment: the reservation is made, its answer never arrives")
        out("(the fake holds the next POST /ips 800 ms, reserves, then cuts the connection)")
        self.fake.fail({"path_regex": "/ips$", "method": "POST", "delay_ms": 800, "after": True,
                        "drop": True})
        since = self.fake.last_seq()
        uuid = self.create("blog")
        t = wait_for(lambda: any(r["method"] == "POST" and r["status"] == "dropped"
                                 for r in self.fake.requests(since)), 10, 0.002)
        status = self.lb("blog").get("status")
        self.v.kill9()
        res = self.fake.reservations(uuid)
        out(f"$ kill -9 {self.v.proc.pid}   (blog was {status}; the fake holds its "
            f"reservation: {res[0]['address'] if res else 'none'})")
        self.check(t is not None and status == "pending" and len(res) == 1,
                   "vipd died after the reservation was made but before it knew of it")
        vip = res[0]["address"] if res else None
        routes = self.rw.routes()
        counts, errors = self.traffic(self.vip_web, 20)
        out(f"while vipd is dead: the router still has {self.vip_web}/32 "
            f"{'yes' if f'{self.vip_web}/32' in routes else 'no'}, {self.vip_api}/32 "
            f"{'yes' if f'{self.vip_api}/32' in routes else 'no'} (BIRD keeps vipd's routes);")
        out(f"20 connections to web through the XDP program: {self.spread(counts, errors)}")
        self.note(f"kill -9: while vipd was dead, 20 connections to web: "
                  f"{self.spread(counts, errors)}")
        say("vipd restarts with the same state directory")
        since = self.fake.last_seq()
        t0 = time.monotonic()
        self.start_vipd()
        t_active = wait_for(lambda: self.lb("blog").get("status") == "active", 30, 0.01)
        t_active = None if t_active is None else time.monotonic() - t0
        t_route = wait_for(lambda: vip and self.rw.has(vip), 30, 0.002)
        t_route = None if t_route is None else time.monotonic() - t0
        for ln in self.metal_log():
            if "ready" in ln or "adopt" in ln or "on record" in ln or "listed" in ln:
                out(ln, "    ")
        posts = [r for r in self.fake.requests(since) if r["method"] == "POST"]
        self.ctl("lb", "list")
        out(f"the fake: {len(posts)} POST /ips since the restart, "
            f"{len(self.fake.reservations())} reservations in all, one per load balancer")
        out(f"blog active with {self.lb('blog').get('vip')} {ms(t_active)} after the restart, "
            f"its /32 at the router {ms(t_route)}")
        self.check(not posts and len(self.fake.reservations(uuid)) == 1 and
                   self.lb("blog").get("vip") == vip,
                   "after the restart: no second reservation, blog adopted its address")
        self.check(t_route is not None, f"{vip}/32 reaches the router")
        self.check(self.lb("web").get("vip") == self.vip_web and
                   self.lb("api").get("vip") == self.vip_api,
                   "web and api kept their addresses (vipd's record)")
        self.note(f"kill -9 between reservation and answer, restart: {len(posts)} new POSTs, "
                  f"{len(self.fake.reservations())} reservations for 3 load balancers; blog "
                  f"adopted {vip} {ms(t_active)} after the restart, at the router {ms(t_route)}")

    def act_delete(self):
        say("vipctl lb delete web: the route leaves the router, the address goes back to Metal")
        uuid = self.lbs["web"]
        vip = self.vip_web
        res = self.fake.reservations(uuid)
        since = self.fake.last_seq()
        t0 = time.monotonic()
        self.ctl("lb", "delete", "web")
        t_route = t_rel = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (t_route is None or t_rel is None):
            if t_route is None and not self.rw.has(vip):
                t_route = time.monotonic() - t0
            if t_rel is None and not self.fake.reservations(uuid):
                t_rel = time.monotonic() - t0
            time.sleep(0.002)
        dels = [r for r in self.fake.requests(since) if r["method"] == "DELETE"]
        for d in dels:
            out(f"the fake: DELETE {d['path']} -> {d['status']}")
        out(f"{vip}/32 gone from the router {ms(t_route)} after the delete; reservation released "
            f"{ms(t_rel)} after it")
        out(f"$ ip -n {self.topo.router.name} route show proto bird")
        out(self.router_routes(), "    ")
        out("the fake's reservations now:")
        for r in self.fake.reservations():
            out(f"{r['address']}  {[t for t in r['tags'] if t.startswith('vipd:lb=')][0]}",
                "    ")
        self.check(t_route is not None and t_rel is not None and len(dels) == 1 and res and
                   dels[0]["path"].endswith(res[0]["id"]),
                   "one DELETE, for web's reservation; its route withdrawn")
        self.note(f"lb delete web: {vip}/32 withdrawn at the router {ms(t_route)}, "
                  f"reservation released at the fake {ms(t_rel)}")

    def act_stop(self):
        say("SIGTERM: vipd withdraws its routes and releases nothing")
        before = len(self.fake.reservations())
        rc = self.v.stop()
        time.sleep(0.5)
        left = [r for r in self.rw.routes() if r.startswith("198.51.100.")]
        out(f"vipd exited {rc}; the router has {len(left)} VIP routes; the fake still holds "
            f"{len(self.fake.reservations())} of {before} reservations (the next start takes "
            "them back)")
        self.check(rc == 0 and len(self.fake.reservations()) == before,
                   "SIGTERM keeps the reservations")
        self.note(f"SIGTERM: exit {rc}, {len(self.fake.reservations())} reservations kept, "
                  f"{len(left)} routes left at the router")

    def run(self):
        self.setup()
        self.act_start()
        self.act_create()
        self.act_429()
        self.act_kill9()
        self.act_delete()
        self.act_stop()
        reqs = [r for r in self.fake.requests() if r["listener"] == "api"]
        self.check(all(r["token"] == "match" for r in reqs),
                   "every API request carried the token")
        self.note(f"the fake saw {len(reqs)} API requests, every one with the token: "
                  f"{sum(r['method'] == 'POST' for r in reqs)} POST /ips, "
                  f"{sum(r['method'] == 'DELETE' for r in reqs)} DELETE, the rest GETs")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.time()
    demo = Demo()
    rc = 0
    try:
        demo.run()
    except Exception as e:  # a step that could not run: named, then everything cleaned up
        demo.problems.append(f"{type(e).__name__}: {e}")
        out(f"PROBLEM: {type(e).__name__}: {e}")
        if not isinstance(e, RuntimeError):
            out(traceback.format_exc(), "    ")
        for v in demo.vipds[-1:]:
            out(v.tail(20), "    ")
    finally:
        demo.cleanup()
    say("summary")
    for line in demo.summary:
        out(line)
    if demo.problems:
        rc = 1
        out(f"{len(demo.problems)} problem(s):")
        for p in demo.problems:
            out(p, "    ")
    out(f"demo-metal: {time.time() - t0:.1f} s (namespaces, processes and pins removed)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
