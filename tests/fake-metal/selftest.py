#!/usr/bin/env python3
"""Self-test of fake-metal: every endpoint, auth, validation, faults, persistence. Prints TAP.

Talks only to 127.0.0.1; the fakes it starts are stopped by PID at exit, even on failure.
"""
import atexit
import ipaddress
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from vipdtest import done, ok, stop_process, tmpdir  # noqa: E402

FAKE = os.path.join(HERE, "fake_metal.py")
TOKEN = "selftest-token"
FORBIDDEN = "selftest-readonly"
PROJECT = "0b2c8a3e-1f4d-4a5b-9c6d-7e8f90a1b2c3"
DEVICE = "1c3d9b4f-2a5e-4b6c-8d7e-8f90a1b2c3d4"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# No proxies: traffic stays on loopback whatever the environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_procs = []
_tmp = tmpdir("fake-metal-selftest-")     # removed at exit, after the fakes stopped below


@atexit.register
def _cleanup():
    for p in _procs:
        stop_process(p, timeout=5)


class Fake:
    def __init__(self, *extra):
        args = [sys.executable, FAKE, "--listen", "127.0.0.1:0",
                "--metadata-listen", "127.0.0.1:0", "--token", TOKEN,
                "--forbidden-token", FORBIDDEN, "--project", PROJECT, "--device-id", DEVICE,
                "--hostname", "node-1", "--extra-device", "node-10",
                "--extra-device", "node-2", "--facility", "ny5", "--metro", "ny",
                "--pool", "198.51.100.0/28", "--md5", "s3cret", *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        _procs.append(self.proc)
        lines = queue.Queue()
        # A thread, not select(): the text wrapper buffers lines select() cannot see.
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout],
                         daemon=True).start()
        self.lines = []
        deadline = time.monotonic() + 10
        while len(self.lines) < 2 and time.monotonic() < deadline:
            try:
                self.lines.append(lines.get(timeout=0.2).rstrip("\n"))
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        m = re.match(r"^fake-metal listening on (http://127\.0\.0\.1:\d+)$",
                     self.lines[0] if self.lines else "")
        self.root = m.group(1) if m else None
        m = re.match(r"^fake-metal metadata listening on (http://127\.0\.0\.1:\d+)$",
                     self.lines[1] if len(self.lines) > 1 else "")
        self.meta_root = m.group(1) if m else None
        self.api = f"{self.root}/metal/v1"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


def call(method, url, body=None, token=TOKEN, raw=None, ctype=None, headers=None, timeout=10):
    """Returns (status, headers, body bytes); body is JSON-encoded unless raw is given."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if ctype is None and body is not None and raw is None:
        ctype = "application/json"
    if ctype is not None:
        req.add_header("Content-Type", ctype)
    if token is not None:
        req.add_header("X-Auth-Token", token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def js(b):
    try:
        return json.loads(b)
    except ValueError:
        return None


def is_error_list(b):
    d = js(b)
    return isinstance(d, dict) and isinstance(d.get("errors"), list) and d["errors"] \
        and all(isinstance(e, str) for e in d["errors"])


def ctl(fake, method, path, body=None):
    st, _, b = call(method, fake.root + path, body=body, token=None)
    return st, js(b)


RES_FIELDS = {"id": str, "address": str, "address_family": int, "cidr": int, "netmask": str,
              "network": str, "gateway": str, "public": bool, "management": bool,
              "type": str, "tags": list, "href": str, "created_at": str, "state": str,
              "project": dict, "metro": dict, "global_ip": bool, "manageable": bool,
              "enabled": bool, "customdata": dict, "assignments": list}


def shape_errors(res):
    errs = []
    for k, t in RES_FIELDS.items():
        if not isinstance(res.get(k), t) or (t is int and isinstance(res.get(k), bool)):
            errs.append(f"{k}: {res.get(k)!r} is not {t.__name__}")
    return errs


def main():
    fake = Fake()
    ok(fake.root is not None, "fake prints 'fake-metal listening on http://127.0.0.1:PORT'",
       fake.lines)
    ok(fake.meta_root is not None, "fake prints the metadata listener line", fake.lines)
    if not fake.root or not fake.meta_root:
        return
    api = fake.api
    ips = f"{api}/projects/{PROJECT}/ips"

    # ---- auth ----
    st, _, b = call("GET", ips, token=None)
    ok(st == 401 and js(b) == {"error": "Invalid authentication token"},
       "missing X-Auth-Token: 401 {\"error\": \"Invalid authentication token\"}", (st, b))
    st, _, b = call("GET", ips, token="wrong")
    ok(st == 401, "wrong X-Auth-Token: 401", (st, b))
    st, _, b = call("POST", ips, {"type": "public_ipv4", "quantity": 1, "metro": "ny"},
                    token=FORBIDDEN)
    ok(st == 403 and is_error_list(b), "token without access: 403 with errors list", (st, b))
    st, _, b = call("GET", f"{api}/projects/{'9' * 8}-0000-4000-8000-{'0' * 12}/ips")
    ok(st == 404 and js(b) == {"errors": ["Not found"]}, "unknown project: 404 Not found",
       (st, b))
    st, _, b = call("GET", f"{fake.root}/projects/{PROJECT}/ips")
    ok(st == 404, "paths outside /metal/v1 are 404", (st, b))
    ok(ctl(fake, "GET", "/_fake/state")[1]["reservations"] == [],
       "rejected requests reserved nothing")

    # ---- create ----
    body = {"type": "public_ipv4", "quantity": 1, "metro": "ny", "tags": ["vipd", "lb:web"],
            "details": "vipd web", "fail_on_approval_required": True}
    st, hdr, b = call("POST", ips, body)
    r1 = js(b) or {}
    ok(st == 201, "POST /projects/{id}/ips by metro: 201", (st, b))
    ok(not shape_errors(r1), "reservation has the IPReservation fields and types",
       shape_errors(r1))
    ok(UUID_RE.match(r1.get("id", "")) and r1.get("href") == f"/metal/v1/ips/{r1.get('id')}",
       "id is a UUID, href /metal/v1/ips/{id}", r1)
    ok(r1.get("cidr") == 32 and r1.get("netmask") == "255.255.255.255"
       and r1.get("address") == r1.get("network")
       and ipaddress.ip_address(r1["address"]) in ipaddress.ip_network("198.51.100.0/28"),
       "quantity 1: a /32 from --pool", r1)
    ok(r1.get("address_family") == 4 and r1.get("public") is True
       and r1.get("management") is False and r1.get("type") == "public_ipv4"
       and r1.get("state") == "created", "family 4, public, not management, state created", r1)
    ok(r1.get("tags") == ["vipd", "lb:web"] and r1.get("details") == "vipd web",
       "tags and details echoed", r1)
    ok(r1.get("project") == {"href": f"/metal/v1/projects/{PROJECT}"}
       and r1.get("metro", {}).get("code") == "ny" and r1.get("facility") is None,
       "project href; metro object; facility null when requested by metro", r1)
    ok(hdr.get("Content-Type", "").startswith("application/json"), "JSON content type")

    st, _, b = call("POST", ips, {"type": "public_ipv4", "quantity": 2, "facility": "NY5"})
    r2 = js(b) or {}
    ok(st == 201 and r2.get("cidr") == 31 and r2.get("facility", {}).get("code") == "ny5"
       and r2.get("facility", {}).get("metro", {}).get("code") == "ny"
       and r2.get("metro", {}).get("code") == "ny" and r2.get("details") is None
       and r2.get("tags") == [],
       "by facility (any case): facility object with its metro; quantity 2 gives a /31", (st, b))
    ok(int(ipaddress.ip_address(r2.get("network", "0.0.0.0"))) % 2 == 0
       and r2.get("network") != r1.get("network"), "blocks are aligned and do not overlap", r2)

    st, _, b = call("POST", ips, {"type": "global_ipv4", "quantity": 1})
    rg = js(b) or {}
    ok(st == 201 and rg.get("global_ip") is True and rg.get("metro") is None
       and ipaddress.ip_address(rg.get("address", "0.0.0.0"))
       in ipaddress.ip_network("203.0.113.0/24"), "global_ipv4 from --global-pool", (st, b))

    # ---- validation ----
    bad = [
        ({"quantity": 1, "metro": "ny"}, "missing type"),
        ({"type": "public_ipv9", "quantity": 1, "metro": "ny"}, "unknown type"),
        ({"type": "private_ipv4", "quantity": 1, "metro": "ny"}, "type that cannot be requested"),
        ({"type": "public_ipv4", "metro": "ny"}, "missing quantity"),
        ({"type": "public_ipv4", "quantity": 3, "metro": "ny"}, "quantity not a power of 2"),
        ({"type": "public_ipv4", "quantity": 0, "metro": "ny"}, "quantity 0"),
        ({"type": "public_ipv4", "quantity": 512, "metro": "ny"}, "quantity above 256"),
        ({"type": "public_ipv4", "quantity": "1", "metro": "ny"}, "quantity as a string"),
        ({"type": "public_ipv4", "quantity": True, "metro": "ny"}, "quantity as a boolean"),
        ({"type": "public_ipv4", "quantity": 1}, "neither facility nor metro"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "ny", "facility": "ny5"},
         "both facility and metro"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "sv"}, "unknown metro"),
        ({"type": "public_ipv4", "quantity": 1, "facility": "sv15"}, "unknown facility"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "ny", "tags": "vipd"}, "tags not a list"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "ny", "tags": [1]}, "tag not a string"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "ny", "detail": "x"}, "unknown key"),
        ({"type": "public_ipv4", "quantity": 1, "metro": "ny",
          "fail_on_approval_required": "yes"}, "fail_on_approval_required not a boolean"),
        ({"type": "global_ipv4", "quantity": 1, "metro": "ny"}, "global_ipv4 with a metro"),
        ([{"type": "public_ipv4"}], "body not an object"),
    ]
    for bd, what in bad:
        st, _, b = call("POST", ips, bd)
        ok(st == 422 and is_error_list(b), f"422 {{\"errors\": [...]}} for {what}", (st, b))
    st, _, b = call("POST", ips, raw=b'{"type": "public_ipv4",', ctype="application/json")
    ok(st == 400 and is_error_list(b), "unparseable JSON body: 400", (st, b))
    st, _, b = call("POST", ips, raw=json.dumps(body).encode(),
                    ctype="application/x-www-form-urlencoded")
    ok(st == 422 and is_error_list(b), "JSON sent as form-urlencoded: 422", (st, b))
    st, _, b = call("POST", ips, raw=b"", ctype="application/json")
    ok(st == 422 and is_error_list(b), "empty body: 422", (st, b))
    n = len(ctl(fake, "GET", "/_fake/state")[1]["reservations"])
    ok(n == 3, "invalid requests reserved nothing", n)

    # ---- list / get / delete ----
    st, _, b = call("GET", ips)
    d = js(b) or {}
    ok(st == 200 and [r["id"] for r in d.get("ip_addresses", [])] == [r1["id"], r2["id"],
                                                                       rg["id"]],
       "GET /projects/{id}/ips lists the reservations in creation order", (st, b))
    m = d.get("meta", {})
    ok(m.get("total") == 3 and m.get("current_page") == 1 and m.get("last_page") == 1
       and m.get("next") is None and m.get("previous") is None
       and isinstance(m.get("self"), dict) and isinstance(m.get("first"), dict),
       "meta: total, current_page, last_page, self/first hrefs, next/previous null", m)
    st, _, b = call("GET", ips + "?types=public_ipv4")
    ok(st == 200 and {r["type"] for r in js(b)["ip_addresses"]} == {"public_ipv4"}
       and js(b)["meta"]["total"] == 2, "?types=public_ipv4 filters", (st, b))
    st, _, b = call("GET", ips + "?types=public_ipv4&types=global_ipv4")
    ok(st == 200 and js(b)["meta"]["total"] == 3, "repeated ?types= is a union", (st, b))
    st, _, b = call("GET", ips + "?type=private_ipv4")
    ok(st == 200 and js(b)["ip_addresses"] == [], "?type=private_ipv4 filters to none", (st, b))
    st, _, b = call("GET", ips + "?types=bogus")
    ok(st == 422 and is_error_list(b), "?types=bogus: 422", (st, b))
    st, _, b = call("GET", ips + "?per_page=1&page=2")
    d = js(b) or {}
    m = d.get("meta", {})
    ok(st == 200 and [r["id"] for r in d.get("ip_addresses", [])] == [r2["id"]]
       and m.get("last_page") == 3 and "page=3" in (m.get("next") or {}).get("href", "")
       and "page=1" in (m.get("previous") or {}).get("href", ""),
       "per_page/page paginate with next/previous hrefs", (st, b))
    st, _, b = call("GET", ips + "?per_page=0")
    ok(st == 422, "per_page=0: 422", (st, b))
    st, _, b = call("GET", f"{api}/ips/{r1['id']}")
    ok(st == 200 and js(b) == r1, "GET /ips/{id} returns the reservation", (st, b))
    st, _, b = call("GET", f"{api}/ips/{'0' * 8}-0000-4000-8000-{'0' * 12}")
    ok(st == 404 and js(b) == {"errors": ["Not found"]}, "GET /ips/{unknown}: 404 Not found",
       (st, b))
    st, _, b = call("DELETE", f"{api}/ips/{rg['id']}")
    ok(st == 204 and b == b"", "DELETE /ips/{id}: 204, empty body", (st, b))
    st, _, b = call("GET", f"{api}/ips/{rg['id']}")
    ok(st == 404, "deleted reservation is gone", (st, b))
    st, _, b = call("DELETE", f"{api}/ips/{rg['id']}")
    ok(st == 404 and js(b) == {"errors": ["Not found"]}, "DELETE again: 404", (st, b))
    st, _, b = call("DELETE", f"{api}/ips/{r1['id']}", token="wrong")
    ok(st == 401 and call("GET", f"{api}/ips/{r1['id']}")[0] == 200,
       "DELETE with a wrong token: 401 and nothing deleted", (st, b))
    st, hdr, b = call("PUT", f"{api}/ips/{r1['id']}", {})
    ok(st == 405, "unsupported method on a known path: 405", (st, b))

    # ---- devices ----
    devs = f"{api}/projects/{PROJECT}/devices"
    st, _, b = call("GET", devs)
    d = js(b) or {}
    hosts = [x.get("hostname") for x in d.get("devices", [])]
    ok(st == 200 and hosts == ["node-1", "node-10", "node-2"] and d["meta"]["total"] == 3,
       "GET /projects/{id}/devices lists devices with meta", (st, b))
    dev = d["devices"][0] if d.get("devices") else {}
    ok(dev.get("id") == DEVICE and dev.get("href") == f"/metal/v1/devices/{DEVICE}"
       and dev.get("facility", {}).get("code") == "ny5" and dev.get("metro", {}).get("code") == "ny"
       and dev.get("state") == "active" and isinstance(dev.get("ip_addresses"), list),
       "device object: id, href, facility, metro, state, ip_addresses", dev)
    st, _, b = call("GET", devs + "?hostname=node-1")
    ok(st == 200 and [x["hostname"] for x in js(b)["devices"]] == ["node-1", "node-10"],
       "?hostname= is a partial match (node-1 also finds node-10)", (st, b))
    st, _, b = call("GET", devs + "?search=NODE-2")
    ok(st == 200 and [x["hostname"] for x in js(b)["devices"]] == ["node-2"],
       "?search= matches case-insensitively", (st, b))
    st, _, b = call("GET", devs + "?search=10.67.50.1")
    ok(st == 200 and [x["hostname"] for x in js(b)["devices"]] == ["node-1"],
       "?search= matches IP addresses", (st, b))
    st, _, b = call("GET", devs + "?per_page=2&page=2")
    ok(st == 200 and [x["hostname"] for x in js(b)["devices"]] == ["node-2"]
       and js(b)["meta"]["last_page"] == 2, "device list paginates", (st, b))
    st, _, b = call("GET", f"{api}/projects/{'1' * 8}-0000-4000-8000-{'0' * 12}/devices")
    ok(st == 404, "devices of an unknown project: 404", (st, b))
    st, _, b = call("GET", f"{api}/devices/{DEVICE}")
    ok(st == 200 and js(b).get("hostname") == "node-1", "GET /devices/{id}", (st, b))

    # ---- BGP neighbours ----
    st, _, b = call("GET", f"{api}/devices/{DEVICE}/bgp/neighbors")
    nb = (js(b) or {}).get("bgp_neighbors", [])
    ok(st == 200 and [x.get("address_family") for x in nb] == [4, 6],
       "GET /devices/{id}/bgp/neighbors: families 4 and 6", (st, b))
    n4 = nb[0] if nb else {}
    keys = {"address_family", "customer_as", "customer_ip", "md5_enabled", "md5_password",
            "multihop", "peer_as", "peer_ips", "routes_in", "routes_out"}
    ok(all(set(x) == keys for x in nb), "neighbour objects have exactly the BgpNeighborData keys",
       nb)
    ok(n4.get("customer_as") == 65000 and n4.get("peer_as") == 65530
       and n4.get("customer_ip") == "10.67.50.1" and n4.get("md5_enabled") is True
       and n4.get("md5_password") == "s3cret" and n4.get("multihop") is True
       and n4.get("peer_ips") == ["169.254.255.1", "169.254.255.2"],
       "IPv4 neighbour: ASNs, customer_ip, md5, multihop, peer_ips", n4)
    ok({"route": f"{r1['network']}/32", "exact": True} in n4.get("routes_in", [])
       and n4.get("routes_out") == [], "routes_in lists the project's reservations", n4)
    ok(ipaddress.ip_address(nb[1]["peer_ips"][0]) == ipaddress.ip_address("fc00::e")
       if len(nb) > 1 else False, "IPv6 neighbour peers fc00::e (written out in full)", nb)
    st, _, b = call("GET", f"{api}/devices/{'2' * 8}-0000-4000-8000-{'0' * 12}/bgp/neighbors")
    ok(st == 404 and js(b) == {"errors": ["Not found"]}, "neighbours of an unknown device: 404",
       (st, b))

    # ---- metadata ----
    st, _, b = call("GET", fake.meta_root + "/metadata", token=None)
    md = js(b) or {}
    ok(st == 200 and md.get("id") == DEVICE and md.get("hostname") == "node-1"
       and md.get("facility") == "ny5" and md.get("metro") == "ny",
       "GET /metadata without a token: id, hostname, facility, metro", (st, b))
    ok([x.get("address_family") for x in md.get("bgp_neighbors", [])] == [4, 6]
       and md["bgp_neighbors"][0] == n4, "metadata bgp_neighbors match the API's", md)
    ok(isinstance(md.get("network", {}).get("addresses"), list), "metadata network.addresses")
    st, _, b = call("GET", fake.meta_root + "/metal/v1/projects/x/ips")
    ok(st == 404, "the metadata listener serves no API", (st, b))

    # ---- neighbours changed at runtime ----
    nb_url = f"{api}/devices/{DEVICE}/bgp/neighbors"
    st, d = ctl(fake, "GET", "/_fake/neighbors")
    ok(st == 200 and d.get("device") == DEVICE and d.get("bgp_neighbors") == nb,
       "GET /_fake/neighbors shows what the metadata's device is served", (st, d))
    changed = json.loads(json.dumps(nb))
    changed[0]["peer_ips"].append("169.254.255.3")
    changed[0]["md5_password"] = "n3w"
    st, d = ctl(fake, "POST", "/_fake/neighbors", {"bgp_neighbors": changed})
    ok(st == 200 and d.get("bgp_neighbors") == changed,
       "POST /_fake/neighbors replaces the device's neighbours", (st, d))
    st, _, b = call("GET", nb_url)
    ok(st == 200 and js(b) == {"bgp_neighbors": changed},
       "the API serves the new neighbours as given", (st, b))
    md = js(call("GET", fake.meta_root + "/metadata", token=None)[2]) or {}
    ok(md.get("bgp_neighbors") == changed, "and so does the metadata document",
       md.get("bgp_neighbors"))
    other = ctl(fake, "GET", "/_fake/state")[1]["devices"][2]
    st, d = ctl(fake, "POST", "/_fake/neighbors", {"device": other["id"], "bgp_neighbors": []})
    st2, _, b = call("GET", f"{api}/devices/{other['id']}/bgp/neighbors")
    ok(st == 200 and js(b) == {"bgp_neighbors": []} and
       js(call("GET", nb_url)[2]) == {"bgp_neighbors": changed},
       "\"device\" picks another device (BGP off for it); the first keeps its own", (st, d, b))
    bad = [({"bgp_neighbors": "x"}, "bgp_neighbors not an array"),
           ({"bgp_neighbors": [1]}, "an entry not an object"),
           ({"device": "nope", "bgp_neighbors": []}, "an unknown device"),
           ({"neighbours": []}, "an unknown key")]
    for spec, what in bad:
        st, d = ctl(fake, "POST", "/_fake/neighbors", spec)
        ok(st == 400 and "error" in d, f"POST /_fake/neighbors with {what}: 400", (st, d))
    ok(js(call("GET", nb_url)[2]) == {"bgp_neighbors": changed},
       "refused changes change nothing")
    st, d = ctl(fake, "POST", "/_fake/neighbors", {"bgp_neighbors": None})
    ok(st == 200 and d.get("bgp_neighbors") == nb and
       js(call("GET", nb_url)[2]) == {"bgp_neighbors": nb},
       "bgp_neighbors null: back to the neighbours the options make", (st, d))

    # ---- faults ----
    st, d = ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips$", "method": "GET",
                                              "status": 429, "retry_after": 7})
    ok(st == 200 and len(d["faults"]) == 1, "POST /_fake/fail queues a fault", (st, d))
    st, hdr, b = call("GET", ips)
    ok(st == 429 and hdr.get("Retry-After") == "7" and is_error_list(b)
       and hdr.get("X-RateLimit-Remaining") == "0",
       "429 fault with Retry-After: 7 and X-RateLimit headers", (st, dict(hdr), b))
    ok(call("GET", ips)[0] == 200 and ctl(fake, "GET", "/_fake/faults")[1]["faults"] == [],
       "count 1: the next request succeeds and the queue is empty")
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips$", "status": 500, "count": 2})
    sts = [call("GET", ips)[0] for _ in range(3)]
    ok(sts == [500, 500, 200], "500 fault with count 2 fires twice", sts)
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/bgp/neighbors$", "status": 503,
                                      "body": "<html>upstream down</html>",
                                      "content_type": "text/html"})
    st, hdr, b = call("GET", f"{api}/devices/{DEVICE}/bgp/neighbors")
    ok(st == 503 and b == b"<html>upstream down</html>"
       and hdr.get("Content-Type") == "text/html", "custom non-JSON fault body", (st, b))
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips/", "delay_ms": 600})
    t0 = time.monotonic()
    st, _, b = call("GET", f"{api}/ips/{r1['id']}")
    dt = time.monotonic() - t0
    ok(st == 200 and dt >= 0.6, f"delay_ms 600 delays the answer ({dt:.2f} s)", (st, dt))
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips/", "delay_ms": 3000})
    try:
        call("GET", f"{api}/ips/{r1['id']}", timeout=0.5)
        timed_out = False
    except (TimeoutError, OSError):
        timed_out = True
    ok(timed_out, "a delay longer than the client's timeout times the client out")
    before = len(ctl(fake, "GET", "/_fake/state")[1]["reservations"])
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips$", "method": "POST",
                                      "malformed": True})
    st, _, b = call("POST", ips, {"type": "public_ipv4", "quantity": 1, "metro": "ny"})
    after = len(ctl(fake, "GET", "/_fake/state")[1]["reservations"])
    ok(st == 201 and js(b) is None and after == before + 1,
       "malformed: 201 with a truncated JSON body, reservation made", (st, b, before, after))
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips$", "method": "POST",
                                      "status": 500, "after": True})
    st, _, b = call("POST", ips, {"type": "public_ipv4", "quantity": 1, "metro": "ny"})
    after2 = len(ctl(fake, "GET", "/_fake/state")[1]["reservations"])
    ok(st == 500 and after2 == after + 1, "status with after: 500 but reservation made",
       (st, after, after2))
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/ips$", "method": "POST", "drop": True})
    try:
        st = call("POST", ips, {"type": "public_ipv4", "quantity": 1, "metro": "ny"})[0]
    except (ConnectionError, urllib.error.URLError, OSError) as e:
        st = type(e).__name__
    after3 = len(ctl(fake, "GET", "/_fake/state")[1]["reservations"])
    ok(isinstance(st, str) and after3 == after2,
       "drop: connection closed without an answer, nothing reserved", (st, after3))
    ctl(fake, "POST", "/_fake/fail", {"path_regex": "/metadata", "listener": "metadata",
                                      "status": 500})
    ok(call("GET", fake.meta_root + "/metadata", token=None)[0] == 500
       and call("GET", fake.meta_root + "/metadata", token=None)[0] == 200,
       "faults reach the metadata listener")
    st, d = ctl(fake, "POST", "/_fake/fail", {"status": 500, "bogus": 1})
    ok(st == 400, "bad fault spec: 400", (st, d))

    # ---- request log ----
    st, d = ctl(fake, "GET", "/_fake/requests")
    reqs = d["requests"] if st == 200 else []
    text = json.dumps(d)
    posts = [r for r in reqs if r["method"] == "POST" and r["path"].endswith("/ips")]
    ok(posts and posts[0]["body"] == {"type": "public_ipv4", "quantity": 1, "metro": "ny"}
       and posts[0]["token"] == "forbidden" and posts[0]["status"] == 403,
       "/_fake/requests records method, path, body, token verdict, status", posts[:1])
    ok(TOKEN not in text and FORBIDDEN not in text
       and not any("X-Auth-Token" in r["headers"] for r in reqs),
       "the request log never shows a token value")
    ok({"missing", "mismatch", "match"} <= {r["token"] for r in reqs},
       "token verdicts missing/mismatch/match are recorded")
    ok(any(r["status"] == "dropped" for r in reqs) and any(r["fault"] for r in reqs),
       "faulted requests are marked")
    last = reqs[-1]["seq"] if reqs else 0
    call("GET", ips)
    st, d = ctl(fake, "GET", f"/_fake/requests?since={last}")
    ok(st == 200 and len(d["requests"]) == 1, "?since= returns only newer requests", d)

    # ---- persistence ----
    state_file = os.path.join(_tmp, "state.json")
    fake.stop()
    p1 = Fake("--state", state_file)
    st, _, b = call("POST", p1.api + f"/projects/{PROJECT}/ips",
                    {"type": "public_ipv4", "quantity": 4, "metro": "ny", "tags": ["keep"]})
    kept = js(b) or {}
    ok(st == 201 and kept.get("cidr") == 30 and os.path.exists(state_file),
       "with --state a reservation is written to the file", (st, b))
    p1.proc.kill()     # no chance to flush anything: the write must already be on disk
    p1.proc.wait(5)
    p2 = Fake("--state", state_file)
    st, _, b = call("GET", p2.api + f"/projects/{PROJECT}/ips")
    ok(st == 200 and js(b)["ip_addresses"] == [kept],
       "after a SIGKILL and restart the reservation is still there, unchanged", (st, b))
    st, _, b = call("POST", p2.api + f"/projects/{PROJECT}/ips",
                    {"type": "public_ipv4", "quantity": 4, "metro": "ny"})
    new = js(b) or {}
    ok(st == 201 and new.get("network") != kept.get("network"),
       "a restarted fake does not hand out a reserved block again", (kept, new))
    st, _, b = call("POST", p2.api + f"/projects/{PROJECT}/ips",
                    {"type": "public_ipv4", "quantity": 16, "metro": "ny",
                     "fail_on_approval_required": True})
    ok(st == 422 and is_error_list(b), "pool exhausted + fail_on_approval_required: 422",
       (st, b))
    st, _, b = call("POST", p2.api + f"/projects/{PROJECT}/ips",
                    {"type": "public_ipv4", "quantity": 16, "metro": "ny"})
    pend = js(b) or {}
    ok(st == 201 and pend.get("state") == "pending" and pend.get("address") is None,
       "pool exhausted without it: 201 state pending, no address", (st, b))
    st, d = ctl(p2, "POST", "/_fake/reset")
    ok(st == 200 and ctl(p2, "GET", "/_fake/state")[1]["reservations"] == []
       and json.load(open(state_file))["reservations"] == [],
       "POST /_fake/reset empties the state and the state file", d)
    p2.stop()
    bad_state = os.path.join(_tmp, "bad.json")
    with open(bad_state, "w") as f:
        f.write("{not json")
    r = subprocess.run([sys.executable, FAKE, "--state", bad_state], capture_output=True,
                       text=True, timeout=10)
    ok(r.returncode != 0 and "bad.json" in r.stderr, "a corrupt state file stops the fake",
       r.stderr)

    # ---- options ----
    p3 = Fake("--families", "4", "--no-multihop", "--default-route", "--peer-as", "65001",
              "--customer-as", "65100")
    st, _, b = call("GET", p3.api + f"/devices/{DEVICE}/bgp/neighbors")
    nb = (js(b) or {}).get("bgp_neighbors", [])
    ok(st == 200 and len(nb) == 1 and nb[0]["multihop"] is False
       and nb[0]["peer_as"] == 65001 and nb[0]["customer_as"] == 65100
       and nb[0]["routes_out"] == [{"route": "0.0.0.0/0", "exact": True}],
       "--families 4 --no-multihop --default-route --peer-as --customer-as", (st, b))
    p3.stop()
    p4 = Fake("--families", "none")
    st, _, b = call("GET", p4.api + f"/devices/{DEVICE}/bgp/neighbors")
    ok(st == 200 and js(b) == {"bgp_neighbors": []}, "--families none: no neighbours", (st, b))
    p4.stop()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash is a failed test, not a silent short plan
        ok(False, f"selftest crashed: {type(e).__name__}: {e}")
    done()
