#!/usr/bin/python3
"""vipd with --dataplane ipvs, end to end inside user-mode-linux (run by vipd_ipvs.sh).

The guest's init namespace is the director, where vipd runs; ipvsadm (and /proc/net/ip_vs
while polling) is the independent reader. Prints TAP. Checks:
  1. vipd starts with --dataplane ipvs, answers /healthz and logs the sysctls it set;
  2. a TCP nat wrr load balancer (tcp check 300ms/200ms, fall 2, rise 2) with 2 backends:
     ipvsadm shows Masq with the weights, 100 connections split roughly by weight;
  3. drain: weight 0, a held connection keeps working, new ones go to the other backend,
     the API says "draining" with IPVS's active connections, then "drained" once closed;
  4. a killed backend server: health "down", weight 0, new connections go to the other;
  5. dsr (droute): backends hold the VIP on lo (arp_ignore=1, arp_announce=2) on the
     director's L2 segment and answer the client directly;
  6. a foreign service made with ipvsadm before vipd starts survives every sync and exit;
  7. kill -9 and restart: rules unchanged, the new vipd's syncs send 0 change messages,
     traffic (a held connection and new ones) carries on;
  8. SIGTERM removes exactly vipd's services; with --keep-on-exit they stay (and forward);
  9. a UDP nat load balancer: datagrams answered by both backends.
fullnat is not tried: Debian's UML kernel has no nftables NAT. VIPD_UML_LOGS=DIR (a --rw
directory) keeps vipd's logs there.

One python process does it all: the client's sockets are made in the client namespace by
setns(2) on this thread and back, the backend servers are forked children (setns into
their namespace), the API is spoken over http.client. Processes: ip, ipvsadm, vipctl, vipd.

  client ns: eth0 10.0.1.2 --- veth --- director 10.0.1.1, VIPs on lo:
             eth1 10.0.2.2 --+            10.0.0.10 (tcp/80 nat wrr, udp/53 nat rr)
                             |            10.0.0.20 (tcp/8080 dsr rr)
                    bridge uvi-br 10.0.2.1
                       |                |
             be1 eth0 10.0.2.11   be2 eth0 10.0.2.12   (10.0.0.20 on lo; route
                                                        10.0.1.0/24 via 10.0.2.1)
"""
import json
import signal
import socket
import time

from umltest import (VIPCTL, Client, Vipd as UmlVipd, count, ip_batches, ipvsadm_rules,
                     note, ok, remove_topology, run, spawn_server, stop_server, talk, wait_for)
import umltest

P = "uvi-"
CLI, BE = P + "cli", {"be1": "10.0.2.11", "be2": "10.0.2.12"}
VIP, DR_VIP = "10.0.0.10", "10.0.0.20"
TCP_PORT, UDP_PORT, BE_TCP, BE_UDP = 80, 53, 8080, 5353
API_PORT = 10071
API = f"http://127.0.0.1:{API_PORT}"
STATE = umltest.T + "/state"
FOREIGN = ["-A -t 10.9.9.9:80 -s rr",
           "-a -t 10.9.9.9:80 -r 10.0.2.11:8080 -m -w 3",
           "-A -t 10.0.0.10:81 -s lc"]    # another port of vipd's VIP
api = umltest.api_at(API_PORT)
client = Client(CLI)
tcp_open, tcp_many, udp_many = client.tcp_open, client.tcp_many, client.udp_many


# ---- topology

def topology():
    root = f"""link add {P}br type bridge
addr add 10.0.2.1/24 dev {P}br
link set {P}br up
netns add {CLI}
netns add {P}be1
netns add {P}be2
link add {P}cli type veth peer name eth0 netns {CLI}
addr add 10.0.1.1/24 dev {P}cli
link set {P}cli up
link add {P}cli2 type veth peer name eth1 netns {CLI}
link set {P}cli2 master {P}br up
link add {P}be1 type veth peer name eth0 netns {P}be1
link set {P}be1 master {P}br up
link add {P}be2 type veth peer name eth0 netns {P}be2
link set {P}be2 master {P}br up
addr add {VIP}/32 dev lo
addr add {DR_VIP}/32 dev lo
"""
    cli = f"""link set lo up
addr add 10.0.1.2/24 dev eth0
link set eth0 up
route add default via 10.0.1.1
addr add 10.0.2.2/24 dev eth1
link set eth1 up
route add {DR_VIP} via 10.0.2.1 dev eth1
"""
    batches = {None: root, CLI: cli}
    for name, ip in BE.items():
        batches[P + name] = f"""link set lo up
addr add {ip}/24 dev eth0
link set eth0 up
route add 10.0.1.0/24 via 10.0.2.1
addr add {DR_VIP}/32 dev lo
"""
    return ip_batches(batches)


def cleanup_topology():
    remove_topology([CLI, P + "be1", P + "be2"], [P + "br", P + "cli"],
                    [f"{VIP}/32", f"{DR_VIP}/32"])


def start_server(name):
    """Backend name's server (umltest.serve: TCP 8080, UDP 5353), in a namespace answering ARP
    only for its eth0's own addresses (dsr: the VIP on lo stays quiet)."""
    return spawn_server(name, P + name, BE_TCP, BE_UDP,
                        sysctls=(("ipv4/conf/all/arp_ignore", "1"),
                                 ("ipv4/conf/all/arp_announce", "2")))


# ---- IPVS readers

def _addr(hexap):
    a, p = hexap.split(":")
    return f"{socket.inet_ntoa(bytes.fromhex(a))}:{int(p, 16)}"


def proc_ipvs():
    """/proc/net/ip_vs (no process): {"TCP 10.0.0.10:80": {dest: (fwd, weight, act, inact)}}."""
    svcs, cur = {}, None
    with open("/proc/net/ip_vs") as f:
        for line in f.read().splitlines()[3:]:
            w = line.split()
            if len(w) >= 2 and w[0] in ("TCP", "UDP") and ":" in w[1]:
                cur = svcs.setdefault(f"{w[0]} {_addr(w[1])}", {})
            elif len(w) >= 6 and w[0] == "->" and cur is not None:
                cur[_addr(w[1])] = (w[2], int(w[3]), int(w[4]), int(w[5]))
            else:
                cur = None
    return svcs


def weight(svc, dest):
    d = proc_ipvs().get(svc, {}).get(dest)
    return d[1] if d else None


# ---- vipd

class Vipd(UmlVipd):
    def __init__(self, tag, extra=()):
        super().__init__(tag, API_PORT, ["--dataplane", "ipvs", "--state-dir", STATE,
                                         "--ipam-range", "10.0.0.0/24", "--log-level", "debug",
                                         *extra])

    def syncs(self):
        """messages= of each 'IPVS synced' line."""
        return [int(l.split("messages=")[1].split()[0]) for l in self.text().splitlines()
                if 'msg="IPVS synced"' in l and "messages=" in l]


def backend(lb, ip):
    """The API's view of lb's backend ip (GET /loadbalancer/UUID), or {}."""
    st, j = api("GET", f"/loadbalancer/{lb['uuid']}")
    for b in j.get("backends", []) if st == 200 else []:
        if b["ip"] == ip:
            return b
    return {}


def healths(lbs):
    out = []
    for lb in lbs:
        st, j = api("GET", f"/loadbalancer/{lb['uuid']}")
        out += [b.get("health") for b in j.get("backends", [])] if st == 200 else ["?"]
    return out


# ---- the checks

HC = {"type": "tcp", "interval": "300ms", "timeout": "200ms", "fail_count": 2, "rise_count": 2}
TCP_SVC, UDP_SVC, DR_SVC = f"TCP {VIP}:{TCP_PORT}", f"UDP {VIP}:{UDP_PORT}", f"TCP {DR_VIP}:{BE_TCP}"
B1, B2 = f"{BE['be1']}:{BE_TCP}", f"{BE['be2']}:{BE_TCP}"
VIPD_RULES = sorted([
    f"-A -t {VIP}:{TCP_PORT} -s wrr",
    f"-a -t {VIP}:{TCP_PORT} -r {B1} -m -w 1",
    f"-a -t {VIP}:{TCP_PORT} -r {B2} -m -w 3",
    f"-A -u {VIP}:{UDP_PORT} -s rr",
    f"-a -u {VIP}:{UDP_PORT} -r {BE['be1']}:{BE_UDP} -m -w 1",
    f"-a -u {VIP}:{UDP_PORT} -r {BE['be2']}:{BE_UDP} -m -w 1",
    f"-A -t {DR_VIP}:{BE_TCP} -s rr",
    f"-a -t {DR_VIP}:{BE_TCP} -r {B1} -g -w 1",
    f"-a -t {DR_VIP}:{BE_TCP} -r {B2} -g -w 1",
])
ALL_RULES = sorted(VIPD_RULES + FOREIGN)


def diff(want, have):
    w, h = set(want), set(have)
    return "\n".join([f"missing: {r}" for r in sorted(w - h)] +
                     [f"extra:   {r}" for r in sorted(h - w)])


def main():
    good, why = topology()
    if not ok(good, "topology: client ns, 2 backend ns on a bridge, VIPs on the director's lo",
              why):
        return
    if not ok(all([start_server(name) for name in BE]),
              "backend servers listening (TCP 8080, UDP 5353)"):
        return
    rc, out = run("ipvsadm", "-R", stdin="\n".join(FOREIGN) + "\n")
    ok(rc == 0 and ipvsadm_rules() == sorted(FOREIGN),
       "foreign services made with ipvsadm -R before vipd starts", out)
    note("topology, servers and foreign services ready")

    # 1. start, with the sysctls vipd needs off so that it has to set them
    sysctls = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/vs/conntrack",
               "/proc/sys/net/ipv4/vs/expire_nodest_conn")
    for s in sysctls:
        with open(s, "w") as f:
            f.write("0")
    v = Vipd("a")
    up = v.healthy()
    ok(up, "1. vipd --dataplane ipvs starts and answers /healthz", v.tail())
    if not up:
        return
    log = v.text()
    missing = [s for s in sysctls if f'msg="sysctl set for IPVS" path={s} value=1' not in log]
    values = {s: open(s).read().strip() for s in sysctls}
    ok(not missing and set(values.values()) == {"1"},
       "1. vipd logs the sysctls it set (ip_forward, vs/conntrack, vs/expire_nodest_conn) "
       "and they read 1", f"not logged: {missing}\nvalues: {values}\n{v.tail()}")
    ok("dataplane=ipvs" in log, "1. the ready line names dataplane=ipvs", v.tail())
    note("vipd started")

    # 2. TCP nat wrr, UDP nat rr on the same VIP, dsr
    def create(body):
        st, j = api("POST", "/loadbalancer", body)
        ok(st == 201, f"API creates load balancer {body['name']}", f"{st} {j}")
        return j if st == 201 else None

    def bes(port, w=(1, 3)):
        return [{"ip": BE["be1"], "port": port, "weight": w[0]},
                {"ip": BE["be2"], "port": port, "weight": w[1]}]
    web = create({"name": "web", "vip": VIP, "port": TCP_PORT, "protocol": "tcp",
                  "scheduler": "wrr", "forwarding": "nat", "health_check": HC,
                  "backends": bes(BE_TCP)})
    dns = create({"name": "dns", "vip": VIP, "port": UDP_PORT, "protocol": "udp",
                  "scheduler": "rr", "forwarding": "nat", "backends": bes(BE_UDP, (1, 1))})
    dsr = create({"name": "dsr", "vip": DR_VIP, "port": BE_TCP, "protocol": "tcp",
                  "scheduler": "rr", "forwarding": "dsr", "health_check": HC,
                  "backends": bes(BE_TCP, (1, 1))})
    if not (web and dns and dsr):
        return
    t = time.monotonic()
    # every service and destination, not just the services: a pass adds them one by one
    wait_for(lambda: len(proc_ipvs()) == 5 and ipvsadm_rules() == ALL_RULES, 5, 0.1)
    note(f"services in IPVS {time.monotonic() - t:.2f}s after the API calls")
    rules = ipvsadm_rules()
    ok(rules == ALL_RULES, "2. ipvsadm -Sn: wrr service with 2 Masq destinations weighted "
       "1 and 3 (and the udp and dsr ones, and the foreign ones)", diff(ALL_RULES, rules))
    hup = wait_for(lambda: healths([web, dsr]) == ["up"] * 4, 5)
    ok(hup, "2. the API reports both backends' health up (tcp check, rise 2)",
       healths([web, dsr]))
    t = time.monotonic()
    got = tcp_many(VIP, TCP_PORT, 100)
    n1, n2 = count(got, "be1"), count(got, "be2")
    note(f"100 connections in {time.monotonic() - t:.2f}s: be1 {n1}, be2 {n2}")
    ok(n1 + n2 == 100 and 15 <= n1 <= 35,
       f"2. 100 connections through the VIP all answered, split by weight 1:3 "
       f"(be1 {n1}, be2 {n2})", "\n".join(a for a in got if a.startswith("ERR"))[:2000])
    ok(all(a.endswith(" 10.0.1.2") for a in got if not a.startswith("ERR")),
       "2. backends see the client's own address (masq)")

    # 9. UDP
    got = udp_many(VIP, UDP_PORT, 10)
    ok(count(got, "be1") + count(got, "be2") == 10 and count(got, "be1") >= 3 and
       count(got, "be2") >= 3, "9. UDP nat load balancer: 10 datagrams answered by both "
       f"backends (be1 {count(got, 'be1')}, be2 {count(got, 'be2')})", "\n".join(got))

    # 3. drain be1 while a connection to it is held
    hold = None
    for _ in range(12):
        s, line = tcp_open(VIP, TCP_PORT)
        if s and line.startswith("be1 "):
            hold = s
            break
        if s:
            s.close()
    if not ok(hold is not None, "3. a connection to be1 through the VIP is held open"):
        return
    rc, out = run(VIPCTL, "--api", API, "backend", "drain", "web", B1)
    ok(rc == 0, "3. vipctl backend drain web 10.0.2.11:8080", out)
    t = time.monotonic()
    w0 = wait_for(lambda: weight(TCP_SVC, B1) == 0, 5)
    note(f"drain reached IPVS in {time.monotonic() - t:.2f}s")
    rules = ipvsadm_rules()
    ok(w0 and f"-a -t {VIP}:{TCP_PORT} -r {B1} -m -w 0" in rules,
       "3. ipvsadm shows the drained backend with weight 0", "\n".join(rules))
    echo = talk(hold, "after-drain")
    ok(echo == "be1 after-drain", "3. the held connection still sends and receives after "
       "the drain", echo)
    got = tcp_many(VIP, TCP_PORT, 20)
    ok(count(got, "be2") == 20, f"3. 20 new connections all go to be2 (be2 "
       f"{count(got, 'be2')})", "\n".join(got))
    b = wait_for(lambda: (lambda b: b if b.get("state") == "draining" else None)(
        backend(web, BE["be1"])), 3)
    b = b or backend(web, BE["be1"])
    act = b.get("stats", {}).get("active_connections", 0)
    ipvs_act = proc_ipvs().get(TCP_SVC, {}).get(B1, (0, 0, -1))[2]
    ok(b.get("state") == "draining" and act >= 1,
       f"3. the API says draining with stats.active_connections {act} "
       f"(IPVS ActiveConn {ipvs_act})", json.dumps(b))
    hold.close()
    hold = None
    t = time.monotonic()
    b = wait_for(lambda: (lambda b: b if b.get("state") == "drained" else None)(
        backend(web, BE["be1"])), 10, 0.2)
    note(f"drained {time.monotonic() - t:.2f}s after the held connection closed")
    ok(b is not None, "3. the API says drained once the held connection is closed",
       json.dumps(backend(web, BE["be1"])))
    st, j = api("POST", f"/loadbalancer/{web['uuid']}/backend/{backend(web, BE['be1'])['uuid']}"
                "/undrain")
    ok(st == 200 and wait_for(lambda: weight(TCP_SVC, B1) == 1, 5),
       "3. undrain: IPVS weight back to 1", f"{st} {j}")

    # 4. kill be2's server
    t = time.monotonic()
    stop_server("be2")
    # Each load balancer checks be2 on its own schedule: wait for both, or the
    # dsr one may still be a probe interval behind when ipvsadm is read.
    down = wait_for(lambda: backend(web, BE["be2"]).get("health") == "down" and
                    weight(TCP_SVC, B2) == 0 and weight(DR_SVC, B2) == 0, 8, 0.1)
    note(f"be2 down and weight 0 {time.monotonic() - t:.2f}s after its server was killed")
    ok(down, "4. killed backend server: the API says health down",
       json.dumps(backend(web, BE["be2"])))
    rules = ipvsadm_rules()
    ok(f"-a -t {VIP}:{TCP_PORT} -r {B2} -m -w 0" in rules and
       f"-a -t {DR_VIP}:{BE_TCP} -r {B2} -g -w 0" in rules,
       "4. ipvsadm shows the dead backend with weight 0 (nat and dsr)", "\n".join(rules))
    got = tcp_many(VIP, TCP_PORT, 20)
    ok(count(got, "be1") == 20, f"4. 20 new connections all succeed on be1 (be1 "
       f"{count(got, 'be1')})", "\n".join(got))
    start_server("be2")
    t = time.monotonic()
    back = wait_for(lambda: weight(TCP_SVC, B2) == 3 and weight(DR_SVC, B2) == 1, 8, 0.1)
    note(f"be2 back {time.monotonic() - t:.2f}s after its server restarted")
    ok(back and healths([web, dsr]) == ["up"] * 4,
       "4. restarted server: health up, weight back to 3", healths([web, dsr]))

    # 5. dsr
    rules = ipvsadm_rules()
    ok(f"-a -t {DR_VIP}:{BE_TCP} -r {B1} -g -w 1" in rules,
       "5. ipvsadm shows the dsr service's destinations as Route", "\n".join(rules))
    got = tcp_many(DR_VIP, BE_TCP, 10)
    ok(count(got, "be1") + count(got, "be2") == 10 and count(got, "be1") > 0 and
       count(got, "be2") > 0 and all(a.endswith(" 10.0.2.2") for a in got),
       f"5. dsr: 10 connections reach both backends, which answer the client directly "
       f"(be1 {count(got, 'be1')}, be2 {count(got, 'be2')})", "\n".join(got))

    # 6. foreign services after all those syncs
    syncs_a = v.syncs()
    note(f"first vipd: {len(syncs_a)} syncs, {sum(syncs_a)} change messages")
    rules = ipvsadm_rules()
    ok(set(FOREIGN) <= set(rules) and rules == ALL_RULES,
       f"6. the foreign services are intact after {len(syncs_a)} syncs of vipd's",
       diff(ALL_RULES, rules))

    # 7. kill -9, restart
    hold, line = tcp_open(VIP, TCP_PORT)
    before = ipvsadm_rules()
    v.stop(signal.SIGKILL)
    ok(ipvsadm_rules() == before, "7. kill -9: every rule stays in IPVS")
    got = tcp_many(VIP, TCP_PORT, 4)
    ok(count(got, "be1") + count(got, "be2") == 4, "7. traffic flows while vipd is dead",
       "\n".join(got))
    t = time.monotonic()
    v = Vipd("b")
    up = v.healthy()
    note(f"restarted vipd answered /healthz in {time.monotonic() - t:.2f}s")
    ok(up, "7. vipd restarts after kill -9", v.tail())
    if not up:
        return
    first = wait_for(v.syncs, 5)
    wait_for(lambda: healths([web, dsr]) == ["up"] * 4, 5)
    time.sleep(0.5)      # the health checks' up transitions each bring a sync
    syncs = v.syncs()
    note(f"restarted vipd: syncs sending {syncs} change messages")
    ok(first and first[0] == 0, "7. the restarted vipd's first sync sends 0 change messages",
       f"syncs: {syncs}\n{v.tail()}")
    ok(syncs and sum(syncs) == 0, f"7. no message storm: {len(syncs)} syncs since the "
       "restart, 0 change messages in all", f"syncs: {syncs}")
    rules = ipvsadm_rules()
    ok(rules == before and sum(1 for r in rules if r.startswith("-A ")) == 5,
       "7. ipvsadm rules unchanged, no duplicate service (5 services)", diff(before, rules))
    echo = talk(hold, "after-restart") if hold else "ERR no held connection"
    ok(echo.endswith(" after-restart") and echo.split()[0] == line.split()[0],
       "7. a connection held across kill -9 and restart still works", f"{line} / {echo}")
    if hold:
        hold.close()
    got = tcp_many(VIP, TCP_PORT, 8)
    ok(count(got, "be1") >= 1 and count(got, "be2") >= 1 and
       count(got, "be1") + count(got, "be2") == 8,
       "7. new connections after the restart reach both backends", "\n".join(got))

    # 8. SIGTERM: exactly vipd's services go
    rc = v.stop()
    rules = ipvsadm_rules()
    ok(rc == 0 and rules == sorted(FOREIGN),
       "8. SIGTERM: vipd exits 0 and removes exactly its services (the foreign ones stay)",
       f"rc {rc}\n{diff(FOREIGN, rules)}\n{v.tail(8)}")
    ok('msg="IPVS services removed" count=3' in v.text(),
       "8. the log says it removed its 3 services", v.tail(8))
    v = Vipd("c", ["--keep-on-exit"])
    up = v.healthy() and wait_for(lambda: ipvsadm_rules() == ALL_RULES, 5, 0.3)
    ok(up, "8. vipd --keep-on-exit restores its services from the state", v.tail())
    rc = v.stop()
    rules = ipvsadm_rules()
    ok(rc == 0 and rules == ALL_RULES,
       "8. SIGTERM with --keep-on-exit: vipd's services and the foreign ones stay",
       f"rc {rc}\n{diff(ALL_RULES, rules)}\n{v.tail(8)}")
    ok("keeping vipd's IPVS services" in v.text(), "8. the log says it kept them", v.tail(8))
    got = tcp_many(VIP, TCP_PORT, 4)
    ok(count(got, "be1") + count(got, "be2") == 4,
       "8. the kept services forward with vipd gone", "\n".join(got))
    # the kept services are still vipd's: the next vipd adopts them and removes them at exit
    v = Vipd("d")
    up = v.healthy() and wait_for(v.syncs, 5)
    ok(up and "owned_services=3" in v.text() and v.syncs()[0] == 0,
       "8. the next vipd adopts the kept services (owns 3, first sync sends 0 messages)",
       v.tail())
    rc = v.stop()
    rules = ipvsadm_rules()
    ok(rc == 0 and rules == sorted(FOREIGN),
       "8. and removes them at SIGTERM, leaving the foreign ones",
       f"rc {rc}\n{diff(FOREIGN, rules)}\n{v.tail(8)}")
    ok(set(FOREIGN) <= set(rules), "6. the foreign services survive every vipd exit")


if __name__ == "__main__":
    umltest.main(main, cleanup_topology)
