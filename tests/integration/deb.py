"""The Debian package: contrib/build-deb.sh builds it from this tree; its contents, control
fields and maintainer scripts are checked in the .deb; then apt installs it into a fresh
Debian 12 root (debootstrap minbase with systemd, man-db and procps, as on any host; made
once and cached as a tarball), where `vipd --version`, `man vipd` and `systemd-analyze
verify vipd.service` must work, nothing is enabled or started, and `dpkg -r` / `dpkg -P`
leave what they should: remove keeps the conffiles and the state, purge keeps only the state.

Purge keeps /var/lib/vipd when it holds anything: vipd's state there includes, with
--project, the record of the elastic IPs it reserved (paid for, at Equinix Metal), which
must outlive an accidental purge; dpkg removes the directory only when it is empty."""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import SRCDIR, done, ok, tmpdir  # noqa: E402

MIRROR = os.environ.get("VIPD_DEB_MIRROR", "http://deb.debian.org/debian")
ROOT_TAR = os.environ.get("VIPD_DEB_ROOT_TAR", "/var/cache/vipd-tests/bookworm-root.tar")
CONFFILES = {"/etc/bird/vipd.conf", "/etc/vipd/vipd.json"}

for tool in ("dpkg-deb", "man"):
    if not shutil.which(tool):
        print(f"1..0 # SKIP {tool} not installed")
        sys.exit(0)
if os.geteuid() != 0:
    print("1..0 # SKIP needs root (build dependencies, chroot)")
    sys.exit(0)



def run(argv, timeout=60, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


version = re.search(r"AC_INIT\(\[vipd\], \[([^]]+)\]",
                    open(os.path.join(SRCDIR, "configure.ac")).read()).group(1)
d = tmpdir("vipd-deb-")


def make_root_tar():
    """debootstrap runs while the package builds; its root is cached for the next runs."""
    if os.path.exists(ROOT_TAR) or not shutil.which("debootstrap"):
        return None
    os.makedirs(os.path.dirname(ROOT_TAR), exist_ok=True)
    script = f"""set -e
r={d}/bootstrap
debootstrap --variant=minbase --include=systemd,man-db,procps bookworm "$r" {MIRROR}
chroot "$r" apt-get update -qq
chroot "$r" apt-get clean
tar -C "$r" -cf {ROOT_TAR}.tmp .
mv {ROOT_TAR}.tmp {ROOT_TAR}
rm -rf "$r"
"""
    log = open(os.path.join(d, "bootstrap.log"), "w")
    return subprocess.Popen(["timeout", "300", "sh", "-c", script], stdout=log,
                            stderr=subprocess.STDOUT)


t0 = time.monotonic()
bootstrap = make_root_tar()
out = os.path.join(d, "out")
r = run([os.path.join(SRCDIR, "contrib", "build-deb.sh"), out], timeout=400)
build_s = time.monotonic() - t0
deb = os.path.join(out, f"vipd_{version}_amd64.deb")
if not ok(r.returncode == 0 and os.path.exists(deb),
          f"contrib/build-deb.sh builds vipd_{version}_amd64.deb ({build_s:.0f} s)",
          r.stdout + r.stderr):
    done()
ok(not os.path.exists(os.path.join(SRCDIR, "debian")) and
   not [f for f in os.listdir(os.path.join(SRCDIR, "contrib", "debian"))
        if f.startswith(".debhelper") or f in ("vipd", "files", "debhelper-build-stamp")],
   "the source tree is left as it was (the package is built in a copy)")

# Contents, as dpkg -c lists them: "drwx------ root/root 0 date time ./var/lib/vipd/".
listing = run(["dpkg-deb", "-c", deb]).stdout
modes = {}
for line in listing.splitlines():
    f = line.split()
    modes["/" + f[5].lstrip("./").rstrip("/")] = (f[0], f[1])
want = ["/usr/sbin/vipd", "/usr/bin/vipctl", "/usr/share/man/man8/vipd.8.gz",
        "/usr/share/man/man8/vipctl.8.gz", "/usr/share/man/man5/vipd.json.5.gz",
        "/lib/systemd/system/vipd.service", "/etc/bird/vipd.conf", "/etc/vipd/vipd.json",
        "/usr/share/bash-completion/completions/vipd",
        "/usr/share/bash-completion/completions/vipctl",
        "/usr/share/doc/vipd/examples/vipd.json.example", "/usr/share/doc/vipd/copyright"]
ok(all(p in modes for p in want), "the package holds vipd, vipctl, the man pages, the unit, "
   "the BIRD snippet, the config, the completions and the example",
   [p for p in want if p not in modes])
ok(modes.get("/var/lib/vipd") == ("drwx------", "root/root"), "/var/lib/vipd: root's, mode 0700",
   modes.get("/var/lib/vipd"))
ok(modes.get("/usr/sbin/vipd", ("",))[0] == "-rwxr-xr-x" and
   modes.get("/etc/vipd/vipd.json", ("",))[0] == "-rw-r--r--",
   "binaries 0755, configuration 0644, all root's",
   [line for line in listing.splitlines() if "root/root" not in line])

# Where the man pages say the files are (FILES of vipd(8), SYNOPSIS of vipd.json(5)).
man8 = open(os.path.join(SRCDIR, "man", "vipd.8")).read()
files = man8[man8.index(".SH FILES"):man8.index(".SH", man8.index(".SH FILES") + 4)]
paths = set(re.findall(r"^\.BR? (/(?:etc|var|usr|lib)/\S+)", files, re.M))
paths.add(re.search(r"^\.B (/etc/\S+)", open(os.path.join(SRCDIR, "man", "vipd.json.5")).read(),
                    re.M).group(1))
# (Files vipd itself writes in its state directory, such as metal-ips, are not installed.)
paths = {p.replace("\\-", "-").rstrip("/") for p in paths}
paths = {p for p in paths if not p.startswith("/var/lib/vipd/")}
ok(paths and all(p in modes for p in paths),
   f"every installed path vipd(8)'s FILES names is in the package ({', '.join(sorted(paths))})",
   [p for p in paths if p not in modes])

ctl = os.path.join(d, "control")
run(["dpkg-deb", "-e", deb, ctl])
conffiles = set(open(os.path.join(ctl, "conffiles")).read().split())
ok(conffiles == CONFFILES, "conffiles: /etc/vipd/vipd.json and /etc/bird/vipd.conf", conffiles)


def field(name):
    return run(["dpkg-deb", "-f", deb, name]).stdout.strip()


depends = {x.split()[0] for x in field("Depends").split(", ")}
libs = {"libbpf1", "libnftables1", "libcurl4", "libmicrohttpd12", "libev4", "libnl-3-200",
        "libnl-genl-3-200", "libcjson1", "libssl3", "libc6", "procps"}
ok(libs <= depends, "Depends: the runtime libraries (from shlibs) and procps (/bin/kill)",
   field("Depends"))
ok(field("Suggests") == "bird2" and "bird2" not in depends, "Suggests: bird2 (not Depends)")

# Maintainer scripts: nothing is enabled or started on install. Allowed: stop (removal,
# prerm), try-restart (upgrade: only a running vipd), daemon-reload, and re-enabling a
# unit the admin had enabled (the was-enabled guard around enable).
bad = []
for name in ("preinst", "postinst", "prerm", "postrm"):
    path = os.path.join(ctl, name)
    if not os.path.exists(path):
        continue
    lines = open(path).read().splitlines()
    for i, line in enumerate(lines):
        m = re.search(r"\b(?:deb-systemd-invoke|systemctl|invoke-rc\.d|service)\b.*?"
                      r"\b(start|restart|try-restart|reload|enable|stop|daemon-reload)\b", line)
        if m and m.group(1) not in ("stop", "try-restart", "daemon-reload"):
            bad.append(f"{name}: {line.strip()}")
        if re.search(r"deb-systemd-helper\s+enable", line) and \
                not any("was-enabled" in prev for prev in lines[max(0, i - 3):i]):
            bad.append(f"{name}: {line.strip()}")
ok(not bad, "maintainer scripts enable and start nothing (only stop, try-restart and "
   "re-enabling what the admin had enabled)", bad)

# The files themselves, unpacked with dpkg -x (the host has the runtime libraries).
x = os.path.join(d, "x")
run(["dpkg-deb", "-x", deb, x])
r = run([os.path.join(x, "usr/sbin/vipd"), "--version"])
ok(r.returncode == 0 and r.stdout.strip() == f"vipd {version}", f"vipd --version: vipd {version}",
   r.stdout + r.stderr)
r = run([os.path.join(x, "usr/sbin/vipd"), "--check-config", "--config",
         os.path.join(x, "etc/vipd/vipd.json")])
ok(r.returncode == 0 and "0 load balancers" in r.stdout + r.stderr,
   "the packaged /etc/vipd/vipd.json is valid and declares nothing", r.stdout + r.stderr)
r = run(["man", "-l", os.path.join(x, "usr/share/man/man8/vipd.8.gz")],
        env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
ok(r.returncode == 0 and "NAME" in r.stdout and "vipd" in r.stdout, "man -l vipd.8.gz renders",
   r.stderr)
unit = open(os.path.join(x, "lib/systemd/system/vipd.service")).read()
ok("ExecStart=/usr/sbin/vipd --foreground --config /etc/vipd/vipd.json" in unit,
   "the unit runs /usr/sbin/vipd with /etc/vipd/vipd.json")

# A fresh Debian 12 root.
if bootstrap is not None:
    try:
        bootstrap.wait(timeout=max(1, 320 - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        bootstrap.kill()
        bootstrap.wait()
if not os.path.exists(ROOT_TAR):
    log = os.path.join(d, "bootstrap.log")
    why = open(log).read()[-2000:] if os.path.exists(log) else "debootstrap not installed"
    print("\n".join("# " + line for line in why.splitlines()[-10:]))
    ok(True, f"install into a fresh Debian 12 root # SKIP could not make one ({ROOT_TAR})")
    done()
root = os.path.join(d, "root")
os.makedirs(root)
t1 = time.monotonic()
run(["tar", "-C", root, "-xf", ROOT_TAR])
shutil.copy("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))
shutil.copy(deb, os.path.join(root, "tmp"))
env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C", MANPAGER="cat",
           MANWIDTH="80", SYSTEMD_LOG_LEVEL="notice", PATH="/usr/sbin:/usr/bin:/sbin:/bin")


def chroot(*argv, timeout=120):
    return run(["chroot", root] + list(argv), env=env, timeout=timeout)


install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
           f"/tmp/{os.path.basename(deb)}"]
r = chroot(*install, timeout=180)
if r.returncode != 0:  # the cached package lists name versions the mirror no longer has
    chroot("apt-get", "update", "-qq")
    r = chroot(*install, timeout=180)
ok(r.returncode == 0, f"apt-get install ./vipd.deb in a fresh Debian 12 root, dependencies "
   f"from Debian ({time.monotonic() - t1:.0f} s with unpacking the root)", r.stdout + r.stderr)
r = chroot("vipd", "--version")
ok(r.returncode == 0 and r.stdout.strip() == f"vipd {version}", "in the root: vipd --version",
   r.stdout + r.stderr)
r = chroot("vipctl", "--help")
ok(r.returncode == 0, "in the root: vipctl --help", r.stdout + r.stderr)
r = chroot("man", "vipd")
ok(r.returncode == 0 and "health-check" in r.stdout, "in the root: man vipd", r.stderr)
r = chroot("man", "5", "vipd.json")
ok(r.returncode == 0 and "VIPD.JSON(5)" in r.stdout, "in the root: man 5 vipd.json", r.stderr)
r = chroot("systemd-analyze", "verify", "vipd.service")
ok(r.returncode == 0 and not (r.stdout + r.stderr).strip(),
   "in the root: systemd-analyze verify vipd.service (no complaint)", r.stdout + r.stderr)
wants = [os.path.join(p, f) for p, _, fs in os.walk(os.path.join(root, "etc/systemd/system"))
         for f in fs if f.startswith("vipd")]
r = chroot("deb-systemd-helper", "debian-installed", "vipd.service")
ok(not wants and r.returncode != 0,
   "installing enabled nothing (no vipd.service links, deb-systemd-helper has no state)", wants)
st = os.stat(os.path.join(root, "var/lib/vipd"))
ok(oct(st.st_mode & 0o7777) == "0o700" and st.st_uid == 0, "installed /var/lib/vipd is 0700 root",
   oct(st.st_mode))

# Remove, then purge, with an operator's config change and some state in place.
pkgfiles = [f for f in chroot("dpkg", "-L", "vipd").stdout.split() if f.startswith("/")]
with open(os.path.join(root, "etc/vipd/vipd.json"), "a") as f:
    f.write("\n")
with open(os.path.join(root, "var/lib/vipd/state.json"), "w") as f:
    f.write("{}\n")


def left():
    """The package's files still there (directories shared with others aside)."""
    return {f for f in pkgfiles if os.path.lexists(root + f) and not os.path.isdir(root + f)}


r = chroot("dpkg", "-r", "vipd")
ok(r.returncode == 0 and left() == CONFFILES and
   os.path.exists(os.path.join(root, "var/lib/vipd/state.json")) and
   "config-files" in chroot("dpkg-query", "-W", "-f=${Status}", "vipd").stdout,
   "dpkg -r: everything goes but the conffiles and the state", r.stdout + r.stderr + str(left()))
r = chroot("dpkg", "-P", "vipd")
ok(r.returncode == 0 and not left() and not os.path.exists(os.path.join(root, "etc/vipd")) and
   os.path.exists(os.path.join(root, "var/lib/vipd/state.json")) and
   chroot("dpkg-query", "-W", "vipd").returncode != 0,
   "dpkg -P: the conffiles go too, the state in /var/lib/vipd stays", r.stdout + r.stderr +
   str(left()))
print(f"# build {build_s:.0f} s, root and install cycle {time.monotonic() - t1:.0f} s, "
      f"total {time.monotonic() - t0:.0f} s")
done()
