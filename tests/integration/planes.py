"""The two-planes scenario (tests/lib/planes_scenario.py) with `vipd --dataplane xdp` on this
host; tests/uml/planes.sh runs the same scenario with `--dataplane ipvs` inside
user-mode-linux. The topology is tests/lib/netns.py's: a client, a node running vipd (XDP on
its client side and on its side of the backends' bridge, xdp_pass on the veth peers, TX
checksum offload off), 3 backends whose default route is the node (so nat works). Prints TAP
and "# outcome: {...}" to compare with the IPVS run.

Run: BUILDDIR=build/plain python3 tests/integration/planes.py   (VIPD overrides BUILDDIR/vipd)
"""
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, "..", "..")
sys.dont_write_bytecode = True  # importing health.py and the libraries leaves nothing behind
os.environ.setdefault("VIPD", os.path.join(
    os.environ.get("BUILDDIR", os.path.join(TOP, "build", "plain")), "vipd"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)
from vipdtest import done, tmpdir  # noqa: E402
import netns  # noqa: E402
from netns import Topology  # noqa: E402
from health import NsVipd  # noqa: E402
from health_topo import HealthTopo  # noqa: E402
import planes_scenario  # noqa: E402

VIP = "10.231.100.10"
PORT, BACKEND_PORT = 80, 8080
T0 = time.time()


class XdpEnv:
    plane = "xdp"
    vip, port = VIP, PORT

    def __init__(self, topo, pin_dir):
        self.topo, self.pin_dir = topo, pin_dir
        self.client = topo.client
        self.backends = [(b.name, b.ip[4], BACKEND_PORT) for b in topo.backends]
        self.vipd = None

    def start_vipd(self, args):
        # nsenter keeps the host's /sys/fs/bpf for the pins.
        self.vipd = NsVipd(self.topo.node, ["--dataplane", "xdp", "--adapter", Topology.ADAPTER,
                                            "--bpf-pin-dir", self.pin_dir] + list(args),
                           nsenter=True)
        return self.vipd, self.vipd.start()

    def kill_server(self, name):
        HealthTopo.kill_server(next(b for b in self.topo.backends if b.name == name))

    def build(self):
        obj = netns.build_xdp_pass(tmpdir("vipd-planes-"))
        self.topo.build()
        self.topo.attach_xdp_pass(obj)
        self.topo.start_servers([BACKEND_PORT])

    def destroy(self):
        self.topo.destroy()
        shutil.rmtree(self.pin_dir, ignore_errors=True)


def main():
    # timeout(1) stops with SIGTERM: unwind so that planes_scenario.main cleans up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    topo = Topology(prefix="pl-")
    planes_scenario.main(XdpEnv(topo, f"/sys/fs/bpf/vipd-{topo.tag}"),
                         "client, node, lan bridge, 3 backends (default route via the node), "
                         "xdp_pass on the veth peers, backend servers up")
    print(f"# wall time {time.time() - T0:.1f} s", flush=True)


if __name__ == "__main__":
    main()
    done()
