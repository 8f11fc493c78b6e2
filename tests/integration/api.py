"""The real vipd on loopback: CLI, config checking, slb's curl session, bad input,
vipctl, persistence across SIGTERM and kill -9 (1,000 load balancers), SIGHUP reload."""
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import (VIPD, VIPCTL, SRCDIR, Vipd, done, free_port, isolate_network, ok, run,  # noqa: E402
                      tmpdir)

isolate_network()

RANGE = "192.168.1.200-192.168.1.250"


def in_range(ip):
    a = ipaddress.ip_address(ip)
    return ipaddress.ip_address("192.168.1.200") <= a <= ipaddress.ip_address("192.168.1.250")


# --- command line -----------------------------------------------------------
r = run([VIPD, "--help"])
flags = ["--arp", "--bgp", "--adapter", "--ipam-range", "--project", "--facility", "--metro",
         "--api-listen", "--bird-socket", "--dataplane", "--config", "--state-dir",
         "--check-config", "--log-level", "--foreground", "--version", "--help",
         "--bpf-pin-dir", "--xdp-unload", "--arp-refresh", "--bird-routes",
         "--graceful-shutdown", "--device", "--token-file", "--metal-api-url",
         "--metal-metadata-url", "--keep-ips"]
ok(r.returncode == 0 and all(f in r.stdout for f in flags), "vipd --help documents every flag",
   r.stdout + r.stderr)
r = run([VIPD, "-v"])
ok(r.returncode == 0 and r.stdout.startswith("vipd "), "vipd -v prints the version", r.stdout)
r = run([VIPD, "--dataplane", "dpdk"])
ok(r.returncode == 2 and "--dataplane" in r.stderr, "a bad flag value exits 2 naming the flag",
   r.stderr)
r = run([VIPD, "--check-config", "--project", "p", "--metro", "am"])
ok(r.returncode == 1 and "--project needs --bgp" in r.stderr,
   "--project p --metro am without --bgp is refused (elastic IPs are announced by BGP)", r.stderr)
r = run([VIPD, "--check-config", "--bgp", "--project", "p", "--metro", "am", "--facility", "am5",
         "--ipam-range", "10.9.0.0/24"])
ok(r.returncode == 1 and "exactly one of --metro" in r.stderr and "exclude each other" in r.stderr,
   "--project with both --metro and --facility, or with --ipam-range, is refused", r.stderr)
# This kernel has no IPVS (the UML tier runs it on one that has): a clear start-up error.
sd = tmpdir()
r = run([VIPD, "--foreground", "--dataplane", "ipvs", "--state-dir", sd,
         "--api-listen", f"127.0.0.1:{free_port()}"])
ok(r.returncode == 1 and "no IPVS" in r.stderr,
   "--dataplane ipvs on a kernel without IPVS exits 1 saying so", r.stderr)
r = run([VIPD, "--check-config", "--arp"])
ok(r.returncode == 1 and "--adapter" in r.stderr, "--arp without --adapter is refused", r.stderr)
r = run([VIPD, "--check-config", "--dataplane", "xdp"])
ok(r.returncode == 1 and "--adapter" in r.stderr, "--dataplane xdp without --adapter is refused",
   r.stderr)
man = os.path.join(SRCDIR, "man", "vipd.8")
if os.path.exists(man):
    text = open(man).read().replace("\\-", "-")
    missing = [f for f in flags + ["--api-token-file"] if f not in text]
    ok(not missing, "man/vipd.8 documents every flag", f"missing: {missing}")
else:
    ok(False, "man/vipd.8 exists")

# --- config checking ----------------------------------------------------------
d = tmpdir()
bad = os.path.join(d, "bad.json")
with open(bad, "w") as f:
    json.dump({"ipam_ranges": [RANGE], "loadbalancers": [
        {"name": "a", "port": 80},
        {"name": "b", "port": 81},
        {"name": "c", "port": 82, "backends": [{"ip": "10.0.0.1", "port": 70000}]},
    ], "colour": "blue"}, f)
r = run([VIPD, "--check-config", "-c", bad])
ok(r.returncode == 1, "--check-config rejects a bad file with exit 1", r.stderr)
ok("loadbalancers[2].backends[0].port" in r.stderr, "the error names the field path", r.stderr)
ok("colour" in r.stderr, "unknown keys are reported", r.stderr)
good = os.path.join(d, "good.json")
with open(good, "w") as f:
    json.dump({"ipam_ranges": [RANGE], "loadbalancers": [
        {"name": "web", "port": 80, "backends": [{"ip": "10.0.0.1", "port": 8080}]}]}, f)
r = run([VIPD, "--check-config", "-c", good])
ok(r.returncode == 0, "--check-config accepts a good file with exit 0", r.stderr)
example = os.path.join(SRCDIR, "contrib", "vipd.json.example")
if os.path.exists(example):
    r = run([VIPD, "--check-config", "-c", example])
    ok(r.returncode == 0, "the shipped example config is valid", r.stderr)


def persisted(lbs):
    """The load balancers without what a process learns at run time (health, probe results,
    counters), which a restart starts afresh."""
    out = []
    for lb in lbs if isinstance(lbs, list) else []:
        lb = {k: x for k, x in lb.items() if k not in ("healthy_backends", "announced", "stats")}
        lb["backends"] = [{k: x for k, x in b.items() if k not in ("health", "check", "stats")}
                          for b in lb.get("backends", [])]
        out.append(lb)
    return out


# --- slb's README session -------------------------------------------------------
v = Vipd(["--ipam-range", RANGE])
ok(v.start(), "vipd starts and answers /healthz", v.logs() if v.proc else "")
base = f"http://127.0.0.1:{v.port}"


def curl(*args):
    r = run(["curl", "-s", "-w", "\n%{http_code}"] + list(args))
    body, _, code = r.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body) if body else None
    except ValueError:
        return int(code), body


st, lb = curl("-X", "POST", f"{base}/loadbalancer", "-H", "Content-Type: application/json",
              "-d", '{"name":"test loadbalancer", "port": 6443}')
ok(st == 201 and isinstance(lb, dict) and in_range(lb.get("eip", "0.0.0.0")),
   "slb: create returns 201 with an eip from --ipam-range", (st, lb))
uuid = lb["uuid"] if isinstance(lb, dict) else "x"
st, lbs = curl("-s", f"{base}/loadbalancers")
ok(st == 200 and [x["uuid"] for x in lbs] == [uuid] and lbs[0]["backends"] == [],
   "slb: list shows it, backends [] not null", lbs)
st, be = curl("-X", "POST", f"{base}/loadbalancer/{uuid}/backend",
              "-d", '{"ip":"10.80.96.25", "port": 6443}')
ok(st == 201 and be.get("ip") == "10.80.96.25", "slb: add backend with curl -d (no JSON type)",
   (st, be))
st, lbs = curl("-s", f"{base}/loadbalancers")
ok(lbs[0]["backends"][0]["ip"] == "10.80.96.25" and lbs[0]["backends"][0]["port"] == 6443,
   "slb: the backend is listed with ip and port", lbs)
st, _ = curl("-X", "DELETE", f"{base}/loadbalancer/{uuid}/backend/{be['uuid']}")
ok(st == 200, "backend delete answers 200", st)
st, _ = curl("-X", "DELETE", f"{base}/loadbalancer/{uuid}")
ok(st == 200, "slb: delete answers 200", st)
st, lbs = curl("-s", f"{base}/loadbalancers")
ok(st == 200 and lbs == [], "after delete the list is [] (never null)", lbs)
st, again = curl("-X", "POST", f"{base}/loadbalancer", "-d", '{"name":"again","port":"6443"}')
ok(st == 201 and again["eip"] == lb["eip"] and again["port"] == 6443,
   "the released address is handed out again; port given as a string is accepted", again)

# --- bad input changes nothing ----------------------------------------------------
st0, before = v.request("GET", "/loadbalancers")
cases = [
    ("POST", "/loadbalancer", "{not json", 400, "body"),
    ("POST", "/loadbalancer", '{"name":"x"}', 400, "port"),
    ("POST", "/loadbalancer", '{"name":"x","port":0}', 400, "port"),
    ("POST", "/loadbalancer", '{"name":"x","port":65536}', 400, "port"),
    ("POST", "/loadbalancer", '{"name":"x","port":"abc"}', 400, "port"),
    ("POST", "/loadbalancer", '{"name":"x","port":80,"colour":1}', 400, "colour"),
    ("POST", "/loadbalancer", '{"name":7,"port":80}', 400, "name"),
    ("POST", "/loadbalancer", '{"name":"x","port":6443,"vip":"' + again["eip"] + '"}', 409, "port"),
    ("GET", "/loadbalancer/00000000-0000-4000-8000-000000000000", None, 404, None),
    ("GET", "/loadbalancer/not-a-uuid", None, 404, None),
    ("POST", f"/loadbalancer/{again['uuid']}/backend", '{"ip":"10.0.0.1"}', 400, "port"),
    ("POST", f"/loadbalancer/{again['uuid']}/backend", '{"ip":"nope","port":1}', 400, "ip"),
    ("DELETE", f"/loadbalancer/{again['uuid']}/backend/00000000-0000-4000-8000-000000000000",
     None, 404, None),
    ("PUT", "/loadbalancers", None, 405, None),
    ("GET", "/nothing", None, 404, None),
]
for method, path, body, want, field in cases:
    st, resp = v.request(method, path, body)
    good_err = isinstance(resp, dict) and "error" in resp and (field is None or field in resp["error"])
    ok(st == want and good_err, f"{method} {path} {body or ''} -> {want} with a JSON error"
       + (f" naming {field}" if field else ""), (st, resp))
st, _ = v.request("POST", f"/loadbalancer/{again['uuid']}/backend", '{"ip":"10.0.0.1","port":80}')
st, resp = v.request("POST", f"/loadbalancer/{again['uuid']}/backend", '{"ip":"10.0.0.1","port":80}')
ok(st == 409 and "10.0.0.1" in resp.get("error", ""), "a duplicate backend is a 409", (st, resp))
st, _ = v.request("POST", "/loadbalancer", "x" * (2 * 1024 * 1024))
ok(st == 413, "an oversized body is a 413", st)
st1, after = v.request("GET", "/loadbalancers")
before[0]["backends"] = after[0]["backends"]  # the one good backend add above
for k in ("healthy_backends", "announced"):  # follow from that backend
    before[0][k] = after[0][k]
ok(persisted(after) == persisted(before), "none of the bad requests changed the state",
   (before, after))

# --- vipctl ------------------------------------------------------------------------
env = dict(os.environ, VIPCTL_API=base)
r = run([VIPCTL, "lb", "create", "ctl-web", "--port", "8080"], env=env)
ok(r.returncode == 0, "vipctl lb create", r.stdout + r.stderr)
r = run([VIPCTL, "lb", "list"], env=env)
ok(r.returncode == 0 and "ctl-web" in r.stdout and "UUID" in r.stdout, "vipctl lb list prints a table",
   r.stdout + r.stderr)
r = run([VIPCTL, "backend", "add", "ctl-web", "10.1.2.3:8080", "--weight", "5"], env=env)
ok(r.returncode == 0, "vipctl backend add", r.stdout + r.stderr)
r = run([VIPCTL, "--json", "lb", "show", "ctl-web"], env=env)
try:
    shown = json.loads(r.stdout)
except ValueError:
    shown = {}
ok(shown.get("backends", [{}])[0].get("weight") == 5, "vipctl --json lb show has the backend weight",
   r.stdout + r.stderr)
r = run([VIPCTL, "backend", "remove", "ctl-web", "10.1.2.3:8080"], env=env)
ok(r.returncode == 0, "vipctl backend remove by address", r.stdout + r.stderr)
r = run([VIPCTL, "lb", "create", "ctl-web2", "--port", "0"], env=env)
ok(r.returncode == 1 and "port" in r.stderr, "vipctl shows the API's error and exits 1", r.stderr)
r = run([VIPCTL, "lb", "delete", "ctl-web"], env=env)
ok(r.returncode == 0, "vipctl lb delete by name", r.stdout + r.stderr)
r = run([VIPCTL, "--api", "http://127.0.0.1:1", "lb", "list"])
ok(r.returncode == 2 and "cannot reach" in r.stderr, "vipctl exits 2 when vipd is unreachable",
   r.stderr)

# --- orderly shutdown and restart ----------------------------------------------------
st, before = v.request("GET", "/loadbalancers")
rc = v.stop(signal.SIGTERM)
ok(rc == 0, "SIGTERM: orderly exit 0", v.logs()[-2000:])
v2 = Vipd(["--ipam-range", RANGE], state_dir=v.state_dir, port=v.port)
ok(v2.start(), "restarts on the same state dir", v2.logs()[-2000:])
st, after = v2.request("GET", "/loadbalancers")

ok(persisted(after) == persisted(before) and persisted(after),
   "everything created through the API came back after SIGTERM", (before, after))
v2.stop()

# --- 1,000 load balancers, kill -9, restart ------------------------------------------------
big = "10.200.0.0/20"
v3 = Vipd(["--ipam-range", big])
ok(v3.start(), "vipd with a /20 range starts")
c = v3.conn()
made = {}
t0 = time.time()
for i in range(1000):
    st, lb = v3.request("POST", "/loadbalancer", {"name": f"lb{i}", "port": 443}, conn=c)
    if st != 201:
        break
    made[lb["uuid"]] = lb["vip"]
t1 = time.time()
ok(len(made) == 1000 and len(set(made.values())) == 1000,
   f"1,000 load balancers created, 1,000 distinct VIPs ({1000 / (t1 - t0):.0f} creates/s)",
   (len(made), len(set(made.values()))))
v3.kill9()
v4 = Vipd(["--ipam-range", big], state_dir=v3.state_dir, port=v3.port)
ok(v4.start(), "restarts after kill -9", v4.logs()[-2000:])
st, lbs = v4.request("GET", "/loadbalancers")
back = {x["uuid"]: x["vip"] for x in lbs}
ok(back == made, "after kill -9 all 1,000 came back with the same VIPs", (len(back), len(made)))
st, new = v4.request("POST", "/loadbalancer", {"name": "one more", "port": 443})
ok(st == 201 and new["vip"] not in made.values(), "a new load balancer gets a VIP no one holds", new)
v4.stop()

# --- corrupt state is moved aside and reported ------------------------------------------
sd = tmpdir()
with open(os.path.join(sd, "state.json"), "w") as f:
    f.write('{"version":1,"loadbalancers":[{"uuid":')
v5 = Vipd(["--ipam-range", RANGE], state_dir=sd)
started = v5.start()
aside = [n for n in os.listdir(sd) if n.startswith("state.json.corrupt")]
ok(started and aside, "a truncated state file is moved aside and vipd starts", os.listdir(sd))
ok("corrupt" in v5.logs() or "state.json" in v5.logs(), "the corrupt state file is reported in the log",
   v5.logs()[-2000:])
v5.stop()

# --- SIGHUP applies only the difference -------------------------------------------------------
cd = tmpdir()
cfg = os.path.join(cd, "vipd.json")


def write_cfg(lbs):
    with open(cfg, "w") as f:
        json.dump({"ipam_ranges": [RANGE], "loadbalancers": lbs}, f)


write_cfg([{"name": "a", "port": 80}, {"name": "b", "port": 81}])
v6 = Vipd(["-c", cfg])
ok(v6.start(), "starts from a config file", v6.logs()[-2000:])
st, lbs = v6.request("GET", "/loadbalancers")
ok(sorted(x["name"] for x in lbs) == ["a", "b"], "config load balancers exist", lbs)
a_before = [x for x in lbs if x["name"] == "a"][0]
st, api_lb = v6.request("POST", "/loadbalancer", {"name": "api-made", "port": 90})
write_cfg([{"name": "a", "port": 80}, {"name": "c", "port": 82}])
v6.proc.send_signal(signal.SIGHUP)
deadline = time.time() + 10
names = []
while time.time() < deadline:
    st, lbs = v6.request("GET", "/loadbalancers")
    names = sorted(x["name"] for x in lbs)
    if names == ["a", "api-made", "c"]:
        break
    time.sleep(0.1)
ok(names == ["a", "api-made", "c"], "SIGHUP: b deleted, c created, API-made one untouched", names)
a_after = [x for x in lbs if x["name"] == "a"]
ok(a_after and a_after[0]["uuid"] == a_before["uuid"] and a_after[0]["vip"] == a_before["vip"],
   "SIGHUP: an unchanged load balancer keeps its uuid and VIP", (a_before, a_after))
with open(cfg, "w") as f:
    f.write("{broken")
v6.proc.send_signal(signal.SIGHUP)
time.sleep(0.5)
st, lbs2 = v6.request("GET", "/loadbalancers")
ok(v6.proc.poll() is None and lbs2 == lbs, "SIGHUP with a broken file keeps the running config",
   v6.logs()[-1500:])
v6.stop()

# --- bearer token ------------------------------------------------------------------------
td = tmpdir()
tok = os.path.join(td, "token")
with open(tok, "w") as f:
    f.write("s3cret-token\n")
v7 = Vipd(["--ipam-range", RANGE, "--api-token-file", tok])
ok(v7.start(), "starts with --api-token-file (GET /healthz stays open)", v7.logs()[-1500:])
st, resp = v7.request("GET", "/loadbalancers")
ok(st == 401 and "token" in resp.get("error", ""), "no token: 401 naming the token", (st, resp))
st, resp = v7.request("GET", "/loadbalancers", headers={"Authorization": "Bearer wrong"})
ok(st == 401, "wrong token: 401", (st, resp))
st, resp = v7.request("POST", "/loadbalancer", {"name": "t", "port": 1},
                      headers={"Authorization": "Bearer s3cret-token"})
ok(st == 201, "right token: the call goes through", (st, resp))
r = run([VIPCTL, "--api", f"http://127.0.0.1:{v7.port}", "--token-file", tok, "lb", "list"])
ok(r.returncode == 0 and " t " in r.stdout, "vipctl --token-file authenticates", r.stdout + r.stderr)
v7.stop()

# --- background start: the parent exits 0 only once the daemon serves ---------------------
sd = tmpdir()
port = free_port()
r = run([VIPD, "--dataplane", "none", "--api-listen", f"127.0.0.1:{port}", "--state-dir", sd,
         "--ipam-range", RANGE])
pid = None
if r.returncode == 0:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/healthz")
    pid = json.loads(c.getresponse().read()).get("pid")
    c.close()
ok(r.returncode == 0 and isinstance(pid, int) and pid > 1,
   "without --foreground vipd forks, the parent exits 0 and the daemon serves", (r.returncode, r.stderr, pid))
if isinstance(pid, int) and pid > 1:
    os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
blocker = Vipd(["--ipam-range", RANGE])
ok(blocker.start(), "a vipd holds a port")
r = run([VIPD, "--dataplane", "none", "--api-listen", f"127.0.0.1:{blocker.port}", "--state-dir",
         tmpdir(), "--ipam-range", RANGE])
ok(r.returncode == 1, "background start on a taken port: the parent exits 1", (r.returncode, r.stderr))
r = run([VIPD, "--foreground", "--dataplane", "none", "--api-listen", f"127.0.0.1:{free_port()}",
         "--state-dir", blocker.state_dir, "--ipam-range", RANGE])
ok(r.returncode == 1 and "another vipd" in r.stderr, "a second vipd on the same state dir is refused",
   r.stderr)
blocker.stop()

done()
