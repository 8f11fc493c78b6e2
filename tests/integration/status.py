"""vipctl status on the real daemon (its own network namespace, --dataplane none): the first
line scripts grep, the one-screen view, --json fields, last errors; logging: log_level changed
by SIGHUP, stderr under systemd, syslog when detached with nobody reading stderr."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import (VIPD, VIPCTL, Vipd, done, free_port, isolate_network, ok, run,  # noqa: E402
                      tmpdir)

isolate_network()

RANGE = "192.168.1.200-192.168.1.250"


def wait_for(cond, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return False


cd = tmpdir()
cfg = os.path.join(cd, "vipd.json")


def write_cfg(text):
    with open(cfg, "w") as f:
        f.write(text)


write_cfg(json.dumps({"ipam_ranges": [RANGE], "log_level": "info"}))
v = Vipd(["-c", cfg])
ok(v.start(), "vipd starts from a config with log_level info", v.logs()[-2000:])
api = f"http://127.0.0.1:{v.port}"


def ctl(*args):
    return run([VIPCTL, "--api", api] + list(args))


# A checked load balancer whose backends cannot answer here (no route) and one without checks.
st, web = v.request("POST", "/loadbalancer", {"name": "web", "port": 80, "backends": [
    {"ip": "10.0.0.1", "port": 80}, {"ip": "10.0.0.2", "port": 80}],
    "health_check": {"type": "tcp", "interval": "200ms", "timeout": "100ms",
                     "fail_count": 1, "rise_count": 1}})
st2, db = v.request("POST", "/loadbalancer", {"name": "db", "port": 5432, "backends": [
    {"ip": "10.0.0.3", "port": 5432}], "health_check": {"type": "none"}})
ok(st == 201 and st2 == 201, "two load balancers created", (st, web, st2, db))
wait_for(lambda: all(b.get("health") == "down"
                     for b in v.request("GET", f"/loadbalancer/{web['uuid']}")[1]["backends"]), 10)

r = ctl("status")
lines = r.stdout.splitlines()
ok(r.returncode == 0 and lines and
   re.fullmatch(r"vipd \S+: ok, 2 load balancers, data plane none", lines[0]),
   "vipctl status: the first line is unchanged (vipd V: ok, N load balancers, data plane X)",
   r.stdout + r.stderr)
ok(any(re.match(r"process: +pid \d+, up \S+, log level info$", x) for x in lines),
   "vipctl status: pid, uptime and log level", r.stdout)
ok(any(re.match(r"announcing: +none$", x) for x in lines), "vipctl status: announce method",
   r.stdout)
ok(any(re.match(r"reconcile: +\d+ passes, 0 failed$", x) for x in lines),
   "vipctl status: reconcile passes and failures", r.stdout)
ok(any(x.startswith("vips:") and f"{db['vip']} (announced)" in x and
       f"{web['vip']} (not announced)" in x for x in lines),
   "vipctl status: each VIP with its announce state (web has no healthy backend)", r.stdout)
web_row = [x for x in lines if x.startswith("web ")]
db_row = [x for x in lines if x.startswith("db ")]
ok(web_row and f"{web['vip']}:80/tcp" in web_row[0] and " no " in web_row[0] and
   " 0/2 " in web_row[0] and db_row and f"{db['vip']}:5432/tcp" in db_row[0] and
   " yes " in db_row[0] and " 1/1 " in db_row[0],
   "vipctl status: a row per load balancer with VIP, announced and healthy count", r.stdout)
b_rows = [x.split() for x in lines if x.startswith("  10.0.0.")]
ok(len(b_rows) == 3 and ["10.0.0.1:80", "down"] == b_rows[0][:2] and
   ["10.0.0.3:5432", "up"] == b_rows[2][:2] and all("conns" in x and "packets" in x for x in b_rows),
   "vipctl status: a line per backend with health and traffic", r.stdout)
ok("last errors: none" in r.stdout, "vipctl status: no errors yet", r.stdout)

# --json, before or after the command.
for argv in (["status", "--json"], ["--json", "status"]):
    r = ctl(*argv)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = {}
    lbs = {x.get("name"): x for x in j.get("loadbalancers", [])}
    ok(r.returncode == 0 and j.get("status") == "ok" and j.get("dataplane") == "none" and
       j.get("announcer") == "none" and j.get("log_level") == "info" and
       isinstance(j.get("pid"), int) and j.get("uptime_s", -1) >= 0 and
       j.get("reconcile", {}).get("last_error", 1) is None and
       {x["vip"]: x["announced"] for x in j.get("vips", [])} == {web["vip"]: False,
                                                                   db["vip"]: True} and
       set(lbs) == {"web", "db"} and lbs["db"]["announced"] is True and
       [b["health"] for b in lbs["web"]["backends"]] == ["down", "down"] and
       j.get("last_errors") == [] and "bird" not in j and "cloud" not in j,
       f"vipctl {' '.join(argv)}: dataplane, announcer, reconcile, vips, load balancers, "
       "last_errors", r.stdout[-2000:] + r.stderr)

# An error logged shows in last errors: a reload with a broken file.
write_cfg("{ broken")
v.proc.send_signal(signal.SIGHUP)
wait_for(lambda: "reload failed" in v.logs(), 10)
r = ctl("status")
tail = r.stdout[r.stdout.find("last errors:"):]
ok(r.returncode == 0 and re.search(r"^  \S+Z level=error msg=\"reload failed", tail, re.M),
   "a logged error appears under last errors with its time", r.stdout)
st, j = v.request("GET", "/status")
ok(st == 200 and j["last_errors"] and j["last_errors"][-1]["level"] == "error" and
   "reload failed" in j["last_errors"][-1]["msg"] and j["last_errors"][-1]["time"] > 1e9,
   "GET /status: last_errors carries level, msg and time", j.get("last_errors"))

# log_level debug by SIGHUP: debug lines appear (every API call is logged at debug).
ok("level=debug" not in v.logs(), "at log level info there are no debug lines")
write_cfg(json.dumps({"ipam_ranges": [RANGE], "log_level": "debug"}))
v.proc.send_signal(signal.SIGHUP)
changed = wait_for(lambda: "log level changed" in v.logs(), 10)
v.request("GET", "/healthz")
ok(changed and wait_for(lambda: "level=debug msg=\"api\" method=GET path=/healthz" in v.logs(), 5),
   "SIGHUP with log_level debug in the file: debug lines appear", v.logs()[-1500:])
r = ctl("status")
ok("log level debug" in r.stdout, "vipctl status shows the new log level", r.stdout)
st, _ = v.request("POST", "/status")
ok(st == 405, "POST /status: 405", st)
v.stop()

r = run([VIPCTL, "--api", f"http://127.0.0.1:{free_port()}", "status"])
ok(r.returncode == 2 and "cannot reach vipd" in r.stderr, "vipctl status: vipd unreachable exits 2",
   (r.returncode, r.stderr))
r = ctl("status", "extra")
ok(r.returncode == 2, "vipctl status with an unknown argument exits 2", r.returncode)


def background(env, stderr_path):
    """vipd without --foreground, stdin/stdout /dev/null, stderr to a file (not a terminal).
    Returns (parent's exit status, the daemon's pid or None)."""
    port = free_port()
    with open(stderr_path, "wb") as err, open(os.devnull, "wb") as null:
        p = subprocess.run([VIPD, "--dataplane", "none", "--api-listen", f"127.0.0.1:{port}",
                            "--state-dir", tmpdir()], stdin=subprocess.DEVNULL, stdout=null,
                           stderr=err, env=env, timeout=60)
    pid = None
    if p.returncode == 0:
        vv = Vipd([], port=port)
        st, j = vv.request("GET", "/healthz")
        pid = j.get("pid") if st == 200 else None
    return p.returncode, pid


def stop_pid(pid):
    os.kill(pid, signal.SIGTERM)
    return wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20)


# Under systemd (JOURNAL_STREAM) the detached daemon keeps logging to stderr: journald reads it.
env = {k: x for k, x in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
errf = os.path.join(tmpdir(), "stderr")
rc, pid = background(dict(env, JOURNAL_STREAM="8:12345"), errf)
ok(rc == 0 and pid, "JOURNAL_STREAM set, no --foreground: vipd forks and serves", rc)
if pid:
    stopped = stop_pid(pid)
    text = open(errf).read()
    ok(stopped and "msg=\"ready\"" in text and "msg=\"stopped\"" in text,
       "under systemd the daemon logs to stderr before and after detaching", text[-1500:])
else:
    ok(False, "under systemd the daemon logs to stderr before and after detaching")

# Neither systemd nor a terminal: syslog. A private mount namespace gets its own /dev with a
# /dev/log datagram socket this test reads.
SYSLOG_PROBE = r'''
import json, os, socket, subprocess, sys, time, urllib.request
vipd, port, sd = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
s.settimeout(0.2)
env = {k: x for k, x in os.environ.items() if k not in ("JOURNAL_STREAM", "INVOCATION_ID")}
err = open(sd + "/stderr", "wb")
rc = subprocess.run([vipd, "--dataplane", "none", "--api-listen", "127.0.0.1:" + port,
                     "--state-dir", sd], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=err, env=env, timeout=60).returncode
got, pid = [], None
if rc == 0:
    with urllib.request.urlopen("http://127.0.0.1:%s/healthz" % port, timeout=5) as r:
        pid = json.load(r)["pid"]
    os.kill(pid, 15)
deadline = time.time() + 20
while pid and time.time() < deadline and not any("stopped" in x for x in got):
    try:
        got.append(s.recv(4096).decode(errors="replace"))
    except socket.timeout:
        pass
print(json.dumps({"rc": rc, "pid": pid, "syslog": got,
                  "stderr": open(sd + "/stderr").read()}))
'''
sd = tmpdir()
r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
         'mount -t tmpfs vs-dev /dev && mknod -m 666 /dev/null c 1 3 && '
         'mknod -m 444 /dev/urandom c 1 9 && exec "$@"', "sh",
         sys.executable, "-c", SYSLOG_PROBE, VIPD, str(free_port()), sd])
try:
    res = json.loads(r.stdout)
except ValueError:
    res = {}
sl = res.get("syslog", [])
ok(res.get("rc") == 0 and any(re.search(r"vipd\[\d+\]: level=info msg=\"ready\"", x) for x in sl)
   and any("msg=\"stopped\"" in x for x in sl) and res.get("stderr") == "" and
   all("<" + str(3 * 8 + 6) + ">" in x for x in sl if "level=info" in x),
   "no systemd, no terminal, no --foreground: every line goes to syslog (daemon facility, "
   "ident vipd with its pid), none to stderr", r.stdout[-2000:] + r.stderr)
done()
