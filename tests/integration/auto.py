"""vipd's --dataplane auto on this host's kernel (XDP, no IPVS), in network namespaces this test
makes (tests/lib/netns.py: client, node, lan bridge, 2 backends). The rule (DESIGN.md): XDP
where the adapter takes a native XDP program, else IPVS where the kernel has it, else XDP in
generic mode with a warning. Checked through the log's one "data plane chosen" line, the ready
line, `ip link` (xdp or xdpgeneric on the adapter) and traffic and counters through the API:

  1. adapter n-client (veth: native XDP): xdp native, a TCP connection through a fullnat VIP
     is served and counted by the API;
  2. kill -9 and restart: the program is replaced in native mode, the VIP keeps serving;
  3. vipd's program put back on n-client in generic mode by hand (a restart after a generic
     start): auto keeps it generic, with the warning, and still serves;
  4. after `vipd --xdp-unload` auto chooses again: native;
  5. adapter n-br (a bridge: no native XDP on this kernel), no IPVS: generic, with a warning
     naming both reasons;
  6. no --adapter, no IPVS: no forwarding, with a warning.
IPVS being chosen is checked inside user-mode-linux: tests/uml/vipd_auto.sh."""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import VIPD, Vipd, done, ok, tmpdir  # noqa: E402
import netns  # noqa: E402
from netns import Topology  # noqa: E402

VIP, VIP_PORT, BACKEND_PORT = "10.231.100.10", 80, 8080
API_PORT = 10001
BRIDGE = "n-br"
CHOSEN = 'msg="data plane chosen"'
T0 = time.time()


STOPPED = []  # (what, exit status, sanitizer report or None) of each vipd stopped by SIGTERM


class AutoVipd(Vipd):
    """vipd --dataplane auto in the node namespace (nsenter: the host's /sys/fs/bpf)."""

    def __init__(self, topo, pin_dir, state_dir, adapter):
        super().__init__([], state_dir=state_dir, port=API_PORT)
        self.topo, self.pin_dir, self.adapter = topo, pin_dir, adapter

    def stop(self, sig=signal.SIGTERM, timeout=20):
        rc = super().stop(sig, timeout)
        log = self.logs()
        report = re.search(r"(AddressSanitizer|LeakSanitizer|runtime error).*", log)
        STOPPED.append((self.adapter, rc, report.group(0) if report else None))
        return rc

    def argv(self):
        return self.topo.node.nsenter_argv(
            [VIPD, "--foreground", "--dataplane", "auto", "--bpf-pin-dir", self.pin_dir,
             "--api-listen", f"127.0.0.1:{self.port}", "--state-dir", self.state_dir]
            + (["--adapter", self.adapter] if self.adapter else []))

    def conn(self):
        return self.topo.node.http("127.0.0.1", self.port)

    def chosen(self):
        """The "data plane chosen" lines of the log."""
        return [line for line in self.logs().splitlines() if CHOSEN in line]

    def ready(self):
        return [line for line in self.logs().splitlines() if 'msg="ready"' in line]


def xdp_mode(ns, dev):
    """How `ip link show` flags dev: "xdp" (native), "xdpgeneric", or None."""
    first = ns.ip("link", "show", "dev", dev).split("\n")[0].split()
    for flag in ("xdp", "xdpgeneric", "xdpoffload", "xdpmulti"):
        if flag in first:
            return flag
    return None


def tcp_hello(topo, timeout=2.0):
    with topo.client.connect(VIP, VIP_PORT, timeout) as s, s.makefile("rb") as f:
        return f.readline().decode().split()[0]


def serving(topo, timeout=5.0):
    """The backend that answered a connection to the VIP, or the last error."""
    deadline = time.time() + timeout
    while True:
        try:
            return True, tcp_hello(topo)
        except (OSError, ValueError, IndexError) as e:
            if time.time() > deadline:
                return False, f"{type(e).__name__}: {e}"
            time.sleep(0.1)


def lb_connections(v, uuid):
    st, lb = v.request("GET", f"/loadbalancer/{uuid}")
    if st != 200 or not isinstance(lb.get("stats"), dict):
        return None
    return lb["stats"].get("connections")


def start(v, what):
    good = v.start()
    ok(good, f"{what}: vipd --dataplane auto starts and answers /healthz",
       v.logs()[-3000:] if v.proc else "")
    return good


def choice_check(v, what, dataplane, mode, level, reason_words):
    """Exactly one chosen line, saying dataplane (and mode) at level with every reason word;
    the ready line names the same plane."""
    lines, ready = v.chosen(), v.ready()
    st, hz = v.request("GET", "/healthz")
    line = lines[0] if len(lines) == 1 else ""
    want = f"dataplane={dataplane}" + (f" mode={mode}" if mode else "")
    reason = re.search(r'reason="([^"]*)"', line)
    good = (want in line and f"level={level}" in line and reason is not None
            and all(w in reason.group(1) for w in reason_words)
            and len(ready) == 1 and f"dataplane={dataplane} " in ready[0]
            and st == 200 and isinstance(hz, dict) and hz.get("dataplane") == dataplane)
    ok(good, f"{what}: one log line says {CHOSEN} {want} at level {level}"
       + (f" (reason={reason.group(1)!r})" if reason else "")
       + f"; the ready line and GET /healthz say dataplane={dataplane}",
       "\n".join(lines + ready + [f"healthz {st} {hz}"]) or v.logs()[-3000:])


def run(topo, pins):
    work = tmpdir("vipd-auto-")
    try:
        obj = netns.build_xdp_pass(work)
        topo.build()
        topo.attach_xdp_pass(obj)
        topo.node.ip("link", "add", BRIDGE, "type", "bridge")
        topo.node.ip("link", "set", BRIDGE, "up")
        topo.start_servers([BACKEND_PORT])
        built = None
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        built = e
    if not ok(built is None, "topology: client, node (with a bridge n-br), lan bridge, 2 "
              "backends; xdp_pass on the veth peers; servers started", built):
        return
    state = tmpdir("vipd-auto-state-")

    # 1. veth: native
    v = AutoVipd(topo, pins[0], state, Topology.ADAPTER)
    if not start(v, "1. --adapter n-client (veth)"):
        return
    choice_check(v, "1. veth", "xdp", "native", "info", ["native XDP on n-client"])
    ok(xdp_mode(topo.node, Topology.ADAPTER) == "xdp",
       "1. ip link shows n-client with xdp (native), not xdpgeneric",
       topo.node.ip("link", "show", "dev", Topology.ADAPTER))
    st, lb = v.request("POST", "/loadbalancer", {
        "name": "web", "vip": VIP, "port": VIP_PORT, "forwarding": "fullnat",
        "backends": [{"ip": b.ip[4], "port": BACKEND_PORT} for b in topo.backends]})
    if not ok(st == 201, "1. a fullnat load balancer is created through the API", f"{st} {lb}"):
        return
    good, who = serving(topo)
    conns = lb_connections(v, lb["uuid"])
    ok(good and conns is not None and conns >= 1,
       f"1. a TCP connection to {VIP}:{VIP_PORT} is served ({who}) and the API counts it "
       f"(stats.connections {conns})", v.logs()[-2000:])

    # 2. kill -9, restart: vipd's native program is replaced in place
    v.kill9()
    v = AutoVipd(topo, pins[0], state, Topology.ADAPTER)
    if not start(v, "2. after kill -9"):
        return
    choice_check(v, "2. restart", "xdp", "native", "info", ["native XDP on n-client"])
    log = v.logs()
    good, who = serving(topo)
    ok('msg="XDP program replaced" iface=n-client mode=native' in log and good
       and xdp_mode(topo.node, Topology.ADAPTER) == "xdp",
       f"2. the restart replaced vipd's program natively and the VIP is served ({who})",
       log[-2000:])

    # 3. vipd's program in generic mode on n-client (as a vipd that went generic leaves it)
    v.stop()
    prog_pin = os.path.join(pins[0], "prog")
    topo.node.ip("link", "set", "dev", Topology.ADAPTER, "xdp", "off")
    r = subprocess.run(topo.node.nsenter_argv(["ip", "link", "set", "dev", Topology.ADAPTER,
                                               "xdpgeneric", "pinned", prog_pin]),
                       capture_output=True, text=True, timeout=30)
    pre = xdp_mode(topo.node, Topology.ADAPTER)
    if not ok(r.returncode == 0 and pre == "xdpgeneric", "3. vipd's pinned program put on "
              "n-client in generic mode by hand (ip link set xdpgeneric pinned)",
              f"{r.stderr} {pre}"):
        return
    v = AutoVipd(topo, pins[0], state, Topology.ADAPTER)
    if not start(v, "3. vipd's program already on n-client in generic mode"):
        return
    choice_check(v, "3. generic already", "xdp", "generic", "warn",
                 ["generic mode already", "--xdp-unload"])
    good, who = serving(topo)
    ok(xdp_mode(topo.node, Topology.ADAPTER) == "xdpgeneric" and good,
       f"3. the program stays xdpgeneric on n-client (no gap from a mode switch) and the VIP "
       f"is served ({who})", v.logs()[-2000:])

    # 4. --xdp-unload: the next start chooses again
    v.stop()
    r = subprocess.run(topo.node.nsenter_argv([VIPD, "--xdp-unload", "--bpf-pin-dir", pins[0]]),
                       capture_output=True, text=True, timeout=60)
    gone = xdp_mode(topo.node, Topology.ADAPTER)
    v = AutoVipd(topo, pins[0], state, Topology.ADAPTER)
    if not start(v, "4. after vipd --xdp-unload"):
        return
    choice_check(v, "4. after --xdp-unload", "xdp", "native", "info", ["native XDP on n-client"])
    good, who = serving(topo)
    ok(r.returncode == 0 and gone is None and xdp_mode(topo.node, Topology.ADAPTER) == "xdp"
       and good, f"4. unloaded, then native again on n-client, and the VIP is served ({who})",
       f"unload rc {r.returncode} {r.stderr}; after unload: {gone}\n{v.logs()[-2000:]}")
    v.stop()

    # 5. a bridge: no native XDP, no IPVS here: generic with the warning
    v = AutoVipd(topo, pins[1], tmpdir("vipd-auto-state-"), BRIDGE)
    if not start(v, "5. --adapter n-br (bridge)"):
        return
    choice_check(v, "5. bridge", "xdp", "generic", "warn",
                 ["no native XDP on n-br", "no IPVS"])
    log = v.logs()
    ok('msg="no native XDP on this interface" iface=n-br' in log
       and xdp_mode(topo.node, BRIDGE) == "xdpgeneric"
       and not re.search(r"level=warn msg=\"libbpf", log),
       "5. native was tried first (logged as info, the kernel's reason too) and ip link shows "
       "n-br with xdpgeneric", log[-2000:] + "\n" + topo.node.ip("link", "show", "dev", BRIDGE))
    v.stop()

    # 6. no adapter, no IPVS
    v = AutoVipd(topo, pins[1], tmpdir("vipd-auto-state-"), None)
    if not start(v, "6. without --adapter"):
        return
    choice_check(v, "6. no adapter", "none", None, "warn", ["no --adapter", "no IPVS"])
    v.stop()
    ok(len(STOPPED) == 5 and all(rc == 0 and not rep for _, rc, rep in STOPPED),
       "every vipd stopped by SIGTERM exited 0 with no sanitizer report", STOPPED)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    topo = Topology(prefix=os.environ.get("VIPD_NETNS_PREFIX", "au-"), backends=2)
    pins = [f"/sys/fs/bpf/vipd-auto-{topo.tag}-{i}" for i in (1, 2)]
    try:
        run(topo, pins)
    except Exception:  # a bug in the test itself: report it, still clean up and end the plan
        ok(False, "the test ran to its end", traceback.format_exc())
    finally:
        topo.destroy()
        for p in pins:
            shutil.rmtree(p, ignore_errors=True)
    print(f"# wall time {time.time() - T0:.1f} s", flush=True)
    done()


if __name__ == "__main__":
    main()
