#!/usr/bin/python3
"""The IPVS demo's guest half: runs inside user-mode-linux, started by contrib/demo-ipvs.sh
through tests/uml/uml-run, and narrates on stdout. It refuses to run anywhere else (it
changes IPVS, nftables and addresses of the network namespace it runs in).

The guest's init namespace is the director, where vipd --dataplane ipvs runs; the client and
three backends are namespaces made here. The VIPs are routed to the director (they sit on its
lo: vipd runs without --arp/--bgp, "the operator routes the VIPs"):

  client ud-cli  eth0 10.0.1.2 ---- veth ---- ud-cli 10.0.1.1   director
                 eth1 10.0.2.2 --+            VIPs on lo: 10.0.0.10 web    nat      tcp/80
                                 |                        10.0.0.20 direct dsr      tcp/8080
                      bridge ud-br 10.0.2.1                10.0.0.30 full   fullnat  tcp/80
                  |             |             |
      ud-b1 10.0.2.11   ud-b2 10.0.2.12   ud-b3 10.0.2.13   (route 10.0.1.0/24 via 10.0.2.1;
                                                             10.0.0.20 on lo for dsr)

The client reaches web and full through the director on eth0 and direct on the bridge (dsr
replies go from the backend straight to the client). One python process does everything:
every process costs ~0.1 s in UML, so the client's sockets are made in its namespace by
setns(2) on this thread and back, the servers are forked children, the API is read over
http.client. Processes: ip, ipvsadm, nft, vipctl, vipd.

Environment: VIPD and VIPCTL (or BUILDDIR) locate the binaries; VIPD_DEMO_FULLNAT=1 when the
kernel has nftables NAT (adds the fullnat load balancer); VIPD_DEMO_COLOR=1 for bold headings.
Exit status 0 when everything shown worked as described, 1 otherwise (each problem is named).
"""
import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "uml"))
from umltest import (SERVERS, sock_in, spawn_server, stop_server, talk,  # noqa: E402
                     wait_for)  # (the tests' namespace helpers and backend servers)

P = "ud-"
CLI = P + "cli"
BACKENDS = {"b1": "10.0.2.11", "b2": "10.0.2.12", "b3": "10.0.2.13"}
WEB, DIRECT, FULL = "10.0.0.10", "10.0.0.20", "10.0.0.30"
CLIENT_IP, CLIENT_BR, DIRECTOR_BR = "10.0.1.2", "10.0.2.2", "10.0.2.1"
FOREIGN = "10.9.9.9"
PORT = 8080
API_PORT = 10001
API = f"http://127.0.0.1:{API_PORT}"
BUILDDIR = os.environ.get("BUILDDIR", "")
VIPD = os.environ.get("VIPD") or os.path.join(BUILDDIR, "vipd")
VIPCTL = os.environ.get("VIPCTL") or os.path.join(os.path.dirname(VIPD), "vipctl")
FULLNAT = os.environ.get("VIPD_DEMO_FULLNAT") == "1"
BOLD, PLAIN = ("\033[1m", "\033[0m") if os.environ.get("VIPD_DEMO_COLOR") == "1" else ("", "")
HC = ["--check", "tcp", "--interval", "500ms", "--timeout", "300ms", "--fall", "2",
      "--rise", "2"]
HC_JSON = {"type": "tcp", "interval": "500ms", "timeout": "300ms", "fail_count": 2,
           "rise_count": 2}

T0 = time.monotonic()
T = tempfile.mkdtemp(prefix="vipd-demo-ipvs-")
CONFIG = os.path.join(T, "vipd.json")
LOG = os.path.join(T, "vipd.log")
SUMMARY = []
PROBLEMS = []


# ---- narration

def say(title):
    print(f"\n{BOLD}== [{time.monotonic() - T0:5.1f}s] {title}{PLAIN}", flush=True)


def line(text=""):
    print(f"  {text}" if text else "", flush=True)


def note(text):
    SUMMARY.append(text)


def expect(cond, what):
    """Records a problem (the demo then exits 1) when something did not go as narrated."""
    if not cond:
        PROBLEMS.append(what)
        line(f"!! NOT AS EXPECTED: {what}")
    return cond


def run(*argv, stdin=None):
    """(rc, stdout+stderr) of one command."""
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def show(*argv, grep=None):
    """Runs a command and prints it with its output (only the lines matching grep, if set)."""
    shown = " ".join(os.path.basename(a) if a in (VIPCTL,) else a for a in argv
                     if a not in ("--api", API))
    print(f"  $ {shown}", flush=True)
    rc, out = run(*argv)
    for text in out.rstrip("\n").splitlines():
        if grep is None or re.search(grep, text):
            print(f"    {text}", flush=True)
    return rc, out


def vipctl(*args, grep=None):
    return show(VIPCTL, "--api", API, *args, grep=grep)


def topology():
    director = f"""link add {P}br type bridge
addr add {DIRECTOR_BR}/24 dev {P}br
link set {P}br up
netns add {CLI}
link add {P}cli type veth peer name eth0 netns {CLI}
addr add 10.0.1.1/24 dev {P}cli
link set {P}cli up
link add {P}cli2 type veth peer name eth1 netns {CLI}
link set {P}cli2 master {P}br up
addr add {WEB}/32 dev lo
addr add {DIRECT}/32 dev lo
addr add {FULL}/32 dev lo
"""
    client = f"""link set lo up
addr add {CLIENT_IP}/24 dev eth0
link set eth0 up
route add default via 10.0.1.1
addr add {CLIENT_BR}/24 dev eth1
link set eth1 up
route add {DIRECT} via {DIRECTOR_BR} dev eth1
"""
    for name in BACKENDS:
        director += (f"netns add {P}{name}\nlink add {P}{name} type veth peer name eth0 netns "
                     f"{P}{name}\nlink set {P}{name} master {P}br up\n")
    out = [run("ip", "-b", "-", stdin=director), run("ip", "-n", CLI, "-b", "-", stdin=client)]
    for name, ip in BACKENDS.items():
        out.append(run("ip", "-n", P + name, "-b", "-", stdin=f"""link set lo up
addr add {ip}/24 dev eth0
link set eth0 up
route add 10.0.1.0/24 via {DIRECTOR_BR}
addr add {DIRECT}/32 dev lo
"""))
    bad = [o for rc, o in out if rc]
    if bad:
        raise RuntimeError("topology: " + " / ".join(bad))


def cleanup_topology():
    run("ip", "-force", "-b", "-", stdin="".join(f"netns del {P}{n}\n" for n in BACKENDS) +
        f"""netns del {CLI}
link del {P}br
link del {P}cli
addr del {WEB}/32 dev lo
addr del {DIRECT}/32 dev lo
addr del {FULL}/32 dev lo
""")


# ---- backend servers: forked children in their namespace, stopped by PID

# dsr: the backends never answer ARP for the VIP they hold on lo.
DSR_SYSCTLS = (("ipv4/conf/all/arp_ignore", "1"), ("ipv4/conf/all/arp_announce", "2"))


def start_server(name):
    """The tests' backend server (greets "NAME PEER", echoes "NAME LINE") in NAME's namespace."""
    if not spawn_server(name, P + name, PORT, sysctls=DSR_SYSCTLS):
        raise RuntimeError(f"backend server {name} did not start")


def connect(vip, port, timeout=2.0):
    """(socket, backend name, source the backend saw) or (None, "error: ...", None)."""
    s = sock_in(CLI)
    s.settimeout(timeout)
    try:
        s.connect((vip, port))
        buf = b""
        while not buf.endswith(b"\n") and len(buf) < 200:
            d = s.recv(200)
            if not d:
                break
            buf += d
        words = buf.decode().split()
        if len(words) != 2:
            raise ConnectionError("no greeting")
        return s, words[0], words[1]
    except OSError as e:
        s.close()
        return None, "error: " + (os.strerror(e.errno) if e.errno else type(e).__name__), None


def spread(vip, port, n):
    """Opens n connections one after the other: (Counter of who answered, set of sources the
    backends saw, seconds taken)."""
    t = time.monotonic()
    who, seen = collections.Counter(), set()
    for _ in range(n):
        s, name, peer = connect(vip, port)
        if s:
            s.close()
            seen.add(peer)
        who[name] += 1
    return who, seen, time.monotonic() - t


def fmt(who):
    names = [b for b in BACKENDS] + sorted(k for k in who if k not in BACKENDS)
    return " ".join(f"{k}={who.get(k, 0)}" for k in names)


# ---- readers: vipd's API (no process), /proc/net/ip_vs (no process), vipd's log

def api(path):
    c = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, json.loads(r.read().decode() or "null")
    finally:
        c.close()


def lb_json(name):
    st, lbs = api("/loadbalancers")
    for lb in lbs if st == 200 else []:
        if lb["name"] == name:
            return api(f"/loadbalancer/{lb['uuid']}")[1]
    return {}


def backend_of(name, ip):
    return next((b for b in lb_json(name).get("backends", []) if b["ip"] == ip), {})


def _addr(hexap):
    a, p = hexap.split(":")
    return f"{socket.inet_ntoa(bytes.fromhex(a))}:{int(p, 16)}"


def proc_ipvs():
    """/proc/net/ip_vs: {"TCP 10.0.0.10:80": {"10.0.2.11:8080": (fwd, weight, active,
    inactive)}}."""
    svcs, cur = {}, None
    with open("/proc/net/ip_vs") as f:
        for text in f.read().splitlines()[3:]:
            w = text.split()
            if len(w) >= 2 and w[0] in ("TCP", "UDP") and ":" in w[1]:
                cur = svcs.setdefault(f"{w[0]} {_addr(w[1])}", {})
            elif len(w) >= 6 and w[0] == "->" and cur is not None:
                cur[_addr(w[1])] = (w[2], int(w[3]), int(w[4]), int(w[5]))
    return svcs


def weight(svc, ip):
    d = proc_ipvs().get(svc, {}).get(f"{ip}:{PORT}")
    return d[1] if d else None


def log_lines():
    with open(LOG, errors="replace") as f:
        return f.read().splitlines()


def synced_messages(lines):
    return [int(m.group(1)) for m in (re.search(r'msg="IPVS synced".*messages=(\d+)', x)
                                      for x in lines) if m]


def messages_after(mark, timeout=3):
    """The IPVS change messages vipd sent in the syncs logged after line number mark: waits
    for the first sync that sends something, then for quiet."""
    wait_for(lambda: any(synced_messages(log_lines()[mark:])), timeout)
    time.sleep(0.3)
    return sum(synced_messages(log_lines()[mark:]))


def ipvs_stats():
    """ipvsadm -Ln --stats --exact: {"TCP 10.0.0.20:8080": (conns, inpkts, outpkts)}."""
    rc, out = run("ipvsadm", "-Ln", "--stats", "--exact")
    stats = {}
    for text in out.splitlines():
        w = text.split()
        if len(w) >= 5 and w[0] in ("TCP", "UDP"):
            stats[f"{w[0]} {w[1]}"] = (int(w[2]), int(w[3]), int(w[4]))
    return stats


# ---- vipd

class Vipd:
    def __init__(self):
        self.log = open(LOG, "ab")
        self.proc = subprocess.Popen(
            [VIPD, "--foreground", "--dataplane", "ipvs", "--config", CONFIG,
             "--state-dir", os.path.join(T, "state"), "--api-listen", f"127.0.0.1:{API_PORT}",
             "--log-level", "debug"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def ready(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return api("/healthz")[0] == 200
            except OSError:
                return False
        return wait_for(up, timeout) is True

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def write_config(b3_weight):
    """vipd.json: the dsr load balancer "direct", declared in the file (SIGHUP reloads it)."""
    lb = {"name": "direct", "vip": DIRECT, "port": PORT, "protocol": "tcp",
          "scheduler": "wrr", "forwarding": "dsr", "health_check": HC_JSON,
          "backends": [{"ip": ip, "port": PORT, "weight": b3_weight if n == "b3" else 1}
                       for n, ip in BACKENDS.items()]}
    tmp = CONFIG + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"loadbalancers": [lb]}, f, indent=2)
    os.rename(tmp, CONFIG)


# ---- the acts

WEB_SVC, DIRECT_SVC, FULL_SVC = f"TCP {WEB}:80", f"TCP {DIRECT}:{PORT}", f"TCP {FULL}:80"
VIPD_PROC = []
HELD = []


def act_start():
    say(f"user-mode-linux {os.uname().release}: the director is this guest's init namespace")
    line("client ud-cli 10.0.1.2 --- director --- bridge 10.0.2.0/24 --- backends b1 b2 b3 "
         "(10.0.2.11-13)")
    line(f"VIPs {WEB} (nat), {DIRECT} (dsr)" + (f", {FULL} (fullnat)" if FULLNAT else "") +
         " are routed to the director (on its lo), no --arp/--bgp")
    topology()
    for name in BACKENDS:
        start_server(name)
    line("backend servers listening on :8080 (each greets with its name and the source it "
         "sees)")
    line("a service vipd does not own, made with ipvsadm before vipd starts:")
    run("ipvsadm", "-A", "-t", f"{FOREIGN}:80", "-s", "rr")
    run("ipvsadm", "-a", "-t", f"{FOREIGN}:80", "-r", f"{BACKENDS['b1']}:{PORT}", "-m")
    show("ipvsadm", "-Ln")

    say("vipd --dataplane ipvs --config vipd.json --api-listen 127.0.0.1:10001 "
        "--state-dir (temp dir)")
    write_config(1)
    line("vipd.json declares one load balancer, direct (dsr, wrr, b1 b2 b3 weight 1)")
    v = Vipd()
    VIPD_PROC.append(v)
    t = time.monotonic()
    if not expect(v.ready(), "vipd answers /healthz"):
        raise RuntimeError("vipd did not start")
    line(f"vipd answers its API {time.monotonic() - t:.2f}s after it started; from its log:")
    for text in log_lines():
        if re.search(r'sysctl set for IPVS|IPVS plane ready|msg="ready"', text):
            line("  " + re.sub(r"^\S+ ", "", text))


def act_create():
    say("load balancers through the API with vipctl (health checks: tcp every 500ms, down "
        "after 2 failures)")
    vipctl("lb", "create", "web", "--vip", WEB, "--port", "80", "--forwarding", "nat",
           "--scheduler", "wrr", *HC)
    for name, ip in BACKENDS.items():
        vipctl("backend", "add", "web", f"{ip}:{PORT}", "--weight", "2" if name == "b3" else "1")
    if FULLNAT:
        vipctl("lb", "create", "full", "--vip", FULL, "--port", "80", "--forwarding", "fullnat",
               "--scheduler", "rr", *HC)
        for ip in BACKENDS.values():
            vipctl("backend", "add", "full", f"{ip}:{PORT}")
    names = ["web", "direct"] + (["full"] if FULLNAT else [])
    t = time.monotonic()
    up = wait_for(lambda: all(b.get("health") == "up" for n in names
                              for b in lb_json(n).get("backends", [])), 10, 0.1)
    expect(up, "every backend's health check says up")
    line(f"every backend up {time.monotonic() - t:.2f}s later (2 successful checks each)")
    vipctl("lb", "list")


def act_traffic():
    say("real TCP from the client namespace: which backend answered, what source it saw")
    n = 240
    who, seen, secs = spread(WEB, 80, n)
    line(f"web    {WEB}:80    nat wrr 1:1:2, {n} connections ({secs:.1f}s): {fmt(who)}; "
         f"backends saw {', '.join(sorted(seen))}")
    expect(sum(who[b] for b in BACKENDS) == n, "web: every connection answered")
    expect(seen == {CLIENT_IP}, "nat: the backends see the client's own address")
    note(f"nat (IPVS masq), wrr 1:1:2: {n} connections -> {fmt(who)}; backends saw the "
         f"client {CLIENT_IP}")
    n = 150
    who, seen, secs = spread(DIRECT, PORT, n)
    line(f"direct {DIRECT}:{PORT} dsr wrr 1:1:1, {n} connections ({secs:.1f}s): {fmt(who)}; "
         f"backends saw {', '.join(sorted(seen))}")
    expect(sum(who[b] for b in BACKENDS) == n, "direct: every connection answered")
    expect(seen == {CLIENT_BR}, "dsr: the backends see the client's address")
    note(f"dsr (IPVS droute), wrr 1:1:1: {n} connections -> {fmt(who)}; backends saw the "
         f"client {CLIENT_BR} and answered it directly")
    if FULLNAT:
        who, seen, secs = spread(FULL, 80, n)
        line(f"full   {FULL}:80    fullnat rr, {n} connections ({secs:.1f}s): {fmt(who)}; "
             f"backends saw {', '.join(sorted(seen))}")
        expect(sum(who[b] for b in BACKENDS) == n, "full: every connection answered")
        expect(seen == {DIRECTOR_BR}, "fullnat: the backends see the director's address")
        note(f"fullnat (IPVS masq + SNAT in nft table inet vipd), rr: {n} connections -> "
             f"{fmt(who)}; backends saw the director {DIRECTOR_BR}, not the client")

    say("the kernel's view (ipvsadm) next to vipd's (vipctl lb show)")
    # IPVS folds its per-CPU counters into the totals it reports every 2 s.
    want = {WEB_SVC: 240, DIRECT_SVC: 150, **({FULL_SVC: 150} if FULLNAT else {})}
    wait_for(lambda: all(ipvs_stats().get(k, (0,))[0] >= v for k, v in want.items()), 3, 0.2)
    show("ipvsadm", "-Ln")
    show("ipvsadm", "-Ln", "--stats")
    _, in_pkts, out_pkts = ipvs_stats().get(DIRECT_SVC, (0, 0, -1))
    line(f"direct (dsr): {in_pkts} packets in, {out_pkts} out through the director: the "
         "backends answer the client directly")
    expect(in_pkts > 0 and out_pkts == 0, "dsr: no reply packet crosses the director")
    note(f"dsr: the director saw {in_pkts} packets in and {out_pkts} out (replies bypass it)")
    vipctl("lb", "show", "web")


def act_weight():
    say("weight change: vipd.json gives b3 weight 4 in direct, then SIGHUP")
    mark = len(log_lines())
    write_config(4)
    t = time.monotonic()
    VIPD_PROC[0].proc.send_signal(signal.SIGHUP)
    w = wait_for(lambda: weight(DIRECT_SVC, BACKENDS["b3"]) == 4, 5, 0.02)
    ms = (time.monotonic() - t) * 1000
    msgs = messages_after(mark)
    expect(w, "IPVS shows b3's new weight 4")
    expect(msgs == 1, f"the weight change is 1 IPVS message (sent {msgs})")
    line(f"IPVS has weight 4 for b3 {ms:.0f} ms after the SIGHUP; vipd sent {msgs} IPVS "
         "message(s) for it (log: IPVS synced ... messages=N)")
    show("ipvsadm", "-Ln", "-t", f"{DIRECT}:{PORT}")
    n = 150
    who, _, _ = spread(DIRECT, PORT, n)
    line(f"{n} connections to direct now: {fmt(who)}")
    note(f"weight change by SIGHUP (b3 1 -> 4): {msgs} IPVS message, in IPVS {ms:.0f} ms "
         f"later; {n} connections -> {fmt(who)}")


def act_drain():
    say("drain b3 of web while a connection to b3 stays open")
    hold = None
    for _ in range(20):
        s, name, _ = connect(WEB, 80)
        if s and name == "b3":
            hold = s
            break
        if s:
            s.close()
    if not expect(hold is not None, "a connection to b3 through web"):
        return
    HELD.append(hold)
    line("the client holds a connection to b3 through web")
    mark = len(log_lines())
    vipctl("backend", "drain", "web", f"{BACKENDS['b3']}:{PORT}")
    w0 = wait_for(lambda: weight(WEB_SVC, BACKENDS["b3"]) == 0, 5, 0.02)
    msgs = messages_after(mark)
    expect(w0, "IPVS weight 0 for the drained backend")
    expect(msgs == 1, f"the drain is 1 IPVS message (sent {msgs})")
    show("ipvsadm", "-Ln", "-t", f"{WEB}:80")
    act = proc_ipvs().get(WEB_SVC, {}).get(f"{BACKENDS['b3']}:{PORT}", (0, 0, 0))[2]
    line(f"vipd sent {msgs} IPVS message: b3's weight 0, and IPVS keeps its open connection "
         f"(ActiveConn {act})")
    expect(act >= 1, "IPVS counts the held connection as active")
    st = wait_for(lambda: (lambda b: b if b.get("state") == "draining" else None)(
        backend_of("web", BACKENDS["b3"])), 3, 0.1)
    expect(st, "vipctl says draining")
    vipctl("lb", "show", "web", grep=r"^BACKEND|10\.0\.2\.")
    n = 100
    who, _, _ = spread(WEB, 80, n)
    alive = all(talk(hold, f"still there {i}") == f"b3 still there {i}" for i in range(5))
    line(f"{n} new connections: {fmt(who)}; the held connection to b3 still echoes: {alive}")
    expect(who["b3"] == 0, "no new connection to the drained b3")
    expect(alive, "the held connection works after the drain")
    hold.close()
    HELD.remove(hold)
    t = time.monotonic()
    drained = wait_for(lambda: backend_of("web", BACKENDS["b3"]).get("state") == "drained",
                       10, 0.1)
    ms = (time.monotonic() - t) * 1000
    expect(drained, "vipctl says drained once the held connection closed")
    act = proc_ipvs().get(WEB_SVC, {}).get(f"{BACKENDS['b3']}:{PORT}", (0, 0, -1))[2]
    line(f"the client closed it: vipd says drained {ms:.0f} ms later (IPVS ActiveConn {act})")
    vipctl("lb", "show", "web", grep=r"^BACKEND|10\.0\.2\.13")
    note(f"drain b3 (1 IPVS message, weight 0): {n} new connections -> {fmt(who)}; the open "
         f"connection kept working; draining -> drained {ms:.0f} ms after it closed")
    vipctl("backend", "undrain", "web", f"{BACKENDS['b3']}:{PORT}")
    expect(wait_for(lambda: weight(WEB_SVC, BACKENDS["b3"]) == 2, 5, 0.05),
           "undrain: weight 2 again")


def act_kill():
    svcs = [WEB_SVC, DIRECT_SVC] + ([FULL_SVC] if FULLNAT else [])
    say("kill b1's server: the health checks take b1 out (weight 0), traffic continues")
    b1 = BACKENDS["b1"]
    failed = tried = 0
    stop_server("b1")
    t = time.monotonic()
    down = None
    # Connections go on during the detection: those IPVS still sends to b1 are refused.
    while time.monotonic() - t < 8:
        _, name, _ = connect(WEB, 80)
        tried += 1
        failed += name.startswith("error")
        if (backend_of("web", b1).get("health") == "down" and
                all(weight(svc, b1) == 0 for svc in svcs)):
            down = time.monotonic() - t
            break
    if not expect(down is not None, "b1 down and weight 0 in every service within 8 s"):
        return
    ms = down * 1000
    line(f"b1 down and weight 0 in all {len(svcs)} services {ms:.0f} ms after its server died "
         "(checks every 500 ms, down after 2 failures)")
    line(f"during those {ms:.0f} ms: {tried} connections to web, {failed} refused (sent to b1)")
    show("ipvsadm", "-Ln")
    vipctl("lb", "show", "web", grep=r"^health:|^BACKEND|10\.0\.2\.")
    n = 120
    who, _, _ = spread(WEB, 80, n)
    line(f"{n} connections to web after: {fmt(who)}")
    expect(who["b1"] == 0 and sum(who[b] for b in BACKENDS) == n,
           "after detection every connection is answered, none by b1")
    note(f"b1 killed: down and weight 0 after {ms:.0f} ms ({failed} of {tried} connections "
         f"refused meanwhile); then {n} connections -> {fmt(who)}")
    start_server("b1")
    t = time.monotonic()
    back = wait_for(lambda: all(weight(svc, b1) == 1 for svc in svcs), 8, 0.05)
    ms = (time.monotonic() - t) * 1000
    expect(back, "b1 back in every service after its server restarted")
    line(f"b1's server restarted: back in IPVS {ms:.0f} ms later (2 successful checks)")
    note(f"b1 restarted: back in IPVS after {ms:.0f} ms")


def act_fullnat_table():
    say("fullnat's SNAT: vipd's own nftables table")
    show("nft", "list", "table", "inet", "vipd")


def act_stop():
    say("SIGTERM: vipd removes exactly its services" +
        (" and its nft table" if FULLNAT else ""))
    rc = VIPD_PROC[0].stop()
    expect(rc == 0, f"vipd exits 0 on SIGTERM (exit {rc})")
    for text in log_lines():
        if re.search(r"IPVS services removed|msg=\"stopped\"", text):
            line("log: " + re.sub(r"^\S+ ", "", text))
    show("ipvsadm", "-Ln")
    left = sorted(proc_ipvs())
    expect(left == [f"TCP {FOREIGN}:80"], f"only the foreign service is left ({left})")
    note(f"SIGTERM: vipd removed its {3 if FULLNAT else 2} services; the foreign one "
         f"({', '.join(left)}, made with ipvsadm) stays")
    if FULLNAT:
        _, out = show("nft", "list", "tables")
        gone = run("nft", "list", "table", "inet", "vipd")[0] != 0
        if not out.strip():
            line("  (no table left)")
        expect(gone, "the nft table inet vipd is gone")
        note(f"SIGTERM: nft table inet vipd removed: {gone}")


def main():
    if not os.access(VIPD, os.X_OK) or not os.access(VIPCTL, os.X_OK):
        print(f"ipvs_inside: {VIPD} or {VIPCTL} missing (set VIPD or BUILDDIR)", file=sys.stderr)
        return 2
    try:
        act_start()
        act_create()
        act_traffic()
        act_weight()
        act_drain()
        act_kill()
        if FULLNAT:
            act_fullnat_table()
        act_stop()
    except Exception as e:  # still cleans up and says why
        expect(False, f"the demo ran to the end ({type(e).__name__}: {e})")
    finally:
        cleanup()
    say("summary")
    for text in SUMMARY:
        line(text)
    if not FULLNAT:
        line("fullnat: not shown, this kernel has no nftables NAT")
    if PROBLEMS:
        line(f"{len(PROBLEMS)} thing(s) did not work as narrated:")
        for p in PROBLEMS:
            line(f"  - {p}")
    return 1 if PROBLEMS else 0


def cleanup():
    for s in HELD:
        s.close()
    for v in VIPD_PROC:
        if v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()
    if PROBLEMS and os.path.exists(LOG):
        line("the end of vipd's log:")
        for text in log_lines()[-25:]:
            line("  " + text)
    for name in list(SERVERS):
        stop_server(name)
    run("ipvsadm", "-D", "-t", f"{FOREIGN}:80")
    cleanup_topology()
    shutil.rmtree(T, ignore_errors=True)


if __name__ == "__main__":
    if not re.search(r"User Mode Linux", open("/proc/cpuinfo").read()):
        print("ipvs_inside: not inside user-mode-linux; run ./contrib/demo-ipvs.sh",
              file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
