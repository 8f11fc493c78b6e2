"""contrib/vipd.service.in: filled in the way `make install` does, the unit passes
`systemd-analyze verify` (offline: no running systemd needed), has the settings the
issue asks for, and its ExecStart= is a command line this vipd accepts."""
import os
import re
import shlex
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import VIPD, SRCDIR, done, ok, run, tmpdir  # noqa: E402

if not shutil.which("systemd-analyze"):
    print("1..0 # SKIP systemd-analyze not installed (Debian package systemd)")
    sys.exit(0)

src = open(os.path.join(SRCDIR, "contrib", "vipd.service.in")).read()
makefile = open(os.path.join(SRCDIR, "Makefile.am")).read()
names = sorted(set(re.findall(r"@([a-z_]+)@", src)))
ok(names and all(f"s|@{n}[@]|$({n})|g" in makefile for n in names),
   f"Makefile.am substitutes every @var@ of the unit ({', '.join(names)})", names)

d = tmpdir()
sbindir = os.path.dirname(os.path.abspath(shutil.which(VIPD) or VIPD))
etc = os.path.join(d, "etc")
os.makedirs(os.path.join(etc, "vipd"))
shutil.copy(os.path.join(SRCDIR, "contrib", "vipd.json.example"),
            os.path.join(etc, "vipd", "vipd.json"))
unit = os.path.join(d, "vipd.service")
text = src.replace("@sbindir@", sbindir).replace("@sysconfdir@", etc)
with open(unit, "w") as f:
    f.write(text)
# Documentation=man:... is checked too: verify runs man(1), pointed at the source's pages.
mandir = os.path.join(d, "man")
for page in ("vipd.8", "vipctl.8", "vipd.json.5"):
    sect = os.path.join(mandir, "man" + page[-1])
    os.makedirs(sect, exist_ok=True)
    os.symlink(os.path.join(SRCDIR, "man", page), os.path.join(sect, page))
env = dict(os.environ, MANPATH=mandir, SYSTEMD_LOG_LEVEL="notice")
r = run(["systemd-analyze", "verify", unit], env=env)
ok(r.returncode == 0 and "vipd.service" not in r.stdout + r.stderr,
   "systemd-analyze verify vipd.service: no complaint", r.stdout + r.stderr)
broken = os.path.join(d, "broken", "vipd.service")
os.makedirs(os.path.dirname(broken))
with open(broken, "w") as f:
    f.write(text.replace(sbindir + "/vipd", "/nonexistent/vipd"))
r = run(["systemd-analyze", "verify", broken], env=env)
ok(r.returncode != 0 and "nonexistent" in r.stderr,
   "(and verify does catch a unit whose ExecStart= binary is missing)", r.stderr)

# The settings, as systemd reads them (the last assignment wins; lists accumulate).
settings = {}
for line in text.splitlines():
    m = re.match(r"^([A-Za-z]+)=(.*)$", line)
    if m:
        settings.setdefault(m.group(1), []).append(m.group(2))


def one(key):
    return settings.get(key, [""])[-1]


def words(key):
    return set(" ".join(settings.get(key, [])).split())


ok(one("Type") == "notify", "Type=notify")
ok(one("ExecReload") == "/bin/kill -HUP $MAINPID", "ExecReload= sends SIGHUP to the main process")
ok(one("Restart") == "on-failure", "Restart=on-failure")
ok({"bird.service", "network-online.target"} <= words("After") and
   {"bird.service", "network-online.target"} <= words("Wants") and "Requires" not in settings
   and "BindsTo" not in settings, "ordered after BIRD and the network, wanting them, not requiring")
caps = {"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_BPF", "CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"}
ok(words("CapabilityBoundingSet") == caps and words("AmbientCapabilities") == caps,
   "capabilities: only " + " ".join(sorted(caps)), settings.get("CapabilityBoundingSet"))
want = {"ProtectSystem": "strict", "StateDirectory": "vipd", "RuntimeDirectory": "vipd",
        "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes"}
ok(all(one(k) == v for k, v in want.items()),
   "ProtectSystem=strict, StateDirectory=vipd, RuntimeDirectory=vipd, ProtectHome, PrivateTmp, "
   "NoNewPrivileges", {k: one(k) for k in want})
ok("ProtectKernelTunables" not in settings,
   "no ProtectKernelTunables= (vipd writes /proc/sys/net)")
argv = shlex.split(one("ExecStart"))
ok(argv[0] == os.path.join(sbindir, "vipd") and "--foreground" in argv and "--config" in argv,
   "ExecStart= runs @sbindir@/vipd --foreground --config @sysconfdir@/vipd/vipd.json", argv)
r = run(argv + ["--check-config"])
ok(r.returncode == 0, "ExecStart='s command line, with --check-config, is accepted by vipd "
   "(on the example config)", r.stdout + r.stderr)

r = run(["systemd-analyze", "security", "--offline=true", unit], env=env)
m = re.search(r"Overall exposure level for vipd.service: ([0-9.]+)", r.stdout)
print(f"# systemd-analyze security: exposure {m.group(1) if m else '?'} (0 safest, 10 worst)")
done()
