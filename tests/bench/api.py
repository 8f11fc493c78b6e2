"""API benchmark: create throughput, GET /loadbalancer/{uuid} throughput on one core, the
cost of a listing and of a /metrics scrape, and vipd's RSS with 10,000 load balancers. Baselines measured in the same run: GET /healthz (the
HTTP floor) and the RSS of an empty daemon. Prints figures; targets are reported, not asserted."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import Vipd, isolate_network  # noqa: E402

isolate_network()

N = int(os.environ.get("BENCH_LBS", "10000"))
WRK_SECONDS = os.environ.get("BENCH_WRK_SECONDS", "5")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def wrk(url):
    if not shutil.which("wrk"):
        return None
    # One wrk thread and a few connections; vipd is single-threaded, so it gets one core.
    r = subprocess.run(["wrk", "-t1", "-c8", f"-d{WRK_SECONDS}s", url], capture_output=True,
                       text=True, timeout=120)
    m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
    return float(m.group(1)) if m else None


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


v = Vipd(["--ipam-range", "10.96.0.0/16", "--log-level", "warn"])
if not v.start():
    print("vipd did not start", file=sys.stderr)
    sys.exit(1)
pid = v.proc.pid
rss_empty = rss_kib(pid)

c = v.conn()
uuids = []
t0 = time.time()
for i in range(N):
    st, lb = v.request("POST", "/loadbalancer",
                       {"name": f"bench-{i}", "port": 443,
                        "backends": [{"ip": "10.1.0.1", "port": 8443},
                                     {"ip": "10.1.0.2", "port": 8443}]}, conn=c)
    if st != 201:
        print(f"create {i} failed: {st} {lb}", file=sys.stderr)
        sys.exit(1)
    uuids.append(lb["uuid"])
create_s = time.time() - t0

# The body alone, then its parse: the parse is the client's cost, not vipd's.
t0 = time.time()
c.request("GET", "/loadbalancers")
r = c.getresponse()
body = r.read()
list_s = time.time() - t0
t0 = time.time()
lbs = json.loads(body)
parse_s = time.time() - t0
assert r.status == 200 and len(lbs) == N

# One Prometheus scrape: every load balancer and backend has its series.
t0 = time.time()
c.request("GET", "/metrics")
r = c.getresponse()
metrics = r.read()
scrape_s = time.time() - t0
assert r.status == 200
samples = sum(1 for line in metrics.splitlines() if line and not line.startswith(b"#"))
rss_full = rss_kib(pid)

# The bench's backends are unreachable: once the checks say so, the measured load balancer
# is not serving, and its "announced" asks whether another one on its VIP is (the costly
# case). Wait for that, so every run measures the same thing.
deadline = time.time() + 60
while time.time() < deadline:
    st, one = v.request("GET", f"/loadbalancer/{uuids[N // 2]}", conn=c)
    if st == 200 and all(b.get("health") == "down" for b in one.get("backends", [])):
        break
    time.sleep(0.5)
down = st == 200 and all(b.get("health") == "down" for b in one.get("backends", []))

base = f"http://127.0.0.1:{v.port}"
cpu0 = cpu_seconds(pid)
t0 = time.time()
healthz = wrk(f"{base}/healthz")
get_one = wrk(f"{base}/loadbalancer/{uuids[N // 2]}")
cpu_util = (cpu_seconds(pid) - cpu0) / (time.time() - t0)

print(f"bench api: load balancers          {N}")
print(f"bench api: create (fsynced)        {N / create_s:8.0f} req/s  ({create_s:.1f} s for {N})")
print(f"bench api: GET /loadbalancers      {list_s * 1000:8.1f} ms for {N} objects, "
      f"{len(body) / 1e6:.1f} MB  (the client's JSON parse: {parse_s * 1000:.0f} ms more)")
print(f"bench api: GET /metrics            {scrape_s * 1000:8.1f} ms for {N} objects, "
      f"{len(metrics) / 1e6:.1f} MB, {samples} samples")
if get_one is not None:
    print(f"bench api: GET /loadbalancer/UUID  {get_one:8.0f} req/s  (target >= 5000, one core;"
          f" vipd used {cpu_util * 100:.0f}% of a core; its backends "
          f"{'down' if down else 'not yet down'})")
    print(f"bench api: GET /healthz (floor)    {healthz:8.0f} req/s  (ratio {get_one / healthz:.2f})")
else:
    print("bench api: wrk not installed; GET throughput not measured")
print(f"bench api: RSS empty               {rss_empty / 1024:8.1f} MiB")
print(f"bench api: RSS with {N} LBs      {rss_full / 1024:8.1f} MiB  (target <= 50 MiB)")
v.stop()
