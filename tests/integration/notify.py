"""sd_notify: vipd tells a service manager (a datagram socket named by NOTIFY_SOCKET, as
systemd's Type=notify does) READY=1 only once its API answers and the first reconcile has
run, RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM; and nothing
at all when it fails to start. Loopback only, in a network namespace of its own."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import (VIPD, Vipd, _procs, done, isolate_network, ok, run, stop_process,  # noqa: E402
                      tmpdir)

if "libsystemd" not in run(["ldd", subprocess.check_output(["sh", "-c", 'command -v "$0"', VIPD],
                                                           text=True).strip()]).stdout:
    print("1..0 # SKIP vipd was built without libsystemd (--without-systemd)")
    sys.exit(0)

isolate_network()

d = tmpdir()
cfg = os.path.join(d, "vipd.json")


def write_cfg(names):
    with open(cfg, "w") as f:
        json.dump({"ipam_ranges": ["192.168.7.10-192.168.7.20"],
                   "loadbalancers": [{"name": n, "port": 80, "health_check": {"type": "none"},
                                      "backends": [{"ip": "127.0.0.1", "port": 9}]}
                                     for n in names]}, f)


class Manager:
    """The service manager's end: a datagram socket vipd sends its state lines to."""

    def __init__(self, name):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if name.startswith("@"):
            self.sock.bind("\0" + name[1:])
        else:
            self.sock.bind(name)
        self.name = name

    def recv(self, timeout=20):
        """The next message as {KEY: value}, or None after timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096).decode()
        except socket.timeout:
            return None
        return dict(l.split("=", 1) for l in data.splitlines() if "=" in l)

    def wait_for(self, key, timeout=20):
        """Messages up to and including the first with key (None if it never came)."""
        seen, deadline = [], time.time() + timeout
        while time.time() < deadline:
            m = self.recv(max(0.01, deadline - time.time()))
            if m is None:
                break
            seen.append(m)
            if key in m:
                return seen
        return seen + [None]


def start(args, notify_socket, log_level="debug"):
    v = Vipd(["--config", cfg, "--log-level", log_level] + args,
             extra_env={"NOTIFY_SOCKET": notify_socket})
    v.log = open(v.log_path, "ab")
    v.proc = subprocess.Popen(v.argv(), stdout=v.log, stderr=subprocess.STDOUT, env=v.env)
    _procs.append(v.proc)
    return v


# --- readiness ----------------------------------------------------------------------------
write_cfg(["web"])
mgr = Manager(os.path.join(d, "notify.sock"))
v = start([], mgr.name)
msgs = mgr.wait_for("READY")
ready = msgs[-1]
# Right now, with nothing waited for: what READY=1 promised must already hold.
try:
    st, _ = v.request("GET", "/healthz")
except OSError as e:
    st = str(e)
ok(ready is not None and ready.get("READY") == "1", "vipd sends READY=1", msgs)
ok(st == 200, "at READY=1 the API already answers /healthz", st)
st, lbs = v.request("GET", "/loadbalancers")
ok(st == 200 and [lb["name"] for lb in lbs] == ["web"],
   "at READY=1 the config's load balancers are in place", lbs)
log = v.logs()
ok('msg="reconciled"' in log and log.index('msg="reconciled"') < log.index('msg="ready"'),
   "the first reconcile ran before READY=1", log)
ok(len(msgs) == 1, "READY=1 is the first thing vipd tells the manager", msgs)
ok(ready is not None and "serving" in ready.get("STATUS", "") and "dataplane=none" in
   ready.get("STATUS", ""), "READY=1 comes with a STATUS= line saying what vipd serves", ready)

# --- reload -------------------------------------------------------------------------------
write_cfg(["web", "api"])
v.proc.send_signal(signal.SIGHUP)
msgs = mgr.wait_for("READY")
ok(msgs[0] is not None and msgs[0].get("RELOADING") == "1" and msgs[-1] is not None and
   msgs[-1].get("READY") == "1", "SIGHUP: RELOADING=1, then READY=1", msgs)
st, lbs = v.request("GET", "/loadbalancers")
ok(sorted(lb["name"] for lb in lbs) == ["api", "web"],
   "at the READY=1 after a reload the new config is applied", lbs)
with open(cfg, "w") as f:
    f.write("{not json")
v.proc.send_signal(signal.SIGHUP)
msgs = mgr.wait_for("READY")
ok(msgs[0] is not None and msgs[0].get("RELOADING") == "1" and msgs[-1] is not None and
   msgs[-1].get("READY") == "1" and "failed" in msgs[-1].get("STATUS", ""),
   "a rejected reload still ends in READY=1, its STATUS= saying it failed", msgs)

# --- stopping -----------------------------------------------------------------------------
v.proc.send_signal(signal.SIGTERM)
msgs = mgr.wait_for("STOPPING")
ok(msgs[-1] is not None and msgs[-1].get("STOPPING") == "1", "SIGTERM: STOPPING=1", msgs)
rc = stop_process(v.proc, sig=0)
ok(rc == 0, "then vipd exits 0", v.logs())

# --- abstract socket ----------------------------------------------------------------------
write_cfg(["web"])
amgr = Manager(f"@vipd-notify-test-{os.getpid()}")
v = start([], amgr.name, log_level="info")
msgs = amgr.wait_for("READY")
ok(msgs[-1] is not None and msgs[-1].get("READY") == "1",
   "READY=1 also reaches an abstract NOTIFY_SOCKET (@name)", msgs)
ok(stop_process(v.proc) == 0, "vipd stops with SIGTERM")

# --- a failed start says nothing ----------------------------------------------------------
blocker = socket.socket()
blocker.bind(("127.0.0.1", 0))
blocker.listen()
port = blocker.getsockname()[1]
fmgr = Manager(os.path.join(d, "notify-fail.sock"))
v = Vipd(["--config", cfg], port=port, extra_env={"NOTIFY_SOCKET": fmgr.name})
v.log = open(v.log_path, "ab")
r = subprocess.run(v.argv(), stdout=v.log, stderr=subprocess.STDOUT, env=v.env, timeout=60)
blocker.close()
m = fmgr.recv(timeout=0.5)
ok(r.returncode == 1, "vipd whose API port is taken exits 1", v.logs())
ok(m is None or "READY" not in m, "and never sends READY=1", m)
done()
