"""One end-to-end scenario run against both data planes (issue 6): the same API calls and the
same assertions, whether vipd forwards with XDP (tests/integration/planes.py, on this host) or
with IPVS (tests/uml/planes.py, inside user-mode-linux). Only the runner knows the topology.

Through the REST API, as a user would, on a TCP load balancer VIP:80 (forwarding nat, tcp
health check, 3 backends each answering with its own name, default scheduler):
  1. 60 fresh connections all succeed and reach all 3 backends (each at least 5 times);
  2. drain b3 (there is no weight-setting call: drain is the API's weight 0) while a
     connection to it, opened just after a look at the API, is held open: new connections
     never reach b3, the held one still exchanges data, the API says "draining" from the
     drain's own answer on, then "drained" once it closes; undrain: b3 is reached again;
  3. DELETE b2: new connections never reach it;
  4. b1's server killed: the API says health "down" within a bounded wait, and from then on
     no new connection fails (all land on b3);
  5. DELETE the load balancer: connections to the VIP reach no backend.
What each step saw goes into one dict, printed as "# outcome: {...}": it holds only what must
be equal on both planes (so the two runs compare by eye); per-plane figures (counts, times)
go on "# figures: {...}". VIPD_PLANES_SCHEDULER=NAME (passed into UML like every VIPD_*)
sets the load balancer's scheduler on both planes, to tell a scheduler's part in a
difference from the rest.

The runner passes an env object with:
  plane              "xdp" or "ipvs" (prefixes every check's description)
  vip, port          the VIP and its port (80)
  backends           [(name, ip, port)] of the 3 backends, b1 b2 b3
  client             a netns.Netns of the client: connect(addr, port, timeout) -> socket
  start_vipd(args)   starts vipd on the node with these extra arguments; returns (handle,
                     whether it answered /healthz); the handle has request(method, path,
                     body) -> (status, JSON), logs() -> text and stop() -> exit status
                     (SIGTERM)
  kill_server(name)  SIGKILL to that backend's server, by PID
  vipd               the handle start_vipd returned last (None before), with proc (a Popen)
  build(), destroy() make and remove the topology and the backend servers (for main())
The checks print TAP through vipdtest.ok; the runner prints the plan (vipdtest.done).
"""
import json
import os
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from health_topo import hello  # noqa: E402
from vipdtest import ok, reconcile_runs, wait_for_api, wait_reconciled  # noqa: E402

N = 60                  # connections per traffic check
MIN_EACH = 5            # "each at least a few times": P(any < 5 of 60 | p=1/3) ~ 3e-6
SETTLE_MAX = 5.0        # s at most for a reconcile pass after an API change or health flip
HC = {"type": "tcp", "interval": "300ms", "timeout": "200ms", "fail_count": 2, "rise_count": 2}
DETECT_BOUND = 2 * 0.3 + 0.2 + 0.3   # fall x interval + timeout + 300 ms, as in health.py


def wait_for(cond, timeout, step=0.05):
    """The first truthy cond() within timeout (s), else None."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            return None
        time.sleep(step)


class Scenario:
    def __init__(self, env):
        self.env = env
        self.p = env.plane
        self.v = None
        self.lb = None
        self.names = [n for n, _, _ in env.backends]
        self.ip = {n: ip for n, ip, _ in env.backends}
        self.outcome = {}
        self.figures = {}

    def ok(self, cond, desc, detail=None):
        return ok(cond, f"{self.p}: {desc}", detail)

    def api(self, method, path, body=None):
        try:
            return self.v.request(method, path, body)
        except OSError as e:
            return 0, f"{type(e).__name__}: {e}"

    def runs(self):
        """GET /status's reconcile.runs (None if it does not say): read before a change."""
        return reconcile_runs(self.api)

    def settle(self, step, before):
        """After an API change (or once the API shows a health flip), before being the
        reconcile runs read before it: waits until the data plane follows what the API said
        (vipdtest.wait_reconciled). False (and step noted on "# figures") if that cannot be
        told."""
        seen = wait_reconciled(self.api, SETTLE_MAX, before)
        if not seen:
            self.figures.setdefault("not_reconciled_after", []).append(step)
        return seen

    def tail(self, n=15):
        return "\n".join(self.v.logs().splitlines()[-n:]) if self.v else ""

    def backend(self, name):
        """The API's view of backend name ({} if gone)."""
        st, lb = self.api("GET", f"/loadbalancer/{self.lb['uuid']}")
        bs = lb.get("backends", []) if st == 200 and isinstance(lb, dict) else []
        return next((b for b in bs if b.get("ip") == self.ip[name]), {})

    def load(self, n=N, timeout=1.0):
        """n short connections: ({backend: count}, [errors])."""
        counts, errors = {}, []
        deadline = time.monotonic() + 30
        for _ in range(n):
            if time.monotonic() > deadline or len(errors) >= 10:
                errors.append("stopped early (30 s or 10 errors)")
                break
            try:
                name = hello(self.env.client, self.env.vip, self.env.port, timeout)
                counts[name] = counts.get(name, 0) + 1
            except (OSError, ValueError) as e:
                errors.append(f"{type(e).__name__}: {e}")
        return counts, errors

    @staticmethod
    def spread(counts):
        return "/".join(f"{k} {counts[k]}" for k in sorted(counts)) or "none"

    # --- the steps ---------------------------------------------------------------------

    def create(self):
        env = self.env
        body = {"name": "planes", "vip": env.vip, "port": env.port, "protocol": "tcp",
                "forwarding": "nat", "health_check": HC,
                "backends": [{"ip": ip, "port": port, "weight": 1}
                             for _, ip, port in env.backends]}
        if os.environ.get("VIPD_PLANES_SCHEDULER"):  # a diagnostic override, both planes alike
            body["scheduler"] = os.environ["VIPD_PLANES_SCHEDULER"]
        st, lb = self.api("POST", "/loadbalancer", body)
        if not self.ok(st == 201, f"POST /loadbalancer: {env.vip}:{env.port} tcp, forwarding "
                       f"nat, tcp health check, 3 backends", f"{st} {lb}\n{self.tail()}"):
            return False
        self.lb = lb
        self.outcome["scheduler"] = lb.get("scheduler")
        t0 = time.monotonic()
        up = wait_for(lambda: [self.backend(n).get("health") for n in self.names] ==
                      ["up"] * 3, 5)
        self.figures["all_up_s"] = round(time.monotonic() - t0, 2)
        healths = [self.backend(n).get("health") for n in self.names]
        self.outcome["health_after_create"] = healths
        self.ok(up, "the API reports health \"up\" for all 3 backends (rise 2)",
                f"{healths}\n{self.tail()}")
        return True

    def spread_all(self):
        counts, errors = self.load()
        self.outcome["reached"] = sorted(counts)
        self.outcome["failed"] = len(errors)
        self.figures["spread"] = counts
        self.ok(not errors and sorted(counts) == self.names and
                all(counts[n] >= MIN_EACH for n in self.names),
                f"{N} fresh connections all succeed and reach all 3 backends, each at least "
                f"{MIN_EACH} times ({self.spread(counts)})", f"{counts} errors {errors[:5]}")

    def hold(self, name, tries=40):
        """A connection through the VIP that landed on backend name, kept open, or None."""
        for _ in range(tries):
            try:
                s = self.env.client.connect(self.env.vip, self.env.port, 2.0)
            except OSError:
                continue
            f = s.makefile("rb")
            try:
                who = f.readline().decode().split()[0]
            except (OSError, IndexError):
                who = None
            if who == name:
                return s, f
            f.close()
            s.close()
        return None

    @staticmethod
    def talk(held, text):
        """One line on a held connection: the name of the backend that echoed it."""
        s, f = held
        try:
            s.sendall(text.encode() + b"\n")
            line = f.readline().decode().rstrip("\n")
        except OSError as e:
            return f"error: {e}"
        name, _, echo = line.partition(" ")
        return name if echo == text else f"bad echo {line!r}"

    def drain(self):
        x = "b3"
        b = self.backend(x)
        states = [b.get("state")]
        path = f"/loadbalancer/{self.lb['uuid']}/backend/{b.get('uuid')}"
        # The user looked the backend up a moment ago; a connection to it opens; the drain
        # follows at once. A plane that caches its connection counts (up to 1 s) must still
        # not call the backend drained while that connection is open.
        time.sleep(0.4)
        held = self.hold(x)
        self.outcome["held_on"] = x if held else None
        if not self.ok(held is not None, f"a connection through the VIP that landed on {x} is "
                       f"held open"):
            return
        before = self.runs()
        st, resp = self.api("POST", path + "/drain")
        states.append(resp.get("state") if isinstance(resp, dict) else None)
        synced = self.settle("drain", before)
        counts, errors = self.load()
        echoes = [self.talk(held, f"after-drain {i}") for i in range(3)]
        b = self.backend(x)
        states.append(b.get("state"))
        active = (b.get("stats") or {}).get("active_connections")
        self.outcome["reached_while_drained"] = sorted(counts)
        self.outcome["held_echo_after_drain"] = sorted(set(echoes))
        self.outcome["active_connections_while_held"] = active
        self.figures["spread_while_drained"] = counts
        self.ok(st == 200 and synced and x not in counts and sum(counts.values()) == N and
                not errors,
                f"{x} drained (POST .../drain): {N} new connections all succeed and never reach "
                f"it ({self.spread(counts)})",
                f"drain {st} {resp}; errors {errors[:5]}; reconcile pass seen {synced}")
        self.ok(echoes == [x] * 3, f"the connection held open to {x} before the drain still "
                f"sends and receives (3 exchanges answered by {x})", echoes)
        held_states = states[1:]
        self.ok(held_states == ["draining"] * len(held_states) and active == 1,
                f"while that connection is open the API says state \"draining\" with "
                f"stats.active_connections 1, from the drain's own answer on (states {states})",
                f"drain answered {resp}\nlater {b}")
        held[1].close()
        held[0].close()
        t0 = time.monotonic()
        got = wait_for(lambda: self.backend(x).get("state") == "drained", 10, 0.1)
        self.figures["drained_after_close_s"] = round(time.monotonic() - t0, 2)
        states.append(self.backend(x).get("state"))
        self.ok(got, f"once it closes the API says \"drained\" (after "
                f"{self.figures['drained_after_close_s']} s)", self.backend(x))
        before = self.runs()
        st, resp = self.api("POST", path + "/undrain")
        states.append(resp.get("state") if isinstance(resp, dict) else None)
        synced = self.settle("undrain", before)
        counts, errors = self.load()
        self.outcome["drain_states"] = [s for i, s in enumerate(states)
                                        if i == 0 or s != states[i - 1]]
        self.outcome["reached_after_undrain"] = sorted(counts)
        self.figures["spread_after_undrain"] = counts
        self.ok(st == 200 and synced and states[-1] == "enabled" and counts.get(x, 0) > 0 and
                not errors,
                f"undrained: state \"enabled\", new connections reach {x} again "
                f"({self.spread(counts)})",
                f"undrain {st} {resp}; errors {errors[:5]}; reconcile pass seen {synced}")

    def delete_backend(self):
        x = "b2"
        uuid = self.backend(x).get("uuid")
        before = self.runs()
        st, resp = self.api("DELETE", f"/loadbalancer/{self.lb['uuid']}/backend/{uuid}")
        synced = self.settle("delete_backend", before)
        counts, errors = self.load()
        self.outcome["reached_after_delete"] = sorted(counts)
        self.figures["spread_after_delete"] = counts
        self.ok(st == 200 and synced and not self.backend(x) and x not in counts and
                not errors and sum(counts.values()) == N,
                f"DELETE of backend {x}: {N} new connections all succeed and never reach it "
                f"({self.spread(counts)})",
                f"delete {st} {resp}; errors {errors[:5]}; reconcile pass seen {synced}")

    def kill(self):
        x = "b1"
        t0 = time.monotonic()
        self.env.kill_server(x)
        down, before = wait_for_api(self.api, lambda: self.backend(x).get("health") == "down",
                                    5, 0.02)
        took = time.monotonic() - t0
        # The API shows "down" at once; the data plane follows on the next reconcile pass.
        synced = self.settle("kill", before)
        self.figures["down_after_kill_s"] = round(took, 2)
        self.outcome["health_after_kill"] = self.backend(x).get("health")
        self.ok(down is not None and took <= DETECT_BOUND + 0.5,
                f"{x}'s server killed (by PID): the API says health \"down\" in {took:.2f} s "
                f"(bound {DETECT_BOUND + 0.5:.1f} s)", f"{self.backend(x)}\n{self.tail()}")
        counts, errors = self.load()
        self.outcome["reached_after_kill"] = sorted(counts)
        self.outcome["failed_after_detection"] = len(errors)
        self.figures["spread_after_kill"] = counts
        self.ok(synced and not errors and sum(counts.values()) == N and x not in counts,
                f"from then on {N} new connections all succeed, none on {x} "
                f"({self.spread(counts)})",
                f"{counts} errors {errors[:5]}; reconcile pass seen {synced}")

    def delete_lb(self):
        before = self.runs()
        st, resp = self.api("DELETE", f"/loadbalancer/{self.lb['uuid']}")
        synced = self.settle("delete_lb", before)
        counts, errors = self.load(5, timeout=1.0)
        st2, _ = self.api("GET", f"/loadbalancer/{self.lb['uuid']}")
        self.outcome["reached_after_lb_delete"] = sorted(counts)
        self.figures["errors_after_lb_delete"] = sorted({e.split(":")[0] for e in errors})
        self.ok(st == 200 and synced and st2 == 404 and not counts,
                f"DELETE of the load balancer: 5 connections to the VIP reach no backend "
                f"(client saw: {'; '.join(sorted(set(errors)))[:120]})",
                f"delete {st} {resp}; GET after {st2}; reached {counts}; reconcile pass seen "
                f"{synced}")

    def run(self):
        env = self.env
        t0 = time.monotonic()
        self.v, started = env.start_vipd(["--drain-timeout", "30s"])
        if not self.ok(started, f"vipd --dataplane {self.p} starts and answers /healthz",
                       self.tail()):
            return
        self.figures["vipd_ready_s"] = round(time.monotonic() - t0, 2)
        try:
            if self.create():
                for step in (self.spread_all, self.drain, self.delete_backend, self.kill,
                             self.delete_lb):
                    step()
            rc = self.v.stop()
            self.ok(rc == 0, "vipd exits 0 on SIGTERM", self.tail())
        finally:
            self.figures["scenario_s"] = round(time.monotonic() - t0, 1)
            print(f"# outcome: {json.dumps(self.outcome, sort_keys=True)}", flush=True)
            print(f"# figures: {json.dumps(self.figures, sort_keys=True)}", flush=True)


def run(env):
    """Runs the scenario on env; returns the outcome dict."""
    s = Scenario(env)
    s.run()
    return s.outcome


def main(env, topology):
    """A runner's whole run: env.build() (failing with RuntimeError, OSError or a subprocess
    error is one failed check, "PLANE: topology: TOPOLOGY"), the scenario, and whatever
    happened a vipd still running killed and env.destroy(). A crash of the test itself is one
    failed check."""
    try:
        try:
            env.build()
            err = None
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            err = e
        if ok(err is None, f"{env.plane}: topology: {topology}", err):
            run(env)
    except Exception:  # a bug in the test itself: one failed check, then clean up
        ok(False, f"{env.plane}: the test ran to its end", traceback.format_exc())
    finally:
        v = env.vipd
        if v is not None and v.proc is not None and v.proc.poll() is None:
            v.proc.kill()
            v.proc.wait()
        env.destroy()
