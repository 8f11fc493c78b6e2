"""What the vipd tests inside user-mode-linux share (tests/uml/vipd_*.py): TAP (vipdtest's
counter), polling, commands and ip batches, sockets made in a namespace by setns(2) on this
thread, backend servers forked into their namespace and stopped by PID, vipd processes logging
into T, and the frame that runs the checks, cleans up and prints the plan.

One module on top of vipdtest, stdlib only: inside UML every import and process costs time.
VIPD_UML_LOGS=DIR (a --rw directory) keeps vipd's logs there.
"""
import ctypes
import http.client
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import vipdtest  # noqa: E402
from vipdtest import api_request, done, stop_process  # noqa: E402

BUILDDIR = os.environ.get("BUILDDIR", os.path.join(os.path.dirname(__file__), "../../build/plain"))
VIPD = os.environ.get("VIPD", os.path.join(BUILDDIR, "vipd"))
VIPCTL = os.path.join(BUILDDIR, "vipctl")
T = vipdtest.tmpdir("vipd-uml-")     # vipd's logs and state; removed at exit
T0 = time.monotonic()


def ok(cond, desc, detail=None):
    """vipdtest.ok, keeping the last 30 lines of detail (where a log or a traceback ends)."""
    return vipdtest.ok(cond, desc, "\n".join(str(detail or "").splitlines()[-30:]))


def note(msg):
    print(f"# [{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def wait_for(pred, timeout, step=0.05):
    """pred() until truthy or timeout (s): its last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def run(*argv, stdin=None):
    """(rc, stdout+stderr) of one command."""
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def ip_batches(batches, force=False):
    """One `ip -b -` per namespace ({ns or None for this one: lines}): (all worked, output)."""
    out = [run("ip", *(["-n", ns] if ns else []), *(["-force"] if force else []), "-b", "-",
               stdin=text) for ns, text in batches.items()]
    return all(rc == 0 for rc, _ in out), "\n".join(o for _, o in out)


def remove_topology(namespaces, links, lo_addrs):
    """Deletes namespaces, then links of this namespace, then addresses ("ADDR/PLEN") of lo;
    whatever is already gone is passed over."""
    ip_batches({None: "".join([f"netns del {n}\n" for n in namespaces] +
                              [f"link del {l}\n" for l in links] +
                              [f"addr del {a} dev lo\n" for a in lo_addrs])}, force=True)


# ---- namespaces: setns(2) on this thread, always back to ours

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
HOME = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
_nsfd = {}


def setns(fd):
    if libc.setns(fd, CLONE_NEWNET):
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def enter(ns):
    """Moves this thread into namespace ns (/run/netns/NS); setns(HOME) goes back."""
    if ns not in _nsfd:
        _nsfd[ns] = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    setns(_nsfd[ns])


def sock_in(ns, family=socket.AF_INET, kind=socket.SOCK_STREAM):
    """A socket of namespace ns."""
    enter(ns)
    try:
        return socket.socket(family, kind)
    finally:
        setns(HOME)


# ---- backend servers: forked children in their namespace, stopped by PID

SERVERS = {}     # backend name: PID of its server (None if it did not start)


def serve(name, tcp_port, udp_port=None, six=False):
    """TCP (and IPv6 with six): greets "NAME PEER\\n", then echoes "NAME LINE"; UDP: answers
    "NAME PEER DATA". A generator: listening at its first yield, serving at the next."""
    sel = selectors.DefaultSelector()
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::"))[:2 if six else 1]:
        ls = socket.socket(fam)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        ls.bind((addr, tcp_port))
        ls.listen(256)
        sel.register(ls, selectors.EVENT_READ, "accept")
    if udp_port:
        us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        us.bind(("0.0.0.0", udp_port))
        sel.register(us, selectors.EVENT_READ, "udp")
    yield
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                if key.data == "accept":
                    c, peer = s.accept()
                    c.settimeout(1)
                    c.sendall(f"{name} {peer[0]}\n".encode())
                    sel.register(c, selectors.EVENT_READ, "conn")
                elif key.data == "udp":
                    data, peer = s.recvfrom(2048)
                    s.sendto(f"{name} {peer[0]} ".encode() + data, peer)
                else:
                    data = s.recv(4096)
                    if not data:
                        raise EOFError
                    s.sendall(name.encode() + b" " + data)
            except (OSError, EOFError):
                if key.data == "conn":
                    sel.unregister(s)
                    s.close()


def spawn_server(name, ns, tcp_port, udp_port=None, six=False, sysctls=()):
    """Forks serve(name, ...) into namespace ns, first writing sysctls ((path under
    /proc/sys/net/, value)) there: its PID once listening (or None), kept in SERVERS[name]."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            enter(ns)
            for path, value in sysctls:
                with open("/proc/sys/net/" + path, "w") as f:
                    f.write(value)
            srv = serve(name, tcp_port, udp_port, six)
            next(srv)
            os.write(w, b"1")
            os.close(w)
            next(srv)
        finally:
            os._exit(1)
    os.close(w)
    ready = os.read(r, 1)
    os.close(r)
    SERVERS[name] = pid if ready == b"1" else None
    return SERVERS[name]


def stop_pid(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def stop_server(name):
    pid = SERVERS.pop(name)
    if pid:
        stop_pid(pid)


# ---- the client

def read_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        d = s.recv(200)
        if not d:
            break
        buf += d
    return buf.decode().strip() or "ERR empty"


def talk(s, msg):
    """Sends msg on a held connection: the echo, or ERR."""
    try:
        s.sendall(msg.encode() + b"\n")
        return read_line(s)
    except OSError as e:
        return f"ERR {e}"


def count(lines, name):
    return sum(1 for a in lines if a.split(" ")[0] == name)


class Client:
    """Connections from namespace ns (from address src when given); each answer is a
    server's line or "ERR ..."."""

    def __init__(self, ns):
        self.ns = ns

    def tcp_open(self, addr, port, src=None, timeout=2.0):
        """A connected socket and the greeting, or (None, "ERR ...")."""
        s = sock_in(self.ns, socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.settimeout(timeout)
        try:
            if src:
                s.bind((src, 0))
            s.connect((addr, port))
            return s, read_line(s)
        except OSError as e:
            s.close()
            return None, f"ERR {e}"

    def tcp_many(self, addr, port, n, src=None, timeout=2.0):
        """Greetings of n connections, one after the other."""
        out = []
        for _ in range(n):
            s, line = self.tcp_open(addr, port, src, timeout)
            if s:
                s.close()
            out.append(line)
        return out

    def udp_many(self, addr, port, n, src=None, timeout=2.0):
        """Answers to n datagrams, each from a new socket (a new source port: rr picks again)."""
        out = []
        for i in range(n):
            s = sock_in(self.ns, socket.AF_INET6 if ":" in addr else socket.AF_INET,
                        socket.SOCK_DGRAM)
            s.settimeout(timeout)
            try:
                if src:
                    s.bind((src, 0))
                s.sendto(f"dgram{i}".encode(), (addr, port))
                out.append(s.recv(2048).decode().strip())
            except OSError as e:
                out.append(f"ERR {e}")
            finally:
                s.close()
        return out


def ipvsadm_rules():
    """ipvsadm -Sn as a sorted list of rules."""
    rc, out = run("ipvsadm", "-Sn")
    return sorted(l for l in out.splitlines() if l.strip()) if rc == 0 else ["ERR " + out]


# ---- vipd

def api_at(port):
    """api(method, path, body=None) -> (status, JSON or text) for vipd's API on port."""
    def api(method, path, body=None):
        return api_request(http.client.HTTPConnection("127.0.0.1", port, timeout=5), method,
                           path, body,
                           {"Content-Type": "application/json"} if body is not None else {})
    return api


VIPDS = []


class Vipd:
    """One vipd in this namespace, its API on 127.0.0.1:port, its log T/vipd-TAG.log."""

    def __init__(self, tag, port, args):
        self.api = api_at(port)
        self.log_path = f"{T}/vipd-{tag}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [VIPD, "--foreground", "--api-listen", f"127.0.0.1:{port}", *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        VIPDS.append(self)

    def healthy(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return self.api("GET", "/healthz")[0] == 200
            except OSError:
                return False
        return wait_for(up, timeout) is True

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def tail(self, n=25):
        return "\n".join(self.text().splitlines()[-n:])

    def lines(self, what):
        return [l for l in self.text().splitlines() if what in l]

    def stop(self, sig=signal.SIGTERM, timeout=15):
        return stop_process(self.proc, sig, timeout)


# ---- the frame

def main(checks, cleanup):
    """Runs checks() (a crash is one failed check with its traceback); then, whatever
    happened, kills the vipds and servers left, clears IPVS, runs cleanup() (topology and
    the like) and keeps the logs; prints the plan and exits 1 on any failure."""
    if not os.access(VIPD, os.X_OK):
        ok(False, f"vipd built ({VIPD})")
        done()
    try:
        checks()
    except Exception as e:
        import traceback
        ok(False, f"test ran to the end ({type(e).__name__}: {e})", traceback.format_exc())
    finally:
        for v in VIPDS:
            if v.proc.poll() is None:
                v.proc.kill()
                v.proc.wait()
        for name in list(SERVERS):
            stop_server(name)
        run("ipvsadm", "-C")
        cleanup()
        if os.environ.get("VIPD_UML_LOGS"):
            for f in os.listdir(T):
                if f.endswith(".log"):
                    shutil.copy(os.path.join(T, f), os.environ["VIPD_UML_LOGS"])
    note("done")
    done()
