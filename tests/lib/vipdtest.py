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


def reconcile_runs(request):
    """reconcile.runs from GET /status through request(method, path) -> (status, JSON), or
    None when vipd does not say (no answer, an error, no reconciler)."""
    try:
        st, j = request("GET", "/status")
    except (OSError, http.client.HTTPException):
        return None
    runs = (j.get("reconcile") or {}).get("runs") if st == 200 and isinstance(j, dict) else None
    return runs if isinstance(runs, (int, float)) and not isinstance(runs, bool) else None


def wait_reconciled(request, timeout=5.0, before=None, grace=1.5, step=0.01):
    """Waits until the data plane (XDP maps or IPVS) follows what the API said before this
    call: True once it does, False when it cannot be told within timeout seconds.
    request(method, path) -> (status, JSON), as Vipd.request or a test's own api().

    vipd's loop is single-threaded: a pass that completes after a GET /status answer started
    after it, so it brought the kernel in line with everything that answer and any earlier
    one reflected. So: read reconcile.runs now, poll until it grows. A pass follows every API
    change and every health flip, debounced 20 ms (longer after a CPU-heavy pass), but it may
    have completed already, between the change and the first read here; then none follows.
    before tells the two apart: reconcile.runs read before the change (reconcile_runs just
    before the API call, or as wait_for_api returns it). If no pass completed since then, the
    one the change asked for is still to come and is waited for (up to timeout; False if it
    never comes). Otherwise (or without before) one that came already may have covered the
    change: a pass within grace seconds settles it, and none in that time means it did (the
    one the change asked for would have come by then)."""
    deadline = time.monotonic() + timeout
    r0 = reconcile_runs(request)
    owed = before is not None and r0 is not None and r0 <= before
    limit = deadline if owed else min(deadline, time.monotonic() + grace)
    while True:
        time.sleep(step)
        r = reconcile_runs(request)
        if r0 is None:  # no answer yet: this one is the first after the change
            r0 = r
        elif r is not None and r > r0:
            return True
        if time.monotonic() > limit:
            return r0 is not None and not owed


def wait_for_api(request, cond, timeout=5.0, step=0.01):
    """Polls cond() (the API showing a change the test did not make through it, such as a
    health flip) until it holds: (seconds it took or None after timeout, reconcile.runs read
    just before the last look that did not show it yet, for wait_reconciled's before; None
    when the first look showed it)."""
    t0 = time.monotonic()
    before = None
    while True:
        r = reconcile_runs(request)
        if cond():
            return time.monotonic() - t0, before
        before = r
        if time.monotonic() - t0 > timeout:
            return None, before
        time.sleep(step)


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

    def reconcile_runs(self):
        """GET /status's reconcile.runs, or None."""
        return reconcile_runs(self.request)

    def wait_reconciled(self, timeout=5.0, before=None):
        """True once the data plane follows what the API said (see wait_reconciled)."""
        return wait_reconciled(self.request, timeout, before)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)
