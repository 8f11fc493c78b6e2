"""Equinix Metal elastic IPs end to end (issue 7), in namespaces this test makes
(tests/lib/health_topo.py with prefix mt-):

    client ns          router ns (BIRD AS 65530)                node ns
    c-r ------------ r-c      r-n ------------------------- n-r (adapter, XDP)  n-lan -- b1, b2
    10.234.1.2/24    10.234.1.1  169.254.255.1/24 + .2/24     169.254.255.10/24
                                 (Metal's two peers, MD5)     (the device's customer_ip)

In the node namespace: the fake Metal API and its metadata listener on loopback
(tests/fake-metal, --facility ny5, --md5, non-multihop neighbours whose customer_ip is the
node's address on the router link), the node's own BIRD including the shipped bird/vipd.conf
(paths pointed at a temp dir, so it also includes the peer file vipd writes), and
`vipd --bgp --project P --facility ny5 --metal-api-url ... --metal-metadata-url ...
--dataplane xdp --adapter n-r` with the token in METAL_AUTH_TOKEN. The router plays Metal's
top-of-rack peers 169.254.255.1 and .2 (AS 65530, the password the fake hands out) and puts
what it learns in its kernel table.

Checks: the start-up steps are logged and vipd's peer file brings up both BGP sessions; a
load balancer made through vipd's API gets exactly one reservation, its /32 reaches the router
and a client behind the router reaches the backends (times printed); the API answering 429
(Retry-After 2) and then 500 for a while leaves a load balancer "pending" with a reason, then
it converges with one reservation and the retries spaced as asked; deleting a load balancer
withdraws its route and releases its address; kill -9 after the reservation was made but
before vipd heard of it, then a restart: no second reservation, the address announced; the
fake's neighbours changed (a third peer) and SIGHUP: the peer file gets the new session, BIRD
configures and has it, the sessions up stay up and the routes in place, while a SIGHUP with
nothing changed leaves the file and BIRD alone; SIGTERM keeps the reservations; a wrong
token makes vipd exit non-zero naming the token, and a missing one is refused at start. Every process is stopped by PID and every namespace removed, also on
failure.

Run: VIPD=build/asan/vipd python3 tests/integration/metal.py
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
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # importing health.py must leave nothing in the tree
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from vipdtest import SRCDIR, done, ok, tmpdir  # noqa: E402
from netns import Netns, build_xdp_pass, ping  # noqa: E402
from bgp import TIMERS, Bird, wait_for  # noqa: E402
from health import NsVipd, hello  # noqa: E402
import health_topo as ht  # noqa: E402
from health_topo import RouteWatch, TopoRun  # noqa: E402

FAKE = os.path.join(SRCDIR, "tests", "fake-metal", "fake_metal.py")
TOKEN = "mt-metal-token-0123456789"
PROJECT = "5b0f4c2e-8d1a-4e3b-9c7d-2a6e1f0b3c49"
FACILITY = "ny5"
MD5 = "mt-Md5-pw"
PEERS = ["169.254.255.1", "169.254.255.2"]
NEW_PEER = "169.254.255.3"
CUSTOMER_IP = "169.254.255.10"
POOL = "198.51.100.16/28"
PORT, BACKEND_PORT = 80, 8080
T0 = time.time()


def figure(text):
    print(f"# {text}", flush=True)


def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


class Fake:
    """fake_metal.py in the node namespace, by PID; its API is reached from there."""

    DIRECT = ["--md5", MD5, "--peer-as", "65530", "--customer-as", "65000", "--families", "4",
              "--no-multihop", "--customer-ip", CUSTOMER_IP, "--pool", POOL]

    def __init__(self, ns, d, args=DIRECT):
        self.ns, self.d, self.args = ns, d, list(args)
        self.p = None
        self.api_port = self.meta_port = None

    def start(self, timeout=10):
        self.err = open(os.path.join(self.d, f"fake-{self.ns.name}.err"), "ab")
        argv = self.ns.exec_argv([
            sys.executable, FAKE, "--listen", "127.0.0.1:0", "--metadata-listen", "127.0.0.1:0",
            "--token", TOKEN, "--project", PROJECT, "--facility", FACILITY, "--metro", "ny",
            "--state", os.path.join(self.d, f"fake-{self.ns.name}.json")] + self.args)
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err)
        deadline = time.time() + timeout
        out = b""
        # os.read, not readline: a buffered reader may hold both lines while select waits
        while time.time() < deadline and out.count(b"\n") < 2:
            r, _, _ = select.select([self.p.stdout], [], [], max(0, deadline - time.time()))
            data = os.read(self.p.stdout.fileno(), 4096) if r else b""
            if not data:
                break
            out += data
        for line in out.decode(errors="replace").splitlines():
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m and "metadata" in line:
                self.meta_port = int(m.group(1))
            elif m:
                self.api_port = int(m.group(1))
        return bool(self.api_port and self.meta_port)

    def errors(self):
        with open(os.path.join(self.d, f"fake-{self.ns.name}.err"), errors="replace") as f:
            return f.read()[-2000:]

    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}/metal/v1"

    def meta_url(self):
        return f"http://127.0.0.1:{self.meta_port}/metadata"

    def control(self, method, path, body=None):
        conn = self.ns.http("127.0.0.1", self.api_port, timeout=10)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"} if body is not None
                         else {})
            r = conn.getresponse()
            return r.status, json.loads(r.read().decode() or "null")
        finally:
            conn.close()

    def reservations(self, lb=None):
        st, s = self.control("GET", "/_fake/state")
        res = s.get("reservations", []) if st == 200 else []
        if lb:
            res = [r for r in res if f"vipd:lb={lb}" in (r.get("tags") or [])]
        return res

    def requests(self, since=0):
        st, r = self.control("GET", f"/_fake/requests?since={since}")
        return r.get("requests", []) if st == 200 else []

    def last_seq(self):
        reqs = self.requests()
        return reqs[-1]["seq"] if reqs else 0

    def fail(self, spec):
        return self.control("POST", "/_fake/fail", spec)[0] == 200

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.kill()
        if self.p:
            self.p.wait()
            self.p.stdout.close()
            self.err.close()


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return str(e)


def node_bird_conf(d):
    return f"""router id {ht.NODE_IP};
protocol device {{}}
include "{d}/vipd.conf";
"""


def peer_bird_conf(i):
    """Metal's peer i (0, 1): one BIRD each, as BIRD runs one session per neighbour address;
    bound to its own address (strict bind) so that both listen on port 179. The first puts
    what it learns in the router's kernel table."""
    kernel = "protocol kernel { ipv4 { import none; export all; }; }\n" if i == 0 else ""
    return f"""router id {PEERS[i]};
protocol device {{}}
{kernel}protocol bgp metal{i + 1} {{
	local {PEERS[i]} as 65530; neighbor {CUSTOMER_IP} as 65000; password "{MD5}";
	strict bind yes; {TIMERS}
	ipv4 {{ import all; export none; }};
}}
"""


def lb_body(name):
    return {"name": name, "port": PORT, "protocol": "tcp", "forwarding": "fullnat",
            "health_check": {"type": "tcp", "interval": "300ms", "timeout": "200ms",
                             "fail_count": 2, "rise_count": 1},
            "backends": [{"ip": ip, "port": BACKEND_PORT, "weight": 1}
                         for ip in ht.BACKEND_IPS.values()]}


class Run(TopoRun):
    def __init__(self):
        super().__init__("mt-", "vipd-mt-")
        self.routes_dir = os.path.join(self.d, "routes")
        self.state_dir = tmpdir("vipd-mt-state-")
        self.fake = self.mh_fake = None
        self.mh_ns = None
        self.router = None
        self.v = None
        self.lbs = {}

    def close_more(self):
        for f in (self.fake, self.mh_fake):
            if f:
                f.stop()
        if self.mh_ns:
            subprocess.run(["ip", "netns", "del", self.mh_ns.name], capture_output=True,
                           timeout=30)

    # --- set-up -------------------------------------------------------------------------------

    def vipd(self, token=TOKEN, extra=(), dataplane=True):
        args = (["--dataplane", "xdp", "--adapter", ht.ADAPTER, "--bpf-pin-dir", self.pin_dir]
                if dataplane else ["--dataplane", "none"])
        args += ["--bgp", "--bird-socket", self.node.sock, "--bird-routes", self.routes_dir,
                 "--project", PROJECT, "--facility", FACILITY,
                 "--metal-api-url", self.fake.api_url(),
                 "--metal-metadata-url", self.fake.meta_url()] + list(extra)
        v = NsVipd(self.topo.node, args, nsenter=True)
        v.state_dir = self.state_dir
        v.env.pop("METAL_AUTH_TOKEN", None)
        if token is not None:
            v.env["METAL_AUTH_TOKEN"] = token
        self.vipds.append(v)
        return v

    def setup(self):
        topo = self.topo
        try:
            obj = build_xdp_pass(self.d)
            topo.build()
            topo.attach_xdp_pass(obj)
            topo.node.ip("addr", "add", f"{CUSTOMER_IP}/24", "dev", ht.ADAPTER)
            for peer in PEERS:
                topo.router.ip("addr", "add", f"{peer}/24", "dev", "r-n")
            if not ping(topo.router, CUSTOMER_IP, timeout=1, tries=3):
                raise RuntimeError("router cannot ping the node's customer_ip")
            for b in topo.backends:
                topo.start_server(b, BACKEND_PORT)
            err = None
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            err = e
        if not ok(err is None, "topology: client - router (Metal's peers 169.254.255.1, .2) - "
                  "node (XDP) - 2 backends; backend servers up", err):
            return False
        self.fake = Fake(topo.node, self.d)
        ok(self.fake.start(), "fake Metal API and metadata service listen on the node's "
           "loopback", self.fake.api_port)
        with open(os.path.join(SRCDIR, "bird", "vipd.conf")) as f:
            snippet = f.read()
        with open(os.path.join(self.d, "vipd.conf"), "w") as f:
            f.write(snippet.replace("/run/vip[d]/", os.path.join(self.d, "route[s]") + "/"))
        self.node = Bird(topo.node, "node", self.d, node_bird_conf(self.d))
        self.peers = [Bird(topo.router, f"peer{i + 1}", self.d, peer_bird_conf(i))
                      for i in range(len(PEERS))]
        self.birds += [self.node] + self.peers
        started = self.node.start() and all(p.start() for p in self.peers)
        if not ok(started, "BIRD on the node (with bird/vipd.conf, no peers yet) and two in the "
                  "router namespace playing Metal's peers (MD5 sessions waiting for the node)"):
            return False
        self.router = self.peers[0]
        self.rw = RouteWatch(topo.router)
        return True

    def protocols(self):
        text = ""
        for p in self.peers:
            try:
                c = p.cli()
                text += "\n".join(t for _, t in c.cmd("show protocols")) + "\n"
                c.close()
            except OSError as e:
                text += f"{p.name}: {e}\n"
        return text

    def sessions_up(self):
        return sum(1 for line in self.protocols().splitlines()
                   if line.startswith("metal") and "Established" in line)

    def peer_routes(self, vip):
        """Which of Metal's peers have vip/32 from the node."""
        out = []
        for p in self.peers:
            try:
                c = p.cli()
                if f"{vip}/32" in c.routes("master4"):
                    out.append(p.name)
                c.close()
            except OSError:
                pass
        return out

    def lb(self, uuid):
        return self.v.lb(uuid)

    def node_protocols(self):
        """The node BIRD's `show protocols`: name -> the rest of its line."""
        try:
            c = self.node.cli()
            lines = [t for _, t in c.cmd("show protocols")]
            c.close()
        except OSError as e:
            return {"error": str(e)}
        return {t.split()[0]: " ".join(t.split()[1:]) for t in lines
                if t.strip() and not t[0].isspace()}

    def bird_configures(self):
        """How many configures vipd has sent BIRD (GET /status), or None."""
        st, status = self.v.api("GET", "/status")
        bird = status.get("bird") if st == 200 and isinstance(status, dict) else None
        return bird.get("configures") if isinstance(bird, dict) else None

    # --- 1: start-up ---------------------------------------------------------------------------

    def stage_start(self):
        self.v = self.vipd()
        t0 = time.monotonic()
        good = self.v.start()
        if not ok(good, "vipd --bgp --project P --facility ny5 --dataplane xdp starts with the "
                  "token in METAL_AUTH_TOKEN", self.v.tail(30)):
            return False
        t = wait_for(lambda: "Equinix Metal ready" in self.v.logs(), 20, 0.05)
        log = self.v.logs()
        steps = ["Equinix Metal elastic IPs", "asking the metadata service",
                 "device from the metadata service", "fetching the device's BGP neighbours",
                 "BIRD peer file written", "listing the project's reservations",
                 "reservations listed", "Equinix Metal ready"]
        ok(t is not None and all(s in log for s in steps) and TOKEN not in log,
           f"every start-up step is logged, in order, ready {ms(time.monotonic() - t0)} after "
           f"start; the token never appears in the log",
           "\n".join(line for line in log.splitlines() if "Metal" in line or "BIRD" in line))
        ok([log.find(s) for s in steps] == sorted(log.find(s) for s in steps),
           "the steps ran in order: device, neighbours, peer file, listing")
        peers = ""
        try:
            with open(os.path.join(self.routes_dir, "bird-peers.conf")) as f:
                peers = f.read()
        except OSError as e:
            peers = str(e)
        ok(all(f"neighbor {p} as 65530;" in peers for p in PEERS) and
           f'password "{MD5}";' in peers and f"source address {CUSTOMER_IP};" in peers and
           "local as 65000;" in peers and "multihop" not in peers,
           "vipd wrote BIRD's peer file: both peers, AS 65530, the MD5 password, the "
           "customer_ip as source", peers)
        t = wait_for(lambda: self.sessions_up() == 2, 30, 0.1)
        figure(f"both BGP sessions Established {ms(t)} after the start-up finished")
        ok(t is not None, "both of Metal's peers (169.254.255.1 and .2) have their MD5 session "
           "Established with the node: BIRD read vipd's peer file on vipd's request",
           self.protocols() if t is None else None)
        return True

    # --- 2: a load balancer ------------------------------------------------------------------

    def stage_create(self):
        v, fake = self.v, self.fake
        t0 = time.monotonic()
        st, lb = v.api("POST", "/loadbalancer", lb_body("web"))
        if not ok(st == 201 and isinstance(lb, dict), "POST /loadbalancer without a vip: 201",
                  lb):
            return False
        uuid = self.lbs["web"] = lb["uuid"]
        t_res = wait_for(lambda: len(fake.reservations(uuid)) >= 1, 20, 0.01)
        t_res = t_res if t_res is None else time.monotonic() - t0
        t_active = wait_for(lambda: self.lb(uuid).get("status") == "active", 20, 0.01)
        t_active = t_active if t_active is None else time.monotonic() - t0
        res = fake.reservations(uuid)
        cur = self.lb(uuid)
        vip = cur.get("vip")
        ok(len(res) == 1 and res[0].get("address") == vip and
           res[0].get("facility", {}).get("code") == FACILITY,
           f"the fake records exactly one reservation, in {FACILITY}, tagged for the load "
           f"balancer; its address {vip} is the load balancer's vip ({ms(t_res)} after the POST)",
           f"{res}\n{cur}")
        body = [r["body"] for r in fake.requests() if r["method"] == "POST"]
        ok(body and body[-1].get("fail_on_approval_required") is True and
           body[-1].get("quantity") == 1 and body[-1].get("type") == "public_ipv4" and
           body[-1].get("facility") == FACILITY and
           all(r["token"] == "match" for r in fake.requests()
               if r["listener"] == "api"),
           "the request: one public_ipv4 in the facility, fail_on_approval_required, tagged; "
           "every API request carried the token", body[-1:] if body else None)
        t_route = wait_for(lambda: self.rw.has(vip), 20, 0.005) if vip else None
        total = time.monotonic() - t0
        figure(f"POST /loadbalancer -> reservation at the fake {ms(t_res)}, load balancer "
               f"active {ms(t_active)}, /32 in the router's kernel table {ms(total)}")
        ok(t_route is not None, f"the router learns {vip}/32 over BGP (in its kernel table)",
           f"{self.rw.routes()}\n{v.tail()}")
        t = wait_for(lambda: len(self.peer_routes(vip)) == 2, 10, 0.02)
        ok(t is not None, f"both peers have {vip}/32 from the node", self.peer_routes(vip))
        try:
            with open(os.path.join(self.state_dir, "metal-ips")) as f:
                rec = f.read()
        except OSError as e:
            rec = str(e)
        ok(res and f"{uuid} {res[0]['id']} {vip}" in rec,
           "vipd's record (STATE_DIR/metal-ips) holds load balancer, reservation id, address",
           rec)
        counts, errors = {}, []
        deadline = time.time() + 20
        while sum(counts.values()) < 40 and time.time() < deadline:
            try:
                name = hello(self.topo.client, vip, PORT)
                counts[name] = counts.get(name, 0) + 1
            except (OSError, ValueError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                time.sleep(0.05)
        ok(sum(counts.values()) == 40 and len(counts) == 2,
           f"40 TCP connections from the client behind the router reach the backends through "
           f"{vip}:{PORT} ({counts})", f"{counts} {errors[:5]}\n{v.tail()}")
        return True

    # --- 3: 429 and 500 for a while ----------------------------------------------------------

    def stage_faults(self):
        v, fake = self.v, self.fake
        since = fake.last_seq()
        ok(fake.fail([{"path_regex": "/ips$", "method": "POST", "status": 429,
                       "retry_after": 2, "count": 2},
                      {"path_regex": "/ips$", "method": "POST", "status": 500, "count": 2}]),
           "faults queued: POST /ips answers 429 (Retry-After 2) twice, then 500 twice")
        t0 = time.monotonic()
        st, lb = v.api("POST", "/loadbalancer", lb_body("api"))
        if not ok(st == 201, "POST /loadbalancer while the API is failing: 201", lb):
            return
        uuid = self.lbs["api"] = lb["uuid"]
        wait_for(lambda: "429" in (self.lb(uuid).get("pending_reason") or ""), 5, 0.02)
        cur = self.lb(uuid)
        ok(cur.get("status") == "pending" and "429" in (cur.get("pending_reason") or "") and
           not cur.get("vip"),
           "meanwhile GET /loadbalancer/{uuid} says \"status\": \"pending\" with a "
           "pending_reason naming the 429, and no vip", cur)
        t = wait_for(lambda: self.lb(uuid).get("status") == "active", 60, 0.05)
        vip = self.lb(uuid).get("vip")
        res = fake.reservations(uuid)
        ok(t is not None and len(res) == 1 and res[0]["address"] == vip,
           f"vipd retries and converges: active with exactly one reservation "
           f"({ms(time.monotonic() - t0)})", f"{res}\n{v.tail(20)}")
        reqs = [r for r in fake.requests(since) if r["listener"] == "api"]
        posts = [r for r in reqs if r["method"] == "POST"]
        gaps = [b["time"] - a["time"] for a, b in zip(posts, posts[1:])]
        figure("POST /ips answers and the gap before the next: " + ", ".join(
            f"{p['status']}" + (f" +{g:.2f}s" if i < len(gaps) else "")
            for i, (p, g) in enumerate(zip(posts, gaps + [0]))))
        statuses = [p["status"] for p in posts]
        ok(statuses == [429, 429, 500, 500, 201],
           "POST answers were 429, 429, 500, 500, 201: nothing was reserved twice", statuses)
        ok(len(gaps) == 4 and gaps[0] >= 2.0 and gaps[1] >= 2.0,
           "after each 429 vipd waited at least the Retry-After of 2 s (" +
           ", ".join(f"{g:.2f}" for g in gaps[:2]) + " s)", gaps)
        lists_between = [any(r["method"] == "GET" and r["path"].endswith("/ips") and
                             a["seq"] < r["seq"] < b["seq"] for r in reqs)
                         for a, b in zip(posts[2:], posts[3:])]
        ok(len(gaps) == 4 and all(g >= 0.25 for g in gaps[2:]) and all(lists_between),
           "after each 500 (the POST may have happened) vipd backed off and looked at the list "
           "before asking again", f"gaps {gaps} lists between {lists_between}")
        t = wait_for(lambda: self.rw.has(vip), 20, 0.01)
        ok(t is not None, f"{vip}/32 reaches the router too", self.rw.routes())

    # --- 4: delete ------------------------------------------------------------------------------

    def stage_delete(self):
        v, fake = self.v, self.fake
        uuid = self.lbs.pop("web")
        res = fake.reservations(uuid)
        vip = res[0]["address"] if res else None
        t0 = time.monotonic()
        st, _ = v.api("DELETE", f"/loadbalancer/{uuid}")
        t_route = wait_for(lambda: not self.rw.has(vip), 20, 0.005)
        t_route = t_route if t_route is None else time.monotonic() - t0
        t_rel = wait_for(lambda: not fake.reservations(uuid), 20, 0.01)
        t_rel = t_rel if t_rel is None else time.monotonic() - t0
        figure(f"DELETE /loadbalancer -> route gone from the router {ms(t_route)}, "
               f"reservation released {ms(t_rel)}")
        ok(st in (200, 204) and t_route is not None and t_rel is not None,
           f"deleting the load balancer withdraws {vip}/32 from the router and the fake shows "
           f"its reservation released (DELETE /ips/{{id}})", v.tail())
        dels = [r for r in fake.requests() if r["method"] == "DELETE"]
        ok(len(dels) == 1 and res and dels[0]["path"].endswith(res[0]["id"]),
           "exactly one DELETE, for that reservation; the other load balancer's stays",
           dels)
        wait_for(lambda: uuid not in open(os.path.join(self.state_dir, "metal-ips")).read(),
                 5, 0.02)
        with open(os.path.join(self.state_dir, "metal-ips")) as f:
            rec = f.read()
        ok(uuid not in rec and self.lbs["api"] in rec, "and it leaves vipd's record", rec)

    # --- 5: kill -9 between reservation and announcement ---------------------------------------

    def stage_kill9(self):
        v, fake = self.v, self.fake
        ok(fake.fail({"path_regex": "/ips$", "method": "POST", "after": True, "drop": True}),
           "fault queued: the next POST /ips reserves, then the connection is cut unanswered")
        since = fake.last_seq()
        st, lb = v.api("POST", "/loadbalancer", lb_body("killed"))
        if not ok(st == 201, "POST /loadbalancer", lb):
            return
        uuid = self.lbs["killed"] = lb["uuid"]
        t = wait_for(lambda: any(r["method"] == "POST" and r["status"] == "dropped"
                                 for r in fake.requests(since)), 10, 0.002)
        pending = self.lb(uuid).get("status")
        v.kill9()
        res = fake.reservations(uuid)
        ok(t is not None and pending == "pending" and len(res) == 1,
           "vipd killed with SIGKILL once the reservation exists but before vipd knew of it "
           "(the load balancer still pending)", f"{pending} {res}")
        vip = res[0]["address"] if res else None
        ok(vip and not self.rw.has(vip), f"{vip} was never announced", self.rw.routes())
        since = fake.last_seq()
        self.v = v = self.vipd()
        t0 = time.monotonic()
        ok(v.start(), "vipd restarts with the same state directory", v.tail())
        t = wait_for(lambda: self.lb(uuid).get("status") == "active", 30, 0.02)
        t_route = wait_for(lambda: vip and self.rw.has(vip), 30, 0.005)
        figure(f"restart -> adopted and at the router in {ms(time.monotonic() - t0)}")
        posts = [r for r in fake.requests(since) if r["method"] == "POST"]
        ok(t is not None and self.lb(uuid).get("vip") == vip and not posts and
           len(fake.reservations(uuid)) == 1,
           "after the restart the load balancer gets that reservation from the API's tagged "
           "list: no second POST, one reservation", f"posts {posts}\n{v.tail()}")
        ok(t_route is not None, f"{vip}/32 is announced to the router", self.rw.routes())
        other = self.lbs["api"]
        ok(self.lb(other).get("status") == "active" and len(fake.reservations(other)) == 1,
           "the other load balancer kept its address across the kill (from vipd's record)",
           self.lb(other))
        ok("adopted" in v.logs(), "the log says the address was adopted",
           v.tail())

    # --- 6: the neighbours read again ----------------------------------------------------------

    def stage_refresh(self):
        v, fake = self.v, self.fake
        path = os.path.join(self.routes_dir, "bird-peers.conf")
        vip = self.lb(self.lbs["api"]).get("vip")
        old = ["vipd_metal4_1", "vipd_metal4_2"]
        before, configures = self.node_protocols(), self.bird_configures()
        st, cur = fake.control("GET", "/_fake/neighbors")
        nbs = cur.get("bgp_neighbors") if st == 200 else None
        if not ok(nbs and len(nbs) == 1 and nbs[0]["peer_ips"] == PEERS and
                  all("Established" in before.get(p, "") for p in old),
                  "before: the fake lists one IPv4 neighbour with peers .1 and .2, and the node "
                  "BIRD has both sessions Established", f"{cur}\n{before}"):
            return
        nbs[0]["peer_ips"] = PEERS + [NEW_PEER]
        st, _ = fake.control("POST", "/_fake/neighbors", {"bgp_neighbors": nbs})
        ok(st == 200, f"Equinix changes the device's neighbours: the fake now lists a third "
           f"peer, {NEW_PEER}")
        t0 = time.monotonic()
        v.proc.send_signal(signal.SIGHUP)
        t_file = wait_for(lambda: f"neighbor {NEW_PEER} as 65530;" in read_text(path), 5, 0.01)
        t_file = t_file if t_file is None else time.monotonic() - t0
        t_bird = wait_for(lambda: "vipd_metal4_3" in self.node_protocols(), 5, 0.01)
        t_bird = t_bird if t_bird is None else time.monotonic() - t0
        figure(f"SIGHUP -> peer file rewritten {ms(t_file)}, the node BIRD has the new "
               f"session {ms(t_bird)}")
        text = read_text(path)
        ok(t_file is not None and all(f"neighbor {p} as 65530;" in text
                                      for p in PEERS + [NEW_PEER]),
           "SIGHUP (no config file): vipd reads the neighbours again and rewrites the peer file "
           "with the new peer and the two it had", text)
        log = v.logs()
        line = [x for x in log.splitlines() if "BGP neighbours changed" in x]
        ok(len(line) == 1 and f"added={NEW_PEER}" in line[0] and "sessions=2->3" in line[0],
           "one info line names the change (sessions 2 -> 3, the peer added)",
           line or v.tail())
        after = self.node_protocols()
        n = self.bird_configures()
        ok(t_bird is not None and configures is not None and n is not None and n > configures,
           f"BIRD was asked to configure ({configures} -> {n} configures) and now has "
           f"vipd_metal4_3: {after.get('vipd_metal4_3')}", after)
        ok(all("Established" in after.get(p, "") and after.get(p) == before.get(p) for p in old),
           "the two sessions up before stay Established and were not restarted (same since)",
           f"before {before}\nafter {after}")
        ok(vip and self.rw.has(vip) and len(self.peer_routes(vip)) == 2,
           f"{vip}/32 still reaches the router (and both peers have it)", self.rw.routes())

        st0, configures = os.stat(path), self.bird_configures()
        since = fake.last_seq()
        v.proc.send_signal(signal.SIGHUP)
        t = wait_for(lambda: any(r["path"].endswith("/bgp/neighbors") and r["status"] == 200
                                 for r in fake.requests(since)), 5, 0.01)
        time.sleep(0.3)  # vipd acts on the answer as it arrives; give it time to (not) act
        st1 = os.stat(path)
        ok(t is not None and (st1.st_ino, st1.st_mtime_ns) == (st0.st_ino, st0.st_mtime_ns) and
           read_text(path) == text,
           "a SIGHUP with nothing changed: vipd asks the API again and leaves the peer file "
           "alone (same inode, mtime and content)", fake.requests(since))
        n = self.bird_configures()
        ok(n is not None and n == configures and
           len([x for x in v.logs().splitlines() if "BGP neighbours changed" in x]) == 1,
           f"and BIRD is not configured ({configures} -> {n} configures), nothing logged",
           v.tail())

    # --- 7: SIGTERM keeps reservations --------------------------------------------------------

    def stage_stop(self):
        v, fake = self.v, self.fake
        before = len(fake.reservations())
        rc = v.stop()
        ok(rc == 0 and len(fake.reservations()) == before == 2,
           "SIGTERM: vipd exits 0 and releases nothing (both reservations stay)",
           f"rc {rc}, reservations {before} -> {len(fake.reservations())}")

    # --- 8: tokens ----------------------------------------------------------------------------

    def stage_tokens(self):
        v = self.vipd(token="not-the-token", dataplane=False)
        t0 = time.monotonic()
        v.start(timeout=5)
        try:
            rc = v.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        log = v.logs()
        ok(rc not in (None, 0) and "refused the token (METAL_AUTH_TOKEN or --token-file)" in log
           and "not-the-token" not in log,
           f"a wrong token: vipd exits non-zero ({rc}, {ms(time.monotonic() - t0)}) with a "
           f"message naming the token, not quoting it", log[-2000:])
        v = self.vipd(token=None, dataplane=False)
        v.start(timeout=5)
        try:
            rc = v.proc.wait(30)
        except subprocess.TimeoutExpired:
            rc = None
        log = v.logs()
        ok(rc == 1 and "METAL_AUTH_TOKEN" in log and "--token-file" in log,
           "no token: vipd exits 1 naming both ways to give one", log[-1000:])


def multihop(r):
    """Metal's usual set-up, multihop peers of both families behind the gateway, in a
    namespace of its own: the peer file says multihop, the host routes to the four peers go
    in through the metadata's gateways marked proto 118, follow a peer Equinix swaps (on
    SIGHUP), and leave on exit."""
    ns = r.mh_ns = Netns(f"{r.topo.tag}-mh")
    subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True, timeout=30)
    ns.ip("link", "set", "lo", "up")
    ns.ip("link", "add", "mh0", "type", "veth", "peer", "name", "mh1")
    ns.ip("addr", "add", "10.67.50.1/31", "dev", "mh0")
    ns.ip("addr", "add", "2001:db8:45e1:5000::1/127", "dev", "mh0", "nodad")
    ns.ip("link", "set", "mh0", "up")
    ns.ip("link", "set", "mh1", "up")
    # someone else's route to one peer: vipd must leave it alone
    ns.ip("route", "add", "169.254.255.2/32", "via", "10.67.50.0", "proto", "static")
    host = socket.gethostname()
    # a device whose name merely starts like this host's: the API's filter finds it too
    r.mh_fake = fake = Fake(ns, r.d, ["--md5", MD5, "--hostname", host, "--extra-device",
                                      host + "0"])
    if not ok(fake.start(), "multihop: a fake with Metal's default neighbours (multihop, IPv4 "
              "and IPv6) in a namespace of its own", fake.errors()):
        return
    d = tmpdir("vipd-mt-mh-")
    v = NsVipd(ns, ["--dataplane", "none", "--bgp", "--bird-socket", os.path.join(d, "no.ctl"),
                    "--bird-routes", d, "--project", PROJECT, "--metro", "NY",
                    "--metal-api-url", fake.api_url(), "--metal-metadata-url", fake.meta_url()],
               nsenter=True)
    v.env["METAL_AUTH_TOKEN"] = TOKEN
    r.vipds.append(v)
    started = v.start() and wait_for(lambda: "Equinix Metal ready" in v.logs(), 20, 0.05)
    ok(started, "vipd --metro NY starts against it", v.tail())
    try:
        with open(os.path.join(d, "bird-peers.conf")) as f:
            peers = f.read()
    except OSError as e:
        peers = str(e)
    ok(peers.count("multihop 4;") == 4 and "protocol bgp vipd_metal6_2" in peers and
       "neighbor fc00::e as 65530;" in peers and f'password "{MD5}";' in peers,
       "the peer file has four multihop sessions, two per family, with MD5", peers)
    r4 = ns.ip("route", "show", "proto", "118")
    r6 = ns.ip("-6", "route", "show", "proto", "118")
    ok("169.254.255.1 via 10.67.50.0 dev mh0" in r4 and "169.254.255.2" not in r4 and
       "fc00::e via 2001:db8:45e1:5000:: dev mh0" in r6 and "fc00::f via" in r6,
       "host routes to the multihop peers go in via the metadata's gateways, proto 118; the "
       "operator's own route to 169.254.255.2 stays theirs", f"{r4}\n{r6}\n{v.tail()}")
    # Equinix swaps a peer: SIGHUP brings the host routes in line
    st, cur = fake.control("GET", "/_fake/neighbors")
    nbs = cur.get("bgp_neighbors", []) if st == 200 else []
    for nb in nbs:
        if nb["address_family"] == 4:
            nb["peer_ips"] = ["169.254.255.2", "169.254.255.3"]
    fake.control("POST", "/_fake/neighbors", {"bgp_neighbors": nbs})
    v.proc.send_signal(signal.SIGHUP)
    t = wait_for(lambda: "BGP neighbours changed" in v.logs(), 5, 0.01)
    r4 = ns.ip("route", "show", "proto", "118")
    r6 = ns.ip("-6", "route", "show", "proto", "118")
    peers = read_text(os.path.join(d, "bird-peers.conf"))
    ok(t is not None and "169.254.255.3 via 10.67.50.0 dev mh0" in r4 and
       "169.254.255.1" not in r4 and "169.254.255.2" not in r4 and
       "fc00::e via" in r6 and "fc00::f via" in r6 and
       "169.254.255.2 via 10.67.50.0" in ns.ip("route", "show") and
       "neighbor 169.254.255.3 as" in peers and "neighbor 169.254.255.1 as" not in peers,
       "Equinix swaps peer .1 for .3, then SIGHUP: the peer file follows, vipd's route to .1 "
       "goes and one to .3 comes; the IPv6 routes and the operator's route to .2 stay",
       f"{r4}\n{r6}\n{v.tail()}")
    rc = v.stop()
    r4 = ns.ip("route", "show", "proto", "118")
    r6 = ns.ip("-6", "route", "show", "proto", "118")
    ok(rc == 0 and not r4.strip() and not r6.strip() and
       "169.254.255.2 via 10.67.50.0" in ns.ip("route", "show"),
       "on exit vipd removes exactly its routes", f"rc {rc}\n{r4}\n{r6}")

    # no metadata service: the project's device named exactly like this host
    st, state = fake.control("GET", "/_fake/state")
    want = [dv["id"] for dv in state.get("devices", []) if dv["hostname"] == host]
    v = NsVipd(ns, ["--dataplane", "none", "--bgp", "--bird-socket", os.path.join(d, "no.ctl"),
                    "--bird-routes", d, "--project", PROJECT, "--metro", "ny",
                    "--metal-api-url", fake.api_url(),
                    "--metal-metadata-url", "http://127.0.0.1:1/metadata"], nsenter=True)
    v.env["METAL_AUTH_TOKEN"] = TOKEN
    v.state_dir = tmpdir("vipd-mt-mh-state-")
    r.vipds.append(v)
    started = v.start() and wait_for(lambda: "Equinix Metal ready" in v.logs(), 20, 0.05)
    log = v.logs()
    ok(started and len(want) == 1 and f"device found by hostname\" device={want[0]}" in log and
       "no answer from the metadata service" in log,
       f"without the metadata service vipd takes the device named exactly {host!r}, not "
       f"{host + '0'!r}", v.tail())
    v.stop()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not shutil.which("bird") and not os.path.exists("/usr/sbin/bird"):
        ok(False, "bird (Debian bird2) is installed")
        return
    r = Run()
    try:
        if r.setup() and r.stage_start() and r.stage_create():
            for stage in (r.stage_faults, r.stage_delete, r.stage_kill9, r.stage_refresh,
                          r.stage_stop, r.stage_tokens):
                stage()
            multihop(r)
    except Exception:  # a bug in the test itself: one failed check, then clean up
        ok(False, "the test ran to its end", traceback.format_exc())
    finally:
        r.cleanup()
    figure(f"wall time {time.time() - T0:.1f} s")


if __name__ == "__main__":
    main()
    done()
