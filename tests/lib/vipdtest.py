"""Helpers for vipd's integration tests: TAP output, a vipd process we own, an API client.

Every process started here is tracked by PID and stopped at exit, even when a test fails.
"""
import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

VIPD = os.environ.get("VIPD", "vipd")
VIPCTL = os.environ.get("VIPCTL", "vipctl")
SRCDIR = os.environ.get("SRCDIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

_n = 0
_failed = 0
_procs = []
_tmpdirs = []


def ok(cond, desc, detail=None):
    global _n, _failed
    _n += 1
    if cond:
        print(f"ok {_n} - {desc}", flush=True)
    else:
        _failed += 1
        print(f"not ok {_n} - {desc}", flush=True)
        if detail is not None:
            for line in str(detail).splitlines()[:40]:
                print(f"#   {line}", flush=True)
    return cond


def done():
    print(f"1..{_n}", flush=True)
    sys.exit(1 if _failed else 0)


def isolate_network():
    """Re-runs the calling script in a network namespace of its own with only loopback up.

    vipd health-checks every backend a test names; in a namespace of its own those probes
    (to made-up addresses like 10.0.0.1) fail at once as unreachable instead of leaving
    the machine. Call it first thing in a test that runs vipd outside a test topology.
    """
    if os.environ.get("VIPD_TEST_NETNS") == str(os.getpid()):
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "--net", "--", "sh", "-c",
                           'VIPD_TEST_NETNS=$$ exec "$0" "$@"', sys.executable] + sys.argv,
               os.environ)


def tmpdir(prefix="vipd-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _tmpdirs.append(d)
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@atexit.register
def _cleanup():
    for p in _procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


def api_request(conn, method, path, body=None, headers=None, close=True):
    """One request to vipd's API on conn: (status, parsed JSON or raw text). A dict or list body
    is sent as JSON. Closes conn unless told not to."""
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read().decode()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data
    finally:
        if close:
            conn.close()


def stop_process(proc, sig=signal.SIGTERM, timeout=20):
    """Signals proc (a Popen this test started) and waits: its exit status, or None when it had
    to be killed after timeout seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


class Vipd:
    """One vipd we started, in the foreground, logging to a file."""

    def __init__(self, args, state_dir=None, port=None, extra_env=None):
        self.port = port or free_port()
        self.state_dir = state_dir or tmpdir()
        self.args = list(args)
        self.log_path = os.path.join(tmpdir("vipd-log-"), "vipd.log")
        self.env = dict(os.environ, **(extra_env or {}))
        self.proc = None

    def argv(self):
        return [VIPD, "--foreground", "--dataplane", "none", "--api-listen",
                f"127.0.0.1:{self.port}", "--state-dir", self.state_dir] + self.args

    def start(self, timeout=20):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env)
        _procs.append(self.proc)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                st, _ = self.request("GET", "/healthz")
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, sig=signal.SIGTERM, timeout=20):
        return stop_process(self.proc, sig, timeout)

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None, headers=None, conn=None):
        """Returns (status, parsed JSON or raw text)."""
        return api_request(conn or self.conn(), method, path, body, headers, close=conn is None)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
