"""fullnat's SNAT table ("inet vipd") on this host's nftables, through the real module
(tests/unit/fullnat_driver, one command a line) in a network namespace of the test's own.
This kernel has no IPVS: traffic through the table is checked inside user-mode-linux
(tests/uml/vipd_fullnat.sh); here the table's content and lifetime are:

  - a sync writes exactly the model's active fullnat services (IPv4 and IPv6 sets, address .
    protocol . port) and a postrouting nat chain masquerading by original destination;
  - a sync with no change makes no libnftables call, whatever the model's order;
  - a removed service loses its element; no fullnat service left: the table is deleted;
  - a leftover table of an earlier run is replaced or removed by the first sync;
  - 4,000 services go in one call;
  - a failure (no privilege) is logged once and retried on the next sync;
  - foreign tables (another inet table, and an ip table named vipd) stay byte-identical.
"""
import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import SRCDIR, done, ok, tmpdir  # noqa: E402

BUILDDIR = os.environ.get("BUILDDIR", os.path.join(SRCDIR, "build", "plain"))
DRIVER = os.path.join(BUILDDIR, "tests", "unit", "fullnat_driver")
NS = f"fn-host-{os.getpid()}"
T = tmpdir("vipd-fullnat-")

FOREIGN = """table inet other {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.1, 192.0.2.7 }
	}
	chain input {
		type filter hook input priority filter; policy accept;
		ip saddr @blocked drop
		tcp dport 22 accept
	}
}
table ip vipd {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "lo" masquerade
	}
}
"""


def sh(*argv, stdin=None):
    """(rc, stdout, stderr) of a command inside the namespace."""
    r = subprocess.run(["ip", "netns", "exec", NS, *argv], input=stdin, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout, r.stderr


def foreign():
    """The foreign tables as nft prints them, handles included."""
    out = []
    for t in (("inet", "other"), ("ip", "vipd")):
        rc, o, e = sh("nft", "-a", "list", "table", *t)
        out.append(o if rc == 0 else f"ERR {e}")
    return "".join(out)


def table():
    """(elements by set, chain, rules) of inet vipd from nft -j, or None when absent."""
    rc, out, _ = sh("nft", "-j", "list", "table", "inet", "vipd")
    if rc != 0:
        return None
    sets, chains, rules = {}, [], []
    for o in json.loads(out)["nftables"]:
        if "set" in o:
            s = o["set"]
            sets[s["name"]] = (tuple(s["type"]), sorted(tuple(e["concat"]) for e in
                                                        s.get("elem", [])))
        elif "chain" in o:
            chains.append({k: o["chain"].get(k) for k in ("name", "type", "hook", "prio",
                                                            "policy")})
        elif "rule" in o:
            rules.append(o["rule"]["expr"])
    return sets, chains, rules


def elements(t):
    return {name: elems for name, (_, elems) in t[0].items()} if t else None


def rule_shape(expr):
    """A rule as (protocol, family key, set, verdict)."""
    proto = key = setname = None
    verdict = [k for e in expr for k in e if k != "match"]
    for e in expr:
        m = e.get("match", {})
        if m.get("left") == {"meta": {"key": "l4proto"}}:
            proto = m["right"]
        elif "concat" in m.get("left", {}):
            parts = m["left"]["concat"]
            key = tuple(p.get("ct", p.get("meta")).get("key") for p in parts)
            key += tuple(p["ct"]["dir"] for p in parts if "ct" in p)
            setname = m["right"]
    return proto, key, setname, tuple(verdict)


WANT_RULES = sorted(
    (p, (f"{fam} daddr", "l4proto", "proto-dst", "original", "original"), f"@fullnat{n}",
     ("masquerade",))
    for fam, n in (("ip", "4"), ("ip6", "6")) for p in ("tcp", "udp"))
WANT_CHAIN = [{"name": "postrouting", "type": "nat", "hook": "postrouting", "prio": 100,
               "policy": "accept"}]


class Driver:
    """fullnat_driver in the namespace, one command a line."""

    def __init__(self, tag, wrap=()):
        self.log_path = os.path.join(T, f"driver-{tag}.log")
        self.log = open(self.log_path, "w")
        self.p = subprocess.Popen(["ip", "netns", "exec", NS, *wrap, DRIVER, "--debug"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log, text=True, bufsize=1)

    def cmd(self, line, timeout=30):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        r, _, _ = select.select([self.p.stdout], [], [], timeout)
        return self.p.stdout.readline().strip() if r else "TIMEOUT"

    def sync(self):
        """{rc, calls, services, ms} of one sync."""
        line = self.cmd("sync")
        try:
            return {k: float(v) if k == "ms" else int(v)
                    for k, v in (w.split("=") for w in line.split()[1:])}
        except ValueError:
            return {"line": line}

    def text(self):
        with open(self.log_path) as f:
            return f.read()

    def quit(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.write("quit\n")
                self.p.stdin.flush()
                self.p.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()
        self.log.close()
        return self.p.returncode


def config(name, lbs):
    path = os.path.join(T, name)
    with open(path, "w") as f:
        json.dump({"loadbalancers": lbs}, f)
    return path


def lb(name, vip, port, proto="tcp", fwd="fullnat"):
    d = {"name": name, "port": port, "protocol": proto, "forwarding": fwd,
         "backends": [{"ip": "10.1.0.1" if ":" not in (vip or "") else "fd00:1::1",
                       "port": 8080}]}
    if vip:
        d["vip"] = vip
    return d


def main():
    ok(os.access(DRIVER, os.X_OK), f"fullnat_driver is built ({DRIVER})")
    rc, _, e = sh("nft", "-f", "-", stdin=FOREIGN)
    ok(rc == 0, "foreign tables loaded: inet other (a set, a filter chain) and ip vipd "
       "(a nat chain)", e)
    before = foreign()

    web = lb("web", "10.0.0.10", 80)
    dns = lb("dns", "10.0.0.10", 53, "udp")
    web6 = lb("web6", "2001:db8::10", 443)
    nat = lb("nat", "10.0.0.20", 80, fwd="nat")
    dsr = lb("dsr", "10.0.0.21", 80, fwd="dsr")
    pend = lb("pending", None, 8080)
    one = config("one.json", [web, dns, web6, nat, dsr, pend])
    one_shuffled = config("one-shuffled.json", [dsr, web6, nat, pend, dns, web])
    two = config("two.json", [web, web6, dict(nat, forwarding="fullnat"), dsr])
    none = config("none.json", [nat, dsr, pend])
    want_one = {"fullnat4": [("10.0.0.10", "tcp", 80), ("10.0.0.10", "udp", 53)],
                "fullnat6": [("2001:db8::10", "tcp", 443)]}
    want_two = {"fullnat4": [("10.0.0.10", "tcp", 80), ("10.0.0.20", "tcp", 80)],
                "fullnat6": [("2001:db8::10", "tcp", 443)]}

    d = Driver("a")
    try:
        ok(d.cmd(f"load {one}") == "load rc=0 lbs=6", "the driver loads 6 load balancers "
           "(3 fullnat, nat, dsr, a fullnat one pending without a VIP)")
        s = d.sync()
        t = table()
        ok(s.get("rc") == 0 and s.get("calls") == 1 and s.get("services") == 3,
           "1st sync: rc 0, one libnftables call, 3 services", s)
        ok(elements(t) == want_one, "nft -j list table inet vipd: exactly the 3 fullnat "
           "services (tcp and udp of 10.0.0.10, tcp of 2001:db8::10), not nat, dsr, pending",
           elements(t))
        ok(t and t[0]["fullnat4"][0] == ("ipv4_addr", "inet_proto", "inet_service") and
           t[0]["fullnat6"][0] == ("ipv6_addr", "inet_proto", "inet_service"),
           "sets typed address . inet_proto . inet_service per family", t and t[0])
        ok(t and t[1] == WANT_CHAIN and sorted(rule_shape(r) for r in t[2]) == WANT_RULES,
           "one chain: nat hook postrouting priority srcnat (100); 4 rules: meta l4proto "
           "tcp|udp, ct original ip|ip6 daddr . meta l4proto . ct original proto-dst in the "
           "family's set: masquerade", json.dumps(t and [t[1], [rule_shape(r) for r in t[2]]]))
        rc, out, _ = sh("nft", "list", "table", "inet", "vipd")
        ok("mark" not in out, "no packet or connection mark in the table", out)
        ok(d.text().count('msg="fullnat SNAT table created"') == 1,
           "the log says created, once", d.text())
        ok(foreign() == before, "foreign tables byte-identical after the create")

        s = d.sync()
        ok(s.get("rc") == 0 and s.get("calls") == 0, "2nd sync, no change: no libnftables "
           "call", s)
        ok(d.cmd(f"load {one_shuffled}") == "load rc=0 lbs=6" and d.sync().get("calls") == 0,
           "the same load balancers in another order: no call")

        d.cmd(f"load {two}")
        s = d.sync()
        t = table()
        ok(s.get("rc") == 0 and s.get("calls") == 1 and elements(t) == want_two,
           "udp service removed, nat one turned fullnat: one call, elements follow exactly",
           f"{s}\n{elements(t)}")
        ok(t and t[1] == WANT_CHAIN and len(t[2]) == 4, "the chain and its 4 rules are "
           "unchanged", json.dumps(t and t[1:]))
        ok(d.text().count("created") == 1 and "fullnat SNAT table updated" in d.text(),
           "the change is logged at debug as updated, not created again", d.text())
        ok(foreign() == before, "foreign tables byte-identical after the change")

        d.cmd(f"load {none}")
        s = d.sync()
        ok(s.get("rc") == 0 and s.get("calls") == 1 and table() is None,
           "no fullnat service left: one call, the table is deleted (not left empty)",
           f"{s}\n{sh('nft', 'list', 'ruleset')[1]}")
        ok(d.text().count('msg="fullnat SNAT table removed"') == 1,
           "the log says removed, once", d.text())
        s = d.sync()
        ok(s.get("rc") == 0 and s.get("calls") == 0, "another sync without fullnat: no call",
           s)
        ok(foreign() == before, "foreign tables byte-identical after the delete")

        d.cmd(f"load {one}")
        d.sync()
        ok(elements(table()) == want_one, "fullnat services again: the table is back")
        ok(d.quit() == 0, "the driver exits 0 and leaves the table (freeing is not removing)")
        ok(elements(table()) == want_one, "the table outlives the driver")

        # A new process does not know the table: its first sync replaces or removes it.
        d = Driver("b")
        d.cmd(f"load {two}")
        s = d.sync()
        ok(s.get("calls") == 1 and elements(table()) == want_two,
           "a new driver's first sync replaces the leftover table with exactly its services",
           f"{s}\n{elements(table())}")
        d.quit()
        d = Driver("c")
        d.cmd(f"load {none}")
        s = d.sync()
        ok(s.get("rc") == 0 and s.get("calls") == 1 and table() is None and
           'msg="fullnat SNAT table removed"' in d.text(),
           "a new driver without fullnat services removes the leftover table on its first "
           "sync, and says so", f"{s}\n{d.text()}")
        d.quit()
        d = Driver("d")
        d.cmd(f"load {none}")
        s = d.sync()
        ok(s.get("rc") == 0 and s.get("calls") == 1 and "removed" not in d.text(),
           "with no table to remove, the first sync's delete is quiet (no error, no "
           "'removed')", f"{s}\n{d.text()}")
        ok(d.sync().get("calls") == 0, "and the next sync makes no call")

        # Scale: one call for thousands of elements.
        ok(d.cmd("gen 2000 2000") == "gen lbs=4000", "4,000 fullnat services generated")
        s = d.sync()
        t = table()
        n = sum(len(e) for e in elements(t).values()) if t else 0
        print(f"# 4,000 services (2,000 IPv4, 2,000 IPv6) written in {s.get('ms')} ms, "
              f"one call", flush=True)
        ok(s.get("rc") == 0 and s.get("calls") == 1 and n == 4000 and
           len(elements(t)["fullnat6"]) == 2000, "4,000 services in one call, all in the "
           "table (2,000 in fullnat6)", f"{s} elements {n}")
        d.cmd(f"load {none}")
        s = d.sync()
        ok(s.get("calls") == 1 and table() is None, "and all gone in one call", s)
        d.quit()
        ok(foreign() == before, "foreign tables byte-identical at the end")

        # Errors: without privilege (a user namespace of no mapping) the write is refused.
        d = Driver("e", ["unshare", "--user", "--"])
        d.cmd(f"load {one}")
        s1, s2 = d.sync(), d.sync()
        log = d.text()
        ok(s1.get("rc") == -1 and s1.get("calls") == 1 and s2.get("rc") == -1 and
           s2.get("calls") == 1, "without privilege: rc -EPERM, and the next sync tries "
           "again (the table is unknown)", f"{s1} {s2}")
        ok(log.count("cannot write the fullnat SNAT table") == 1 and
           "Operation not permitted" in log,
           "libnftables' error is logged once, with its text", log)
        d.quit()
        ok(table() is None and foreign() == before, "nothing changed by the refused writes")
    finally:
        d.quit()


def cleanup():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30)


if __name__ == "__main__":
    if subprocess.run(["ip", "netns", "add", NS], capture_output=True).returncode:
        ok(False, f"network namespace {NS} created")
        done()
    try:
        sh("ip", "link", "set", "lo", "up")
        main()
    except Exception as e:  # a crash is a failure with its reason, and still cleans up
        import traceback
        ok(False, f"test ran to the end ({type(e).__name__}: {e})", traceback.format_exc())
    finally:
        cleanup()
    done()
