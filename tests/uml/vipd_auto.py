#!/usr/bin/python3
"""vipd --dataplane auto inside user-mode-linux, whose kernel has IPVS (run by vipd_auto.sh).

The rule (DESIGN.md): XDP where the adapter takes a native XDP program, else IPVS where the
kernel has it, else XDP in generic mode with a warning. The host has no IPVS, so the IPVS
branch is checked here. Prints TAP. Checks:
  1. --adapter au-dum (a dummy link: no native XDP): one log line says "data plane chosen"
     dataplane=ipvs with the reason, the ready line says ipvs; nothing of XDP is left: no
     program on au-dum, no pin directory, accept_local not set; a nat load balancer made
     through the API shows up in /proc/net/ip_vs and 10 connections from a client namespace
     reach the backend through it; SIGTERM removes the service.
  0. first, whether vipd's XDP program runs in this kernel at all (`vipd --dataplane xdp` on
     a throwaway dummy link), which decides the reason step 1 must give. Debian's linux.uml
     has no BTF for the program's CO-RE relocations, and UML enforces aligned packet access,
     so XDP does not run in UML: native XDP winning over IPVS, and a generic program kept,
     are checked on the host (tests/integration/auto.py).

  client ns au-cli: eth0 10.0.1.2 --- au-cli 10.0.1.1  director (VIP 10.0.0.10 on lo)
  backend ns au-be: eth0 10.0.2.11 --- au-be 10.0.2.1           au-dum (dummy, the adapter)
"""
import ctypes
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from vipdtest import api_request, stop_process  # noqa: E402

P = "au-"
CLI, BE, DUM = P + "cli", P + "be", P + "dum"
VIP, VIP_PORT, BE_IP, BE_PORT = "10.0.0.10", 80, "10.0.2.11", 8080
API_PORT = 10081
BUILDDIR = os.environ.get("BUILDDIR", os.path.join(os.path.dirname(__file__), "../../build/plain"))
VIPD = os.environ.get("VIPD", os.path.join(BUILDDIR, "vipd"))
T = tempfile.mkdtemp(prefix="vipd-auto-")
PIN = "/sys/fs/bpf/au-vipd-auto"
CHOSEN = 'msg="data plane chosen"'

T0 = time.monotonic()
_n = _failed = 0


def ok(cond, desc, detail=None):
    global _n, _failed
    _n += 1
    print(f"{'ok' if cond else 'not ok'} {_n} - {desc}", flush=True)
    if not cond:
        _failed += 1
        for line in str(detail or "").splitlines()[-30:]:
            print(f"#   {line}", flush=True)
    return cond


def note(msg):
    print(f"# [{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def run(*argv, stdin=None):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
HOME = os.open("/proc/thread-self/ns/net", os.O_RDONLY)


def setns(fd):
    if libc.setns(fd, CLONE_NEWNET):
        e = ctypes.get_errno()
        raise OSError(e, f"setns: {os.strerror(e)}")


def topology():
    out = [run("ip", "-b", "-", stdin=f"""link add {DUM} type dummy
link set {DUM} up
netns add {CLI}
netns add {BE}
link add {CLI} type veth peer name eth0 netns {CLI}
addr add 10.0.1.1/24 dev {CLI}
link set {CLI} up
link add {BE} type veth peer name eth0 netns {BE}
addr add 10.0.2.1/24 dev {BE}
link set {BE} up
addr add {VIP}/32 dev lo
"""), run("ip", "-n", CLI, "-b", "-", stdin="""link set lo up
addr add 10.0.1.2/24 dev eth0
link set eth0 up
route add default via 10.0.1.1
"""), run("ip", "-n", BE, "-b", "-", stdin=f"""link set lo up
addr add {BE_IP}/24 dev eth0
link set eth0 up
route add default via 10.0.2.1
""")]
    return all(rc == 0 for rc, _ in out), "\n".join(o for _, o in out)


def cleanup_topology():
    run("ip", "-force", "-b", "-", stdin=f"""netns del {CLI}
netns del {BE}
link del {CLI}
link del {BE}
link del {DUM}
addr del {VIP}/32 dev lo
""")


def spawn_server():
    """PID of a forked TCP server in the backend namespace greeting "be PEER", or None."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            setns(os.open(f"/run/netns/{BE}", os.O_RDONLY))
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("0.0.0.0", BE_PORT))
            ls.listen(64)
            os.write(w, b"1")
            os.close(w)
            while True:
                c, peer = ls.accept()
                try:
                    c.sendall(f"be {peer[0]}\n".encode())
                except OSError:
                    pass
                c.close()
        finally:
            os._exit(1)
    os.close(w)
    ready = os.read(r, 1)
    os.close(r)
    return pid if ready == b"1" else None


def hello():
    """The backend's greeting through the VIP from the client namespace, or ERR."""
    setns(os.open(f"/run/netns/{CLI}", os.O_RDONLY))
    try:
        s = socket.socket()
    finally:
        setns(HOME)
    s.settimeout(2)
    try:
        s.connect((VIP, VIP_PORT))
        return s.recv(200).decode().strip() or "ERR empty"
    except OSError as e:
        return f"ERR {e}"
    finally:
        s.close()


def ipvs_services():
    with open("/proc/net/ip_vs") as f:
        return [l.split()[:2] for l in f.read().splitlines()[3:] if l.startswith(("TCP", "UDP"))]


def xdp_flag(dev):
    """How `ip link show` flags dev: "xdp" (native), "xdpgeneric", or None."""
    rc, out = run("ip", "link", "show", "dev", dev)
    first = out.split("\n")[0].split()
    return next((f for f in ("xdp", "xdpgeneric") if f in first), None)


class Vipd:
    def __init__(self, tag, adapter, dataplane="auto", pin=PIN):
        self.log_path = f"{T}/vipd-{tag}.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [VIPD, "--foreground", "--dataplane", dataplane, "--adapter", adapter,
             "--state-dir", f"{T}/state-{tag}", "--bpf-pin-dir", pin,
             "--api-listen", f"127.0.0.1:{API_PORT}"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        VIPDS.append(self)

    def healthy(self, timeout=20):
        def up():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return api("GET", "/healthz")[0] == 200
            except OSError:
                return False
        return wait_for(up, timeout) is True

    def text(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def lines(self, what):
        return [l for l in self.text().splitlines() if what in l]

    def stop(self, sig=signal.SIGTERM):
        return stop_process(self.proc, sig, 15)


VIPDS = []


def api(method, path, body=None):
    return api_request(http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=5), method,
                       path, body, {"Content-Type": "application/json"} if body is not None else {})


def create_lb():
    return api("POST", "/loadbalancer", {"name": "web", "vip": VIP, "port": VIP_PORT,
                                         "forwarding": "nat",
                                         "backends": [{"ip": BE_IP, "port": BE_PORT}]})


def choice(v, what, dataplane, mode, level, words):
    """One chosen line saying dataplane (mode) at level with every word in its reason; the
    ready line names the same plane."""
    lines, ready = v.lines(CHOSEN), v.lines('msg="ready"')
    st, hz = api("GET", "/healthz")
    line = lines[0] if len(lines) == 1 else ""
    want = f"dataplane={dataplane}" + (f" mode={mode}" if mode else "")
    m = re.search(r'reason="([^"]*)"', line)
    ok(want in line and f"level={level}" in line and m is not None
       and all(w in m.group(1) for w in words)
       and len(ready) == 1 and f"dataplane={dataplane} " in ready[0]
       and st == 200 and isinstance(hz, dict) and hz.get("dataplane") == dataplane,
       f"{what}: one log line says {CHOSEN} {want} at level {level}"
       + (f" (reason={m.group(1)!r})" if m else "")
       + f"; the ready line and GET /healthz say {dataplane}",
       "\n".join(lines + ready + [f"healthz {st} {hz}"]) or v.text()[-3000:])


def xdp_usable():
    """Whether vipd's XDP program runs here: `vipd --dataplane xdp` on a dummy link of its own
    (generic mode) gets ready. (bool, why not). The link goes, and the pins with it."""
    probe, pin = P + "probe", PIN + "-probe"
    rc, out = run("ip", "link", "add", probe, "type", "dummy")
    if rc:
        return False, out
    v = Vipd("probe", probe, "xdp", pin)
    up = v.healthy()
    v.stop()
    run(VIPD, "--xdp-unload", "--bpf-pin-dir", pin)
    run("ip", "link", "del", probe)
    why = [l for l in v.text().splitlines() if "level=error" in l]
    return up, (why[0] if why else v.text()[-300:])


def main():
    good, why = topology()
    if not ok(good, "topology: dummy au-dum, client and backend namespaces, VIP on lo", why):
        return
    SERVERS.append(spawn_server())
    if not ok(SERVERS[-1], "backend server listening (TCP 8080)"):
        return
    xdp, why_not = xdp_usable()
    note(f"vipd's XDP program runs in this kernel: {xdp} {'' if xdp else why_not}")

    # 1. dummy: no native XDP, IPVS present
    v = Vipd("dummy", DUM)
    if not ok(v.healthy(), "1. vipd --dataplane auto --adapter au-dum starts and answers "
              "/healthz", v.text()[-3000:]):
        return
    note("vipd on au-dum up")
    choice(v, "1. dummy", "ipvs", None, "info",
           [f"no native XDP on {DUM}"] if xdp else [f"XDP not usable on {DUM}"])
    with open(f"/proc/sys/net/ipv4/conf/{DUM}/accept_local") as f:
        accept_local = f.read().strip()
    ok(xdp_flag(DUM) is None and not os.path.exists(PIN) and accept_local == "0",
       "1. nothing of XDP left behind: no program on au-dum, no pin directory, "
       "accept_local untouched",
       f"xdp {xdp_flag(DUM)}; pins {os.path.exists(PIN)}; accept_local {accept_local}")
    st, lb = create_lb()
    ok(st == 201 and wait_for(lambda: ipvs_services() == [["TCP", "0A00000A:0050"]], 5),
       "1. a nat load balancer made through the API is an IPVS service", f"{st} {lb} "
       f"{ipvs_services()}")
    got = [hello() for _ in range(10)]
    ok(all(g == "be 10.0.1.2" for g in got),
       "1. 10 connections from the client namespace reach the backend through IPVS",
       "\n".join(got))
    rc = v.stop()
    ok(rc == 0 and ipvs_services() == [], "1. SIGTERM: vipd exits 0 and removes its service",
       f"rc {rc} {ipvs_services()}")


SERVERS = []


def cleanup():
    for v in VIPDS:
        if v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()
    for pid in SERVERS:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    if os.path.exists(PIN):
        run(VIPD, "--xdp-unload", "--bpf-pin-dir", PIN)
    run("ipvsadm", "-C")
    cleanup_topology()
    if os.environ.get("VIPD_UML_LOGS"):
        for f in os.listdir(T):
            if f.endswith(".log"):
                shutil.copy(os.path.join(T, f), os.environ["VIPD_UML_LOGS"])
    shutil.rmtree(T, ignore_errors=True)


if __name__ == "__main__":
    if not os.access(VIPD, os.X_OK):
        ok(False, f"vipd built ({VIPD})")
        print(f"1..{_n}")
        sys.exit(1)
    try:
        main()
    except Exception as e:      # a crash is a failure with its reason, and still cleans up
        import traceback
        ok(False, f"test ran to the end ({type(e).__name__}: {e})", traceback.format_exc())
    finally:
        cleanup()
    note("done")
    print(f"1..{_n}", flush=True)
    sys.exit(1 if _failed else 0)
