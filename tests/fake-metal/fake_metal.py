#!/usr/bin/env python3
"""fake-metal: a local stand-in for the Equinix Metal API v1 and its metadata service.

Equinix Metal has been retired, so vipd's elastic-IP provider is tested against this
server. It implements only the endpoints vipd uses, with the request and response
shapes of the Metal OpenAPI spec (see README.md for every source):

  API (base path /metal/v1, header X-Auth-Token):
    POST   /projects/{id}/ips            requestIPReservation
    GET    /projects/{id}/ips            findIPReservations (?types=, ?type=, per_page, page)
    GET    /ips/{id}                     findIPAddressById
    DELETE /ips/{id}                     deleteIPAddress
    GET    /projects/{id}/devices        findProjectDevices (?hostname=, ?search=, ...)
    GET    /devices/{id}                 findDeviceById
    GET    /devices/{id}/bgp/neighbors   getBgpNeighborData
  metadata listener (no auth): GET /metadata
  control (no auth, never under /metal/v1): /_fake/fail, /_fake/faults,
    /_fake/requests, /_fake/state, /_fake/reset, /_fake/neighbors

/_fake/neighbors replaces a device's BGP neighbours while the fake runs (BGP enabled after
the device started, a password or a peer Equinix changed):
  POST {"device": ID, "bgp_neighbors": [BgpNeighborData...] | null}
"device" defaults to the metadata's device; the list is served as given (routes_in too) by
GET /devices/{id}/bgp/neighbors and, for that device, the metadata's bgp_neighbors; null goes
back to the list the options make. GET /_fake/neighbors[?device=ID] shows what is served.

Shapes come from the Metal OpenAPI spec in equinix-labs/metal-go spec/oas3.fetched (v0.30.0)
and equinix/equinix-sdk-go spec/services/metalv1, packngo (ip.go, packngo.go, bgp_sessions.go,
metadata/), a captured metadata document in siderolabs/talos, libcloud's Metal fixtures and
error bodies quoted in public issues; README.md names each file.

Standard library only. Every listener prints one line on stdout at start:
  fake-metal listening on http://HOST:PORT
  fake-metal metadata listening on http://HOST:PORT
"""
import argparse
import copy
import datetime
import ipaddress
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = "/metal/v1"
MAX_BODY = 1 << 20
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# The reservation types of IPReservation.yaml / findIPReservations' `types` enum.
KNOWN_TYPES = ("global_ipv4", "private_ipv4", "public_ipv4", "public_ipv6", "vrf")
# Only these can be requested; private_ipv4 and public_ipv6 blocks are made by Metal
# itself when the first device lands in a metro (Terraform/Pulumi reserved_ip_block docs).
CREATABLE_TYPES = ("public_ipv4", "global_ipv4")
# IPReservationRequestInput.yaml properties.
REQUEST_KEYS = {"type", "quantity", "facility", "metro", "tags", "details", "customdata",
                "comments", "fail_on_approval_required"}

# Messages seen from the real API (README.md names where).
MSG_UNAUTHORIZED = "Invalid authentication token"
MSG_FORBIDDEN = "Access denied for the current authentication token"
MSG_NOT_FOUND = "Not found"

NS = uuid.UUID("6f2a4c1e-3b7d-4e59-9a0c-1d2e3f405162")


def fake_uuid(kind, name):
    return str(uuid.uuid5(NS, f"{kind}/{name}"))


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hostport(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def url_host(host):
    return f"[{host}]" if ":" in host else host


class Fault:
    """One queued misbehaviour; see README.md "Faults" for the fields."""

    FIELDS = {"path_regex", "method", "listener", "status", "count", "retry_after", "delay_ms",
              "malformed", "drop", "after", "body", "content_type"}

    def __init__(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("fault must be a JSON object")
        unknown = set(spec) - self.FIELDS
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        self.path_regex = spec.get("path_regex", ".*")
        self.path_re = re.compile(self.path_regex)
        self.method = spec.get("method")
        if self.method is not None:
            self.method = str(self.method).upper()
        self.listener = spec.get("listener")
        if self.listener not in (None, "api", "metadata"):
            raise ValueError("listener must be \"api\" or \"metadata\"")
        self.status = spec.get("status")
        if self.status is not None and (not isinstance(self.status, int)
                                        or isinstance(self.status, bool)
                                        or not 100 <= self.status <= 599):
            raise ValueError("status must be an HTTP status code")
        self.count = spec.get("count", 1)
        if not isinstance(self.count, int) or isinstance(self.count, bool) or self.count == 0 \
                or self.count < -1:
            raise ValueError("count must be a positive integer, or -1 for unlimited")
        self.retry_after = spec.get("retry_after")
        if self.retry_after is None and self.status == 429:
            self.retry_after = 1
        if self.retry_after is not None and (not isinstance(self.retry_after, int)
                                             or self.retry_after < 0):
            raise ValueError("retry_after must be a non-negative integer (seconds)")
        self.delay_ms = spec.get("delay_ms", 0)
        if not isinstance(self.delay_ms, int) or not 0 <= self.delay_ms <= 120000:
            raise ValueError("delay_ms must be 0..120000")
        self.malformed = bool(spec.get("malformed", False))
        self.drop = bool(spec.get("drop", False))
        self.after = bool(spec.get("after", False))
        self.body = spec.get("body")
        self.content_type = spec.get("content_type", "application/json; charset=utf-8")
        if self.status is None and not (self.malformed or self.drop or self.delay_ms):
            raise ValueError("fault needs at least one of status, malformed, drop, delay_ms")
        self.spec = dict(spec)
        self.fired = 0

    def matches(self, listener, method, path):
        if self.listener and self.listener != listener:
            return False
        if self.method and self.method != method:
            return False
        return self.path_re.search(path) is not None

    def describe(self):
        d = dict(self.spec)
        d["fired"] = self.fired
        d["remaining"] = -1 if self.count == -1 else self.count - self.fired
        return d


class World:
    """Everything the fake knows; one lock guards it all."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.reservations = {}      # id -> IPReservation object, in creation order
        self.neighbor_lists = {}    # device id -> bgp_neighbors set through /_fake/neighbors
        self.faults = []
        self.requests = []
        self.seq = 0
        self.metro_code = args.metro.lower()
        self.facility_code = args.facility.lower()
        self.pool = args.pool
        self.global_pool = args.global_pool
        self.devices = self._make_devices()
        if args.state:
            self._load()

    # ---- locations and devices -------------------------------------------------
    def metro_obj(self):
        return {"id": fake_uuid("metro", self.metro_code), "code": self.metro_code,
                "name": self.metro_code.upper(), "country": "US"}

    def facility_obj(self):
        return {"id": fake_uuid("facility", self.facility_code), "code": self.facility_code,
                "name": self.facility_code.upper(),
                "features": ["baremetal", "backend_transfer", "global_ipv4"],
                "ip_ranges": [str(self.pool)], "metro": self.metro_obj()}

    def _make_devices(self):
        a = self.args
        names = [(a.device_id, a.hostname)]
        names += [(fake_uuid("device", h), h) for h in a.extra_device]
        devices = []
        for i, (did, host) in enumerate(names):
            priv = ipaddress.ip_address(a.customer_ip) + 2 * i
            pub4 = ipaddress.ip_address("192.0.2.11") + 2 * i
            pub6 = ipaddress.ip_address(a.customer_ip6) + 2 * i
            devices.append({"id": did, "hostname": host, "private_ip": str(priv),
                            "public_ip": str(pub4), "public_ip6": str(pub6)})
        return devices

    def device(self, device_id):
        for d in self.devices:
            if d["id"] == device_id:
                return d
        return None

    def _addr(self, project_href, addr, cidr, public, family):
        iface = ipaddress.ip_interface(f"{addr}/{cidr}")
        net = iface.network
        gw = net.network_address
        return {"id": fake_uuid("address", f"{addr}/{cidr}"), "address_family": family,
                "netmask": str(net.netmask), "created_at": "2024-01-01T00:00:00Z",
                "public": public, "cidr": cidr, "management": True, "manageable": True,
                "enabled": True, "global_ip": False, "network": str(net.network_address),
                "address": str(addr), "gateway": str(gw),
                "project": {"href": project_href},
                "parent_block": {"network": str(net.network_address),
                                 "netmask": str(net.netmask), "cidr": cidr,
                                 "href": f"{BASE}/ips/{fake_uuid('block', str(net))}"}}

    def device_addresses(self, d):
        ph = f"{BASE}/projects/{self.args.project}"
        return [self._addr(ph, d["public_ip"], 31, True, 4),
                self._addr(ph, d["public_ip6"], 127, True, 6),
                self._addr(ph, d["private_ip"], 31, False, 4)]

    def device_obj(self, d):
        ph = f"{BASE}/projects/{self.args.project}"
        return {"id": d["id"], "short_id": d["id"][:8], "hostname": d["hostname"],
                "description": None, "state": "active", "tags": [], "locked": False,
                "billing_cycle": "hourly", "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z", "href": f"{BASE}/devices/{d['id']}",
                "project": {"href": ph}, "project_lite": {"href": ph},
                "facility": self.facility_obj(), "metro": self.metro_obj(),
                "plan": {"slug": "c3.small.x86", "class": "c3.small.x86",
                         "name": "c3.small.x86"},
                "ip_addresses": self.device_addresses(d)}

    def neighbors(self, d):
        if d["id"] in self.neighbor_lists:
            return copy.deepcopy(self.neighbor_lists[d["id"]])
        a = self.args
        out = []
        for fam in a.families:
            if fam == 4:
                priv = ipaddress.ip_interface(f"{d['private_ip']}/31").network
                routes_in = [{"route": str(priv), "exact": True}]
                routes_in += [{"route": f"{r['network']}/{r['cidr']}", "exact": True}
                              for r in self.reservations.values()
                              if r["state"] == "created" and r["address_family"] == 4]
                out.append({"address_family": 4, "customer_as": a.customer_as,
                            "customer_ip": d["private_ip"],
                            "md5_enabled": a.md5 is not None, "md5_password": a.md5,
                            "multihop": a.multihop, "peer_as": a.peer_as,
                            "peer_ips": list(a.peer_ip),
                            "routes_in": routes_in,
                            "routes_out": [{"route": "0.0.0.0/0", "exact": True}]
                            if a.default_route else []})
            else:
                out.append({"address_family": 6, "customer_as": a.customer_as,
                            "customer_ip": d["public_ip6"],
                            "md5_enabled": a.md5 is not None, "md5_password": a.md5,
                            "multihop": a.multihop, "peer_as": a.peer_as,
                            "peer_ips": list(a.peer_ip6), "routes_in": [],
                            "routes_out": [{"route": "::/0", "exact": True}]
                            if a.default_route else []})
        return out

    def metadata(self):
        d = self.devices[0]
        return {"id": d["id"], "hostname": d["hostname"],
                "iqn": f"iqn.2024-01.net.equinix:device.{d['id'][:8]}",
                "plan": "c3.small.x86", "class": "c3.small.x86", "reserved": False,
                "facility": self.facility_code, "metro": self.metro_code,
                "private_subnets": ["10.0.0.0/8"], "tags": [], "ssh_keys": [],
                "customdata": {}, "state": "active",
                "operating_system": {"slug": "debian_12", "distro": "debian", "version": "12"},
                "network": {"bonding": {"mode": 4, "link_aggregation": "mlag_ha",
                                        "mac": "0c:c4:7a:00:00:01"},
                            "interfaces": [{"name": "eth0", "mac": "0c:c4:7a:00:00:01",
                                            "bond": "bond0"},
                                           {"name": "eth1", "mac": "0c:c4:7a:00:00:02",
                                            "bond": "bond0"}],
                            "addresses": self.device_addresses(d)},
                "bgp_neighbors": self.neighbors(d)}

    # ---- reservations -----------------------------------------------------------
    def _taken(self, pool):
        return [ipaddress.ip_network(f"{r['network']}/{r['cidr']}")
                for r in self.reservations.values()
                if r["state"] == "created" and ipaddress.ip_address(r["network"]) in pool]

    def _allocate(self, pool, prefix):
        if prefix < pool.prefixlen:
            return None
        taken = self._taken(pool)
        for net in pool.subnets(new_prefix=prefix):
            if not any(net.overlaps(t) for t in taken):
                return net
        return None

    def _used(self):
        return sum(ipaddress.ip_network(f"{r['network']}/{r['cidr']}").num_addresses
                   for r in self.reservations.values() if r["state"] == "created")

    def validate_request(self, body):
        """Returns a list of error messages for an IPReservationRequestInput body."""
        if not isinstance(body, dict):
            return ["request body must be a JSON object"]
        errs = []
        unknown = sorted(set(body) - REQUEST_KEYS)
        if unknown:
            errs.append(f"unknown parameter(s): {', '.join(unknown)}")
        rtype = body.get("type")
        if rtype is None:
            errs.append("type is required")
        elif rtype not in KNOWN_TYPES:
            errs.append(f"type {rtype!r} is not a valid reservation type")
        elif rtype not in CREATABLE_TYPES:
            errs.append(f"type {rtype} cannot be requested")
        q = body.get("quantity")
        limit = 4 if rtype == "global_ipv4" else 256
        if q is None:
            errs.append("quantity is required")
        elif not isinstance(q, int) or isinstance(q, bool):
            errs.append("quantity must be an integer")
        elif q < 1 or q > limit or q & (q - 1):
            errs.append(f"quantity must be a power of 2 from 1 to {limit}")
        fac, met = body.get("facility"), body.get("metro")
        for key, val in (("facility", fac), ("metro", met), ("details", body.get("details")),
                         ("comments", body.get("comments"))):
            if val is not None and not isinstance(val, str):
                errs.append(f"{key} must be a string")
        if rtype == "public_ipv4":
            if fac is None and met is None:
                errs.append("facility or metro is required for public_ipv4")
            elif fac is not None and met is not None:
                errs.append("facility and metro are mutually exclusive")
            elif isinstance(fac, str) and fac.lower() != self.facility_code:
                errs.append(f"facility {fac!r} is not valid")
            elif isinstance(met, str) and met.lower() != self.metro_code:
                errs.append(f"metro {met!r} is not valid")
        elif rtype == "global_ipv4" and (fac is not None or met is not None):
            errs.append("global_ipv4 reservations take neither facility nor metro")
        tags = body.get("tags")
        if tags is not None and (not isinstance(tags, list)
                                 or not all(isinstance(t, str) for t in tags)):
            errs.append("tags must be an array of strings")
        cd = body.get("customdata")
        if cd is not None and not isinstance(cd, dict):
            errs.append("customdata must be an object")
        fo = body.get("fail_on_approval_required")
        if fo is not None and not isinstance(fo, bool):
            errs.append("fail_on_approval_required must be a boolean")
        return errs

    def create(self, project, body):
        errs = self.validate_request(body)
        if errs:
            return 422, {"errors": errs}
        rtype, q = body["type"], body["quantity"]
        prefix = 32 - (q.bit_length() - 1)
        pool = self.global_pool if rtype == "global_ipv4" else self.pool
        net = self._allocate(pool, prefix)
        quota = self.args.quota
        if net is None or (quota is not None and self._used() + q > quota):
            if body.get("fail_on_approval_required"):
                return 422, {"errors": ["The requested IP space exceeds the project's quota "
                                        "and needs approval (fail_on_approval_required)"]}
            net = None
        rid = str(uuid.uuid4())
        ph = f"{BASE}/projects/{project}"
        by_metro = body.get("metro") is not None
        res = {"id": rid, "address_family": 4, "type": rtype,
               "public": True, "management": False, "manageable": True, "enabled": True,
               "global_ip": rtype == "global_ipv4",
               "state": "created" if net else "pending",
               "details": body.get("details"), "tags": list(body.get("tags") or []),
               "customdata": body.get("customdata") or {},
               "created_at": now_iso(), "href": f"{BASE}/ips/{rid}",
               "project": {"href": ph}, "project_lite": {"href": ph},
               "facility": None, "metro": None, "assignments": [],
               "network": None, "address": None, "gateway": None, "netmask": None,
               "cidr": None}
        if rtype == "public_ipv4":
            res["metro"] = self.metro_obj()
            res["facility"] = None if by_metro else self.facility_obj()
        if net:
            n = net.network_address
            if prefix == 32:
                addr, gw = n, n
            elif prefix == 31:
                addr, gw = n + 1, n
            else:
                addr, gw = n + 2, n + 1
            res.update({"network": str(n), "address": str(addr), "gateway": str(gw),
                        "netmask": str(net.netmask), "cidr": prefix})
        self.reservations[rid] = res
        self._save()
        return 201, copy.deepcopy(res)

    def delete(self, rid):
        if self.reservations.pop(rid, None) is None:
            return False
        self._save()
        return True

    # ---- persistence --------------------------------------------------------------
    def _load(self):
        path = self.args.state
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            sys.exit(f"fake-metal: --state {path}: {e}")
        if not isinstance(data, dict) or not isinstance(data.get("reservations"), list):
            sys.exit(f"fake-metal: --state {path}: not a fake-metal state file")
        for r in data["reservations"]:
            self.reservations[r["id"]] = r

    def _save(self):
        """Writes the state file atomically, so a fake killed mid-write loses nothing."""
        path = self.args.state
        if not path:
            return
        tmp = f"{path}.tmp.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"version": 1, "reservations": list(self.reservations.values())}, f,
                      indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    # ---- faults and the request log ----------------------------------------------
    def take_fault(self, listener, method, path):
        for f in self.faults:
            if f.matches(listener, method, path):
                f.fired += 1
                if f.count != -1 and f.fired >= f.count:
                    self.faults.remove(f)
                return f
        return None


def page_args(query, default_per_page):
    """Parses page/per_page (PerPage.yaml, Page.yaml); returns (page, per_page, errors)."""
    errs = []
    vals = {}
    for key, default, hi in (("page", 1, 100000), ("per_page", default_per_page, 1000)):
        raw = query.get(key, [str(default)])[-1]
        try:
            v = int(raw)
        except ValueError:
            errs.append(f"{key} must be an integer")
            continue
        if not 1 <= v <= hi:
            errs.append(f"{key} must be between 1 and {hi}")
        vals[key] = v
    return vals.get("page", 1), vals.get("per_page", default_per_page), errs


def paginate(items, path, query, page, per_page):
    """Meta.yaml: first/last/previous/next/self hrefs, total, current_page, last_page."""
    total = len(items)
    last = max(1, -(-total // per_page))

    def href(p):
        q = {k: v for k, v in query.items() if k not in ("page", "per_page")}
        q["page"] = [str(p)]
        q["per_page"] = [str(per_page)]
        return {"href": f"{BASE}{path}?{urllib.parse.urlencode(q, doseq=True)}"}

    meta = {"first": href(1), "last": href(last), "self": href(page),
            "previous": href(page - 1) if page > 1 else None,
            "next": href(page + 1) if page < last else None,
            "total": total, "current_page": page, "last_page": last}
    start = (page - 1) * per_page
    return items[start:start + per_page], meta


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-metal/1"
    world = None
    listener = "api"

    def log_message(self, fmt, *args):
        if self.world.args.verbose:
            sys.stderr.write(f"fake-metal {self.listener}: {fmt % args}\n")

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            size = 0
            while True:
                n = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += n
                if size > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(n))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, payload, headers=None, content_type="application/json; charset=utf-8"):
        if isinstance(payload, (dict, list)):
            data = json.dumps(payload).encode()
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload or b""
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(0 if status == 204 else len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if status != 204 and self.command != "HEAD":
            self.wfile.write(data)
        return status

    def _handle(self, method):
        w = self.world
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            raw = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(413, {"errors": ["request body too large"]})
            return
        if path.startswith("/_fake/"):
            self._control(method, path, query, raw)
            return

        token = self.headers.get("X-Auth-Token")
        a = w.args
        if self.listener == "metadata":
            tok = "n/a"
        elif token is None:
            tok = "missing"
        elif token == a.token:
            tok = "match"
        elif a.forbidden_token is not None and token == a.forbidden_token:
            tok = "forbidden"
        else:
            tok = "mismatch"
        try:
            body_rec = json.loads(raw) if raw else None
        except ValueError:
            body_rec = raw.decode("utf-8", "replace")
        hdrs = {k: v for k, v in self.headers.items() if k.lower() != "x-auth-token"}
        with w.lock:
            w.seq += 1
            rec = {"seq": w.seq, "time": time.time(), "listener": self.listener,
                   "method": method, "path": path, "query": url.query, "headers": hdrs,
                   "token": tok, "body": body_rec, "status": None, "fault": None}
            w.requests.append(rec)
            del w.requests[:-a.max_requests]
            fault = w.take_fault(self.listener, method, path)
        if fault:
            rec["fault"] = fault.spec
        if fault and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
        if fault and not fault.after and (fault.drop or fault.status is not None):
            self._fault_reply(fault, rec)
            return
        status, payload, headers = self._route(method, path, query, raw, tok)
        if fault and fault.after and (fault.drop or fault.status is not None):
            self._fault_reply(fault, rec)
            return
        if fault and fault.malformed and payload:
            payload = self._corrupt(payload)
        rec["status"] = self._send(status, payload, headers)

    def _corrupt(self, payload):
        text = json.dumps(payload) if isinstance(payload, (dict, list)) else str(payload)
        return text[:max(1, len(text) // 2)]

    def _fault_reply(self, fault, rec):
        if fault.drop:
            self.close_connection = True
            rec["status"] = "dropped"
            return
        st = fault.status
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if st == 429:
            # packngo reads these rate-limit headers (packngo.go headerRate*).
            headers["X-RateLimit-Limit"] = "60"
            headers["X-RateLimit-Remaining"] = "0"
            headers["X-RateLimit-Reset"] = str(int(time.time()) + (fault.retry_after or 1))
        if fault.body is not None:
            payload = fault.body
        elif st == 401:
            payload = {"error": MSG_UNAUTHORIZED}
        elif st == 403:
            payload = {"errors": [MSG_FORBIDDEN]}
        elif st == 404:
            payload = {"errors": [MSG_NOT_FOUND]}
        elif st == 204:
            payload = b""
        else:
            payload = {"errors": [f"fake-metal injected HTTP {st}"]}
        if fault.malformed and payload:
            payload = self._corrupt(payload)
        rec["status"] = self._send(st, payload, headers, fault.content_type)

    # ---- the API ----------------------------------------------------------------------
    def _route(self, method, path, query, raw, tok):
        w = self.world
        if self.listener == "metadata":
            if path in ("/metadata", "/metadata/"):
                if method != "GET":
                    return 405, {"errors": ["Method not allowed"]}, None
                with w.lock:
                    return 200, w.metadata(), None
            return 404, {"errors": [MSG_NOT_FOUND]}, None

        if tok in ("missing", "mismatch"):
            return 401, {"error": MSG_UNAUTHORIZED}, None
        if tok == "forbidden":
            return 403, {"errors": [MSG_FORBIDDEN]}, None
        if not path.startswith(BASE + "/"):
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        rel = path[len(BASE):]
        routes = (
            (r"^/projects/([^/]+)/ips$", {"GET": self._list_ips, "POST": self._create_ip}),
            (r"^/projects/([^/]+)/devices$", {"GET": self._list_devices}),
            (r"^/ips/([^/]+)$", {"GET": self._get_ip, "DELETE": self._delete_ip}),
            (r"^/devices/([^/]+)$", {"GET": self._get_device}),
            (r"^/devices/([^/]+)/bgp/neighbors$", {"GET": self._bgp_neighbors}),
        )
        for pattern, methods in routes:
            m = re.match(pattern, rel)
            if m:
                fn = methods.get(method)
                if fn is None:
                    return 405, {"errors": ["Method not allowed"]}, \
                        {"Allow": ", ".join(sorted(methods))}
                with w.lock:
                    return fn(m.group(1), query, raw, rel)
        return 404, {"errors": [MSG_NOT_FOUND]}, None

    def _project_ok(self, pid):
        return pid == self.world.args.project

    def _create_ip(self, pid, query, raw, rel):
        if not self._project_ok(pid):
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        ctype = self.headers.get("Content-Type", "")
        if not ctype.split(";")[0].strip().lower() == "application/json":
            return 422, {"errors": [f"Content-Type must be application/json, got "
                                    f"{ctype or 'none'}"]}, None
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return 400, {"errors": ["request body is not valid JSON"]}, None
        if body is None:
            return 422, {"errors": ["request body is required"]}, None
        status, payload = self.world.create(pid, body)
        return status, payload, None

    def _list_ips(self, pid, query, raw, rel):
        if not self._project_ok(pid):
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        wanted = set()
        for key in ("types", "types[]", "type"):
            for v in query.get(key, []):
                wanted.update(t for t in v.split(",") if t)
        bad = sorted(wanted - set(KNOWN_TYPES))
        page, per_page, errs = page_args(query, 250)
        if bad:
            errs.append(f"types: invalid value(s) {', '.join(bad)}")
        if errs:
            return 422, {"errors": errs}, None
        items = [copy.deepcopy(r) for r in self.world.reservations.values()
                 if not wanted or r["type"] in wanted]
        items, meta = paginate(items, rel, query, page, per_page)
        return 200, {"ip_addresses": items, "meta": meta}, None

    def _get_ip(self, rid, query, raw, rel):
        r = self.world.reservations.get(rid)
        if r is None:
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        return 200, copy.deepcopy(r), None

    def _delete_ip(self, rid, query, raw, rel):
        if not self.world.delete(rid):
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        return 204, b"", None

    def _list_devices(self, pid, query, raw, rel):
        w = self.world
        if not self._project_ok(pid):
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        page, per_page, errs = page_args(query, 10)
        if errs:
            return 422, {"errors": errs}, None
        devs = [w.device_obj(d) for d in w.devices]

        def arg(k):
            v = query.get(k)
            return v[-1].lower() if v else None

        host, search = arg("hostname"), arg("search")
        fac, met, tag = arg("facility"), arg("metro"), arg("tag")
        if host is not None:    # "Filter by partial hostname"
            devs = [d for d in devs if host in d["hostname"].lower()]
        if fac is not None:
            devs = [d for d in devs if d["facility"]["code"] == fac]
        if met is not None:
            devs = [d for d in devs if d["metro"]["code"] == met]
        if tag is not None:
            devs = [d for d in devs if tag in [t.lower() for t in d["tags"]]]
        if search is not None:  # fields from DeviceSearch.yaml and packngo devices.go List()
            def hay(d):
                parts = [d["hostname"], d["description"] or "", d["id"], d["short_id"],
                         d["plan"]["slug"], d["plan"]["name"], d["facility"]["code"],
                         d["facility"]["name"]]
                parts += d["tags"] + [a["address"] for a in d["ip_addresses"]]
                return " ".join(parts).lower()
            devs = [d for d in devs if search in hay(d)]
        items, meta = paginate(devs, rel, query, page, per_page)
        return 200, {"devices": items, "meta": meta}, None

    def _get_device(self, did, query, raw, rel):
        d = self.world.device(did)
        if d is None:
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        return 200, self.world.device_obj(d), None

    def _bgp_neighbors(self, did, query, raw, rel):
        d = self.world.device(did)
        if d is None:
            return 404, {"errors": [MSG_NOT_FOUND]}, None
        return 200, {"bgp_neighbors": self.world.neighbors(d)}, None

    # ---- control ----------------------------------------------------------------------
    def _control(self, method, path, query, raw):
        w = self.world
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            self._send(400, {"error": "control body is not valid JSON"})
            return
        if path == "/_fake/fail" and method == "POST":
            specs = body if isinstance(body, list) else [body]
            try:
                faults = [Fault(s) for s in specs]
            except (ValueError, re.error) as e:
                self._send(400, {"error": str(e)})
                return
            with w.lock:
                w.faults.extend(faults)
                pending = [f.describe() for f in w.faults]
            self._send(200, {"faults": pending})
        elif path == "/_fake/faults" and method == "GET":
            with w.lock:
                self._send(200, {"faults": [f.describe() for f in w.faults]})
        elif path == "/_fake/requests" and method == "GET":
            since = int(query.get("since", ["0"])[-1] or 0)
            with w.lock:
                reqs = [r for r in w.requests if r["seq"] > since]
                self._send(200, {"requests": reqs})
        elif path == "/_fake/state" and method == "GET":
            with w.lock:
                self._send(200, {"project": w.args.project,
                                 "reservations": list(w.reservations.values()),
                                 "devices": [{"id": d["id"], "hostname": d["hostname"]}
                                             for d in w.devices]})
        elif path == "/_fake/neighbors" and method in ("GET", "POST"):
            src = body if method == "POST" else {"device": query.get("device", [None])[-1]}
            if not isinstance(src, dict) or set(src) - {"device", "bgp_neighbors"}:
                self._send(400, {"error": "expected {\"device\": ID, \"bgp_neighbors\": "
                                          "[...] | null}"})
                return
            nbs = src.get("bgp_neighbors")
            if method == "POST" and (nbs is not None and (
                    not isinstance(nbs, list) or not all(isinstance(n, dict) for n in nbs))):
                self._send(400, {"error": "bgp_neighbors must be an array of objects, or null"})
                return
            with w.lock:
                d = w.device(src.get("device") or w.devices[0]["id"])
                if d is None:
                    self._send(400, {"error": f"no device {src.get('device')}"})
                    return
                if method == "POST" and nbs is None:
                    w.neighbor_lists.pop(d["id"], None)
                elif method == "POST":
                    w.neighbor_lists[d["id"]] = copy.deepcopy(nbs)
                self._send(200, {"device": d["id"], "bgp_neighbors": w.neighbors(d)})
        elif path == "/_fake/reset" and method == "POST":
            if not isinstance(body, dict):
                self._send(400, {"error": "reset body must be an object"})
                return
            with w.lock:
                if body.get("faults", True):
                    w.faults.clear()
                if body.get("requests", True):
                    w.requests.clear()
                if body.get("state", True):
                    w.reservations.clear()
                    w._save()
            self._send(200, {"reset": True})
        else:
            self._send(404, {"error": f"no control endpoint {method} {path}"})


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local fake of the Equinix Metal API v1 "
                                "and metadata service, for vipd's tests.")
    p.add_argument("--listen", type=lambda s: hostport(s, "--listen"),
                   default=("127.0.0.1", 0), help="API address HOST:PORT (port 0: pick one)")
    p.add_argument("--metadata-listen", type=lambda s: hostport(s, "--metadata-listen"),
                   help="also serve GET /metadata on HOST:PORT")
    p.add_argument("--token", default="fake-metal-token", help="the valid X-Auth-Token")
    p.add_argument("--forbidden-token", help="a token that authenticates but may do nothing (403)")
    p.add_argument("--project", default=fake_uuid("project", "default"))
    p.add_argument("--device-id", default=fake_uuid("device", "default"))
    p.add_argument("--hostname", default="vipd-node-1")
    p.add_argument("--extra-device", action="append", default=[], metavar="HOSTNAME",
                   help="another device in the project (repeatable)")
    p.add_argument("--facility", default="ny5")
    p.add_argument("--metro", default="ny", help="the metro the facility is in")
    p.add_argument("--pool", type=ipaddress.IPv4Network, default="198.51.100.0/24",
                   help="public_ipv4 addresses handed out")
    p.add_argument("--global-pool", type=ipaddress.IPv4Network, default="203.0.113.0/24",
                   help="global_ipv4 addresses handed out")
    p.add_argument("--quota", type=int, help="most reserved addresses before approval is needed")
    p.add_argument("--peer-as", type=int, default=65530)
    p.add_argument("--customer-as", type=int, default=65000)
    p.add_argument("--md5", help="BGP MD5 password (md5_enabled true)")
    p.add_argument("--customer-ip", default="10.67.50.1", help="device private IPv4")
    p.add_argument("--customer-ip6", default="2001:db8:45e1:5000::1", help="device IPv6")
    p.add_argument("--peer-ip", action="append", help="IPv4 peer (repeatable; default "
                   "169.254.255.1 and .2)")
    p.add_argument("--peer-ip6", action="append", help="IPv6 peer (repeatable; default "
                   "fc00::e and fc00::f, written out in full as the metadata service did)")
    p.add_argument("--families", default="4,6",
                   help="address families with a BGP neighbour: 4,6 | 4 | 6 | none")
    p.add_argument("--multihop", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--default-route", action="store_true", help="routes_out carries a default")
    p.add_argument("--state", help="persist reservations in this JSON file")
    p.add_argument("--max-requests", type=int, default=10000, help="request log length")
    p.add_argument("--verbose", action="store_true", help="log every request on stderr")
    a = p.parse_args(argv)
    a.peer_ip = a.peer_ip or ["169.254.255.1", "169.254.255.2"]
    a.peer_ip6 = a.peer_ip6 or ["fc00:0000:0000:0000:0000:0000:0000:000e",
                                "fc00:0000:0000:0000:0000:0000:0000:000f"]
    fams = [] if a.families in ("", "none") else a.families.split(",")
    if any(f not in ("4", "6") for f in fams):
        p.error("--families: expected 4,6 | 4 | 6 | none")
    a.families = sorted(set(int(f) for f in fams))
    for u in (a.project, a.device_id):
        if not UUID_RE.match(u):
            p.error(f"{u!r} is not a lowercase UUID")
    return a


def serve(args):
    world = World(args)
    servers = []
    for listener, addr, label in (("api", args.listen, "fake-metal listening on"),
                                  ("metadata", args.metadata_listen,
                                   "fake-metal metadata listening on")):
        if addr is None:
            continue
        handler = type(f"{listener.title()}Handler", (Handler,),
                       {"world": world, "listener": listener})
        cls = ThreadingHTTPServer
        if ":" in addr[0]:
            cls = type("V6Server", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        srv = cls(addr, handler)
        srv.daemon_threads = True
        host, port = srv.server_address[:2]
        print(f"{label} http://{url_host(host)}:{port}", flush=True)
        servers.append(srv)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    serve(parse_args(sys.argv[1:]))
