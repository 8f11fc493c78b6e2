#!/usr/bin/python3
"""The two-planes scenario (tests/lib/planes_scenario.py) with `vipd --dataplane ipvs`, inside
user-mode-linux (run by planes.sh); tests/integration/planes.py runs it with XDP on the host.
The addresses are the host topology's (tests/lib/netns.py), so the two runs read alike:

  client ns uml-pl-cli: eth0 10.231.1.2 --- uml-pl-cli 10.231.1.1  director (the guest's init
                                            namespace, vipd; VIP 10.231.100.10 on lo, where
                                            IPVS sees it)
                                            bridge uml-pl-br 10.231.2.1
                                              |           |           |
  backend ns uml-pl-b1..3: eth0       10.231.2.11 10.231.2.12 10.231.2.13 (default via .1)

One python process: the client's sockets are made in its namespace by setns(2) on this thread
(netns.Netns), the backend servers are forked children (setns into their namespace, then
netns.serve), stopped by PID. Processes: ip (a batch per namespace to build, one to clean
up) and vipd. vipd does not put the VIP on lo itself without --arp/--bgp; IPVS needs it local.
"""
import os
import select
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # the tree is shared: leave no __pycache__ behind
BUILDDIR = os.environ.get("BUILDDIR", os.path.join(HERE, "..", "..", "build", "plain"))
os.environ.setdefault("VIPD", os.path.join(BUILDDIR, "vipd"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from vipdtest import VIPD, Vipd, done, ok  # noqa: E402
import netns  # noqa: E402
from netns import Netns, Topology  # noqa: E402
import planes_scenario  # noqa: E402

P = "uml-pl-"
VIP = "10.231.100.10"
PORT, BACKEND_PORT = 80, 8080
T0 = time.monotonic()


class IpvsVipd(Vipd):
    """vipd in the guest's init namespace with the IPVS plane, its API on 127.0.0.1."""

    def argv(self):
        return [VIPD, "--foreground", "--dataplane", "ipvs", "--api-listen",
                f"127.0.0.1:{self.port}", "--state-dir", self.state_dir] + self.args


class IpvsEnv:
    plane = "ipvs"
    vip, port = VIP, PORT

    def __init__(self):
        self.client = Netns(P + "cli")
        self.backends = [(f"b{i + 1}", f"10.231.2.{11 + i}", BACKEND_PORT) for i in range(3)]
        self.servers = {}   # name: (PID, the write end of its stdin)
        self.vipd = None

    # --- topology ------------------------------------------------------------------------

    def build(self):
        c_ip, n_ip = Topology.CLIENT_IP[4], Topology.NODE_CLIENT_IP[4]
        lan_ip = Topology.NODE_LAN_IP[4]
        # One ip -batch for the director, one per namespace (a batch line cannot name one).
        batches = {None: [f"link add {P}br type bridge", f"addr add {lan_ip}/24 dev {P}br",
                          f"link set {P}br up", f"netns add {P}cli",
                          f"link add {P}cli type veth peer name eth0 netns {P}cli",
                          f"addr add {n_ip}/24 dev {P}cli", f"link set {P}cli up",
                          f"addr add {VIP}/32 dev lo"],
                   P + "cli": ["link set lo up", f"addr add {c_ip}/24 dev eth0",
                               "link set eth0 up", f"route add default via {n_ip}"]}
        for name, ip, _ in self.backends:
            ns = P + name
            batches[None] += [f"netns add {ns}",
                              f"link add {ns} type veth peer name eth0 netns {ns}",
                              f"link set {ns} master {P}br up"]
            batches[ns] = ["link set lo up", f"addr add {ip}/24 dev eth0", "link set eth0 up",
                           f"route add default via {lan_ip}"]
        for ns, cmds in batches.items():
            r = subprocess.run(["ip"] + (["-n", ns] if ns else []) + ["-b", "-"],
                               input="\n".join(cmds) + "\n", text=True, capture_output=True,
                               timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"ip -b ({ns or 'director'}): {r.stdout}{r.stderr}")
        for name, _, port in self.backends:
            self.spawn(name, port)

    def destroy(self):
        for name in list(self.servers):
            self.kill_server(name)
        cmds = [f"netns del {P}cli", f"link del {P}br", f"link del {P}cli",
                f"addr del {VIP}/32 dev lo"] + [f"netns del {P}{n}" for n, _, _ in self.backends]
        subprocess.run(["ip", "-force", "-b", "-"], input="\n".join(cmds) + "\n", text=True,
                       capture_output=True, timeout=60)

    # --- backend servers: forked children, by PID -----------------------------------------

    def spawn(self, name, port, timeout=10):
        ready_r, ready_w = os.pipe()
        stdin_r, stdin_w = os.pipe()
        sys.stdout.flush()  # the child must not print what we buffered
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(stdin_r, 0)
                os.dup2(ready_w, 1)
                fd = os.open(f"/run/netns/{P}{name}", os.O_RDONLY)
                netns._setns(fd)
                netns.serve(name, [port])
            finally:
                os._exit(1)
        os.close(ready_w)
        os.close(stdin_r)
        self.servers[name] = (pid, stdin_w)
        with os.fdopen(ready_r, "rb") as f:
            r, _, _ = select.select([f], [], [], timeout)
            line = f.readline() if r else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"server {name} did not start: {line!r}")

    def kill_server(self, name):
        pid, stdin_w = self.servers.pop(name)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(stdin_w)

    def start_vipd(self, args):
        self.vipd = IpvsVipd(list(args))
        return self.vipd, self.vipd.start()


def main():
    planes_scenario.main(IpvsEnv(), "client, director (vipd, VIP on lo), bridge, 3 backends "
                         "(default route via the director), backend servers up")
    print(f"# wall time {time.monotonic() - T0:.1f} s", flush=True)


if __name__ == "__main__":
    if not os.access(VIPD, os.X_OK):
        ok(False, f"ipvs: vipd built ({VIPD})")
    else:
        main()
    done()
