#!/usr/bin/python3
"""vipd's fullnat on IPVS, end to end inside user-mode-linux (run by vipd_fullnat.sh).

A fullnat load balancer is IPVS masq plus vipd's SNAT table "inet vipd". The backends here
have NO route back to the client's main address, so a connection through a fullnat VIP works
only when its source is rewritten to the director's. nft and ipvsadm are the independent
readers; the backends report the source they see. Prints TAP. Checks, in order:
  1. vipd starts; with no fullnat load balancer there is no table (and no error logged);
  2. a nat load balancer gets no SNAT: no table; from the client's routed address the
     backend sees the client, from the unrouted one the connection fails;
  3. a fullnat TCP load balancer: the table holds its element, ipvsadm shows it as Masq,
     20 connections from the unrouted address all work and the backends see the director;
  4. a held connection survives the table being rewritten for 2 more fullnat load
     balancers (UDP, IPv6), whose traffic works with the director's address as source;
  5. drain and undrain on both load balancers change IPVS but make no nft call;
  6. deleting the UDP load balancer removes its element, the rest keeps working;
  7. SIGTERM removes the table with the IPVS services; --keep-on-exit keeps both and they
     forward with vipd gone; the next vipd adopts them, deleting the fullnat load
     balancers deletes the table, and SIGTERM leaves nothing;
  8. a foreign nft table (inet other) and one named like vipd's in another family (ip vipd)
     stay byte-identical throughout.
VIPD_UML_LOGS=DIR (a --rw directory) keeps vipd's logs there.

  client ns fn-cli: eth0 10.0.1.2 (unrouted), 10.0.1.200 (routed), fd00:1::2 (unrouted)
        |  veth
  director: fn-cli 10.0.1.1 fd00:1::1; VIPs on lo: 10.0.0.10 (fullnat tcp/80, udp/53),
            10.0.0.20 (nat tcp/80), fd00:10::10 (fullnat tcp/80)
            bridge fn-br 10.0.2.1 fd00:2::1
        |                    |
  fn-be1 10.0.2.11 fd00:2::11     fn-be2 10.0.2.12 fd00:2::12
  (routes: 10.0.2.0/24, fd00:2::/64, and 10.0.1.128/25 via 10.0.2.1; nothing else)
"""
import json
import time

from umltest import (Client, Vipd as UmlVipd, count, ip_batches, ipvsadm_rules, note, ok,
                     remove_topology, run, spawn_server, talk, wait_for)
import umltest

P = "fn-"
CLI = P + "cli"
BE = {"be1": ("10.0.2.11", "fd00:2::11"), "be2": ("10.0.2.12", "fd00:2::12")}
VIP, NAT_VIP, VIP6 = "10.0.0.10", "10.0.0.20", "fd00:10::10"
UNROUTED, ROUTED, UNROUTED6 = "10.0.1.2", "10.0.1.200", "fd00:1::2"
DIRECTOR, DIRECTOR6 = "10.0.2.1", "fd00:2::1"
BE_TCP, BE_UDP = 8080, 5353
API_PORT = 10073
STATE = umltest.T + "/state"
FOREIGN = """table inet other {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @blocked drop
	}
}
table ip vipd {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip daddr 192.0.2.99 masquerade
	}
}
"""

api = umltest.api_at(API_PORT)
client = Client(CLI)
tcp_open, tcp_many, udp_many = client.tcp_open, client.tcp_many, client.udp_many


def topology():
    root = f"""link add {P}br type bridge
addr add {DIRECTOR}/24 dev {P}br
addr add {DIRECTOR6}/64 dev {P}br nodad
link set {P}br up
netns add {CLI}
link add {P}cli type veth peer name eth0 netns {CLI}
addr add 10.0.1.1/24 dev {P}cli
addr add fd00:1::1/64 dev {P}cli nodad
link set {P}cli up
addr add {VIP}/32 dev lo
addr add {NAT_VIP}/32 dev lo
addr add {VIP6}/128 dev lo
"""
    cli = f"""link set lo up
addr add {UNROUTED}/24 dev eth0
addr add {ROUTED}/24 dev eth0
addr add {UNROUTED6}/64 dev eth0 nodad
link set eth0 up
route add default via 10.0.1.1
route add default via fd00:1::1
"""
    for name in BE:
        root += f"netns add {P}{name}\nlink add {P}{name} type veth peer name eth0 netns " \
                f"{P}{name}\nlink set {P}{name} master {P}br up\n"
    batches = {None: root, CLI: cli}
    for name, (ip, ip6) in BE.items():
        batches[P + name] = f"""link set lo up
addr add {ip}/24 dev eth0
addr add {ip6}/64 dev eth0 nodad
link set eth0 up
route add 10.0.1.128/25 via {DIRECTOR}
"""
    return ip_batches(batches)


def cleanup_topology():
    remove_topology([CLI, P + "be1", P + "be2"], [P + "br", P + "cli"],
                    [f"{VIP}/32", f"{NAT_VIP}/32", f"{VIP6}/128"])


# ---- the answers

def all_from(lines, peer):
    """Every answer came from a backend that saw peer as the source."""
    return bool(lines) and all(a.split(" ")[0] in BE and a.split(" ")[1] == peer for a in lines)


# ---- readers

def nft_table():
    """{set: sorted elements} of inet vipd and its rules' text, or None when absent."""
    rc, out = run("nft", "-j", "list", "table", "inet", "vipd")
    if rc != 0:
        return None
    sets = {}
    for o in json.loads(out)["nftables"]:
        if "set" in o:
            sets[o["set"]["name"]] = sorted(tuple(e["concat"]) for e in o["set"].get("elem", []))
    return sets


def nft_text(*table):
    rc, out = run("nft", "-a", "list", "table", *table)
    return out if rc == 0 else f"ERR {out}"


def foreign():
    return nft_text("inet", "other") + nft_text("ip", "vipd")


# ---- vipd

class Vipd(UmlVipd):
    def __init__(self, tag, extra=()):
        super().__init__(tag, API_PORT, ["--dataplane", "ipvs", "--state-dir", STATE,
                                         "--log-level", "debug", *extra])

    def syncs(self):
        """(messages, nft_calls) of each 'IPVS synced' line."""
        out = []
        for l in self.text().splitlines():
            if 'msg="IPVS synced"' in l and "nft_calls=" in l:
                out.append((int(l.split("messages=")[1].split()[0]),
                            int(l.split("nft_calls=")[1].split()[0])))
        return out


def ipvs_has(*svcs):
    rules = ipvsadm_rules()
    return all(any(r.startswith(f"-A {s} ") for r in rules) for s in svcs)


def ipvs_dests(*lines):
    """Every one of these destination rules ("-a -t VIP:PORT -r ADDR:PORT -m -w 1") is in
    ipvsadm -Sn (and so its service)."""
    rules = ipvsadm_rules()
    return all(l in rules for l in lines)


def ipvs_lacks(*svcs):
    rules = ipvsadm_rules()
    return not any(r.startswith(f"-A {s} ") for s in svcs for r in rules)


# ---- the checks

E_WEB = (VIP, "tcp", 80)
E_DNS = (VIP, "udp", 53)
E_WEB6 = (VIP6, "tcp", 80)


def main():
    good, why = topology()
    if not ok(good, "topology: client ns, 2 backend ns on a bridge without a route to the "
              "client's unrouted addresses, VIPs on the director's lo", why):
        return
    rc, out = run("nft", "-f", "-", stdin=FOREIGN)
    if not ok(rc == 0, "the kernel has nftables inet/ip NAT; foreign tables inet other and ip "
              "vipd loaded (boot tests/uml/build-kernel's kernel: uml-run --kernel)", out):
        return
    before = foreign()
    if not ok(all([spawn_server(name, P + name, BE_TCP, BE_UDP, six=True) for name in BE]),
              "backend servers listening (TCP 8080 v4+v6, UDP 5353)"):
        return

    # 1. no fullnat: no table
    v = Vipd("a")
    if not ok(v.healthy(), "1. vipd --dataplane ipvs starts", v.tail()):
        return
    wait_for(v.syncs, 5)
    ok(nft_table() is None and "fullnat SNAT table" not in v.text(),
       "1. no fullnat load balancer: no inet vipd table, nothing logged about it", v.tail())

    def create(body):
        st, j = api("POST", "/loadbalancer", body)
        ok(st == 201, f"API creates {body['forwarding']} load balancer {body['name']}",
           f"{st} {j}")
        return j if st == 201 else None

    def bes(port, six=False):
        return [{"ip": BE[n][1 if six else 0], "port": port} for n in BE]

    # 2. nat: no SNAT
    natweb = create({"name": "natweb", "vip": NAT_VIP, "port": 80, "protocol": "tcp",
                     "scheduler": "rr", "forwarding": "nat", "backends": bes(BE_TCP)})
    if not natweb:
        return
    ok(wait_for(lambda: ipvs_dests(*[f"-a -t {NAT_VIP}:80 -r {BE[n][0]}:{BE_TCP} -m -w 1"
                                     for n in BE]), 5) and nft_table() is None,
       "2. the nat load balancer is in IPVS and gets no SNAT table", "\n".join(ipvsadm_rules()))
    got = tcp_many(NAT_VIP, 80, 6, ROUTED)
    ok(all_from(got, ROUTED) and count(got, "be1") and count(got, "be2"),
       "2. nat from the client's routed address: both backends answer, seeing the client "
       "(no SNAT)", "\n".join(got))
    got = tcp_many(NAT_VIP, 80, 2, UNROUTED, timeout=1.0)
    ok(all(a.startswith("ERR") for a in got), "2. nat from the unrouted address fails: "
       "nothing rewrites the source, the backends cannot answer", "\n".join(got))

    # 3. fullnat TCP
    # (with an IPv6 backend behind the IPv4 VIP, which only XDP's fullnat can reach)
    web = create({"name": "web", "vip": VIP, "port": 80, "protocol": "tcp", "scheduler": "rr",
                  "forwarding": "fullnat",
                  "backends": bes(BE_TCP) + [{"ip": "fd00:9::5", "port": BE_TCP}]})
    if not web:
        return
    t = time.monotonic()
    have = wait_for(lambda: nft_table() == {"fullnat4": [E_WEB], "fullnat6": []} and
                    ipvs_dests(*[f"-a -t {VIP}:80 -r {BE[n][0]}:{BE_TCP} -m -w 1"
                                 for n in BE]), 5)
    note(f"table and IPVS service {time.monotonic() - t:.2f}s after the API call")
    ok(have, "3. nft list table inet vipd: fullnat4 holds 10.0.0.10 . tcp . 80, nothing else",
       f"{nft_table()}\n{nft_text('inet', 'vipd')}")
    rules = ipvsadm_rules()
    ok(f"-a -t {VIP}:80 -r {BE['be1'][0]}:{BE_TCP} -m -w 1" in rules and
       f"-a -t {VIP}:80 -r {BE['be2'][0]}:{BE_TCP} -m -w 1" in rules,
       "3. ipvsadm shows the fullnat service's backends as Masq", "\n".join(rules))
    ok("fd00:9::5" not in "\n".join(rules) and
       v.text().count("other address family than their VIP are left out") == 1,
       "3. the IPv6 backend behind the IPv4 VIP is left out (IPVS mixes families only when "
       "tunnelling), said once", v.tail())
    ok(v.text().count('msg="fullnat SNAT table created" table="inet vipd" services=1') == 1,
       "3. the log says the table was created, once", v.tail())
    t = time.monotonic()
    got = tcp_many(VIP, 80, 20, UNROUTED)
    note(f"20 fullnat connections in {time.monotonic() - t:.2f}s")
    ok(all_from(got, DIRECTOR) and count(got, "be1") == 10 and count(got, "be2") == 10,
       "3. 20 fullnat connections from the unrouted address all work, 10 a backend, and the "
       f"backends see the director ({DIRECTOR}), not the client", "\n".join(got))
    got = tcp_many(VIP, 80, 2, ROUTED)
    ok(all_from(got, DIRECTOR), "3. from the routed address too the backends see the director",
       "\n".join(got))
    rules_text = nft_text("inet", "vipd")
    ok("ct original ip daddr . meta l4proto . ct original proto-dst @fullnat4 masquerade"
       in rules_text and "mark" not in rules_text,
       "3. the rule masquerades by original destination, with no mark", rules_text)

    # 4. a held connection across table rewrites; UDP and IPv6
    hold, greet = tcp_open(VIP, 80, UNROUTED)
    ok(hold is not None and greet.endswith(" " + DIRECTOR), "4. a fullnat connection is held "
       "open", greet)
    dns = create({"name": "dns", "vip": VIP, "port": 53, "protocol": "udp", "scheduler": "rr",
                  "forwarding": "fullnat", "backends": bes(BE_UDP)})
    web6 = create({"name": "web6", "vip": VIP6, "port": 80, "protocol": "tcp",
                   "scheduler": "rr", "forwarding": "fullnat", "backends": bes(BE_TCP, True)})
    if not (dns and web6):
        return
    want = {"fullnat4": sorted([E_WEB, E_DNS]), "fullnat6": [E_WEB6]}
    ok(wait_for(lambda: nft_table() == want and ipvs_dests(
        *[f"-a -u {VIP}:53 -r {BE[n][0]}:{BE_UDP} -m -w 1" for n in BE],
        *[f"-a -t [{VIP6}]:80 -r [{BE[n][1]}]:{BE_TCP} -m -w 1" for n in BE]), 5),
       "4. the table holds exactly the 3 fullnat services (udp and IPv6 added)",
       f"{nft_table()}\n" + "\n".join(ipvsadm_rules()))
    echo = talk(hold, "after-rewrite") if hold else "ERR none held"
    ok(echo.endswith(" after-rewrite"), "4. the held connection still works after the table "
       "was rewritten twice", echo)
    got = udp_many(VIP, 53, 10, UNROUTED)
    ok(all_from(got, DIRECTOR) and count(got, "be1") and count(got, "be2"),
       "4. fullnat UDP: 10 datagrams from the unrouted address answered by both backends, "
       "which see the director", "\n".join(got))
    got = tcp_many(VIP6, 80, 10, UNROUTED6)
    ok(all_from(got, DIRECTOR6) and count(got, "be1") and count(got, "be2"),
       "4. fullnat IPv6: 10 connections from an unrouted address work, both backends see "
       f"the director ({DIRECTOR6})", "\n".join(got))

    # 5. IPVS-only changes make no nft call
    mark = len(v.syncs())

    def toggle(lb, what):
        st, j = api("GET", f"/loadbalancer/{lb['uuid']}")
        b = j["backends"][0]["uuid"] if st == 200 else "?"
        return api("POST", f"/loadbalancer/{lb['uuid']}/backend/{b}/{what}")[0]
    sts = [toggle(web, "drain"), toggle(natweb, "drain")]
    wait_for(lambda: f"-a -t {VIP}:80 -r {BE['be1'][0]}:{BE_TCP} -m -w 0" in ipvsadm_rules(), 5)
    sts += [toggle(web, "undrain"), toggle(natweb, "undrain")]
    wait_for(lambda: f"-a -t {NAT_VIP}:80 -r {BE['be1'][0]}:{BE_TCP} -m -w 1" in
             ipvsadm_rules() and
             f"-a -t {VIP}:80 -r {BE['be1'][0]}:{BE_TCP} -m -w 1" in ipvsadm_rules(), 5)
    time.sleep(0.3)
    after = v.syncs()[mark:]
    ok(sts == [200] * 4 and sum(m for m, _ in after) >= 2 and
       sum(c for _, c in after) == 0,
       f"5. drain and undrain (fullnat and nat): {len(after)} syncs sending "
       f"{sum(m for m, _ in after)} IPVS messages and 0 nft calls", f"{sts} {after}")
    syncs = v.syncs()
    note(f"vipd a: {len(syncs)} syncs, {sum(c for _, c in syncs)} nft calls in all")

    # 6. delete the UDP load balancer
    st, _ = api("DELETE", f"/loadbalancer/{dns['uuid']}")
    want = {"fullnat4": [E_WEB], "fullnat6": [E_WEB6]}
    ok(st in (200, 204) and wait_for(lambda: nft_table() == want and
                                    ipvs_lacks(f"-u {VIP}:53"), 5),
       "6. deleting the UDP load balancer removes its IPVS service and its element",
       f"{st} {nft_table()}")
    echo = talk(hold, "after-delete") if hold else "ERR none held"
    got = tcp_many(VIP, 80, 4, UNROUTED)
    ok(echo.endswith(" after-delete") and all_from(got, DIRECTOR),
       "6. the held and new TCP connections carry on", f"{echo}\n" + "\n".join(got))
    if hold:
        hold.close()
    ok(foreign() == before, "8. foreign tables byte-identical while vipd works",
       f"{before}\n---\n{foreign()}")

    # 7. SIGTERM, --keep-on-exit, adoption
    rc = v.stop()
    ok(rc == 0 and nft_table() is None and ipvsadm_rules() == [],
       "7. SIGTERM: vipd exits 0, its IPVS services and the inet vipd table are gone",
       f"rc {rc}\n{nft_table()}\n" + "\n".join(ipvsadm_rules()) + "\n" + v.tail(8))
    ok('msg="fullnat SNAT table removed"' in v.text(), "7. the log says the table was removed",
       v.tail(8))
    ok(foreign() == before, "8. foreign tables byte-identical after the SIGTERM")

    v = Vipd("b", ["--keep-on-exit"])
    up = v.healthy() and wait_for(lambda: nft_table() == want, 5)
    ok(up, "7. vipd --keep-on-exit restores the table from its state", f"{nft_table()}\n"
       + v.tail())
    got = tcp_many(VIP, 80, 2, UNROUTED)
    ok(all_from(got, DIRECTOR), "7. fullnat works again", "\n".join(got))
    kept = ipvsadm_rules()
    rc = v.stop()
    ok(rc == 0 and nft_table() == want and ipvsadm_rules() == kept,
       "7. SIGTERM with --keep-on-exit keeps the IPVS services and the table",
       f"rc {rc}\n{nft_table()}\n{v.tail(8)}")
    ok("keeping vipd's fullnat SNAT table" in v.text(), "7. the log says it kept the table",
       v.tail(8))
    got = tcp_many(VIP, 80, 4, UNROUTED) + tcp_many(VIP6, 80, 2, UNROUTED6)
    ok(all_from(got[:4], DIRECTOR) and all_from(got[4:], DIRECTOR6),
       "7. with vipd gone the kept services still forward with SNAT (IPv4 and IPv6)",
       "\n".join(got))

    v = Vipd("c")
    up = v.healthy() and wait_for(v.syncs, 5)
    first = v.syncs()[:1]
    ok(up and first and first[0][0] == 0 and nft_table() == want,
       "7. the next vipd adopts them: first sync sends 0 IPVS messages, the table is as kept",
       f"{first}\n{nft_table()}\n{v.tail()}")
    sts = [api("DELETE", f"/loadbalancer/{lb['uuid']}")[0] for lb in (web, web6)]
    gone = wait_for(lambda: nft_table() is None and ipvs_lacks(f"-t {VIP}:80",
                                                               f"-t [{VIP6}]:80"), 5)
    ok(gone and ipvs_has(f"-t {NAT_VIP}:80"), "7. deleting the last fullnat load balancers "
       "deletes the table; the nat service stays", f"{sts} {nft_table()}\n" +
       "\n".join(ipvsadm_rules()))
    ok('msg="fullnat SNAT table removed"' in v.text(), "7. and the log says so", v.tail(8))
    got = tcp_many(NAT_VIP, 80, 2, ROUTED)
    ok(all_from(got, ROUTED), "7. nat still works, without SNAT", "\n".join(got))
    rc = v.stop()
    ok(rc == 0 and ipvsadm_rules() == [] and nft_table() is None,
       "7. SIGTERM leaves no IPVS service and no table", f"rc {rc}\n{v.tail(8)}")
    ok(foreign() == before, "8. foreign tables byte-identical at the end",
       f"{before}\n---\n{foreign()}")


def cleanup():
    run("nft", "-f", "-", stdin="table inet vipd {}\ndelete table inet vipd\n"
        "table inet other {}\ndelete table inet other\ntable ip vipd {}\ndelete table ip vipd\n")
    cleanup_topology()


if __name__ == "__main__":
    umltest.main(main, cleanup)
