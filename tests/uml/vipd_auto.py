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
import os
import re

from umltest import (Client, Vipd as UmlVipd, ip_batches, note, ok, remove_topology, run,
                     spawn_server, wait_for)
import umltest

P = "au-"
CLI, BE, DUM = P + "cli", P + "be", P + "dum"
VIP, VIP_PORT, BE_IP, BE_PORT = "10.0.0.10", 80, "10.0.2.11", 8080
API_PORT = 10081
VIPD, T = umltest.VIPD, umltest.T
PIN = "/sys/fs/bpf/au-vipd-auto"
CHOSEN = 'msg="data plane chosen"'

api = umltest.api_at(API_PORT)


def topology():
    return ip_batches({None: f"""link add {DUM} type dummy
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
""", CLI: """link set lo up
addr add 10.0.1.2/24 dev eth0
link set eth0 up
route add default via 10.0.1.1
""", BE: f"""link set lo up
addr add {BE_IP}/24 dev eth0
link set eth0 up
route add default via 10.0.2.1
"""})


def cleanup_topology():
    remove_topology([CLI, BE], [CLI, BE, DUM], [f"{VIP}/32"])


def ipvs_services():
    with open("/proc/net/ip_vs") as f:
        return [l.split()[:2] for l in f.read().splitlines()[3:] if l.startswith(("TCP", "UDP"))]


def ipvs_dests():
    """[[address:port, forwarding]] of the destinations in /proc/net/ip_vs (hex, as there)."""
    with open("/proc/net/ip_vs") as f:
        return [l.split()[1:3] for l in f.read().splitlines()[3:] if l.split()[:1] == ["->"]]


def xdp_flag(dev):
    """How `ip link show` flags dev: "xdp" (native), "xdpgeneric", or None."""
    rc, out = run("ip", "link", "show", "dev", dev)
    first = out.split("\n")[0].split()
    return next((f for f in ("xdp", "xdpgeneric") if f in first), None)


class Vipd(UmlVipd):
    def __init__(self, tag, adapter, dataplane="auto", pin=PIN):
        super().__init__(tag, API_PORT, ["--dataplane", dataplane, "--adapter", adapter,
                                         "--state-dir", f"{T}/state-{tag}",
                                         "--bpf-pin-dir", pin])


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
    if not ok(spawn_server("be", BE, BE_PORT), "backend server listening (TCP 8080)"):
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
    ok(st == 201 and wait_for(lambda: ipvs_services() == [["TCP", "0A00000A:0050"]] and
                              ipvs_dests() == [["0A00020B:1F90", "Masq"]], 5),
       "1. a nat load balancer made through the API is an IPVS service with its backend "
       "as a Masq destination", f"{st} {lb} {ipvs_services()} {ipvs_dests()}")
    got = Client(CLI).tcp_many(VIP, VIP_PORT, 10)
    ok(all(g == "be 10.0.1.2" for g in got),
       "1. 10 connections from the client namespace reach the backend through IPVS",
       "\n".join(got))
    rc = v.stop()
    ok(rc == 0 and ipvs_services() == [], "1. SIGTERM: vipd exits 0 and removes its service",
       f"rc {rc} {ipvs_services()}")


def cleanup():
    if os.path.exists(PIN):
        run(VIPD, "--xdp-unload", "--bpf-pin-dir", PIN)
    cleanup_topology()


if __name__ == "__main__":
    umltest.main(main, cleanup)
