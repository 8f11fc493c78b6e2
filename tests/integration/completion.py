"""Bash completion for vipd and vipctl (contrib/bash-completion/) against the binaries' own
--help, so neither can drift: every flag, command and value list is compared both ways."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from vipdtest import VIPD, VIPCTL, SRCDIR, done, ok, run, tmpdir  # noqa: E402

COMPDIR = os.path.join(SRCDIR, "contrib", "bash-completion")
CWD = tmpdir()
# A file to offer where a flag takes a path, so "nothing offered" is not mistaken for it.
open(os.path.join(CWD, "some-file"), "w").close()


def complete(script, func, words):
    """What func offers with the cursor at the end of words (the last one is being typed)."""
    prog = ('source "$1"; f=$2; shift 2; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
            'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; "$f"; printf "%s\\n" "${COMPREPLY[@]}"')
    r = run(["bash", "--norc", "--noprofile", "-c", prog, "_", os.path.join(COMPDIR, script),
             func] + words, cwd=CWD)
    if r.returncode != 0:
        return {"<bash failed: " + r.stderr.strip() + ">"}
    return {w for w in r.stdout.splitlines() if w}


def same(got, want, desc):
    ok(got == set(want), desc, f"offered only: {sorted(got - set(want))}\n"
       f"missing: {sorted(set(want) - got)}")


# --- vipd ---------------------------------------------------------------------------------
r = run([VIPD, "--help"])
ok(r.returncode == 0, "vipd --help runs", r.stderr)
vhelp = r.stdout
# Option lines: "  -c, --config FILE  ..." or "      --arp  ...".
opt_lines = [m for m in re.finditer(r"^ {2,6}(?:(-[a-zA-Z]), )?(--[a-z][a-z0-9-]*)( [A-Z]+)?",
                                    vhelp, re.M)]
vflags = set()
value_flags = []
for m in opt_lines:
    vflags.update(x for x in (m.group(1), m.group(2)) if x)
    if m.group(3):
        value_flags.append(m.group(2))
ok(len(vflags) > 30 and "--config" in vflags and "-c" in vflags,
   f"vipd --help lists {len(vflags)} flags (short and long)", vhelp)
same(complete("vipd", "_vipd", ["vipd", "-"]), vflags,
     "vipd -<TAB> offers exactly the flags vipd --help prints")
same(complete("vipd", "_vipd", ["vipd", "--"]), {f for f in vflags if f.startswith("--")},
     "vipd --<TAB> offers exactly the long flags")
same(complete("vipd", "_vipd", ["vipd", "--log"]), {"--log-level"}, "vipd --log<TAB> completes")
leaks = {f: sorted(complete("vipd", "_vipd", ["vipd", f, ""]))
         for f in value_flags}
leaks = {f: got for f, got in leaks.items() if any(w.startswith("-") for w in got)}
ok(not leaks, f"none of the {len(value_flags)} flags that take a value is followed by flags",
   leaks)


def help_values(text, flag):
    """The value names a help line gives for flag ("auto, xdp, ipvs or none")."""
    line = next(l for l in text.splitlines() if flag + " " in l)
    return set(re.findall(r"\b([a-z]+)\b", line.split(flag, 1)[1])) - {"or", "default"}


want = {"auto", "xdp", "ipvs", "none"}
same(complete("vipd", "_vipd", ["vipd", "--dataplane", ""]), want,
     "vipd --dataplane <TAB> offers auto xdp ipvs none")
ok(want <= help_values(vhelp, "--dataplane"), "vipd --help names the same data planes",
   help_values(vhelp, "--dataplane"))
want = {"error", "warn", "info", "debug"}
same(complete("vipd", "_vipd", ["vipd", "--log-level", ""]), want,
     "vipd --log-level <TAB> offers the four levels")
ok(want <= help_values(vhelp, "--log-level"), "vipd --help names the same levels")
same(complete("vipd", "_vipd", ["vipd", "-c", "some"]), {"some-file"},
     "vipd -c <TAB> completes file names")
ok("lo" in complete("vipd", "_vipd", ["vipd", "--adapter", ""]),
   "vipd --adapter <TAB> offers the interfaces")

# --- vipctl -------------------------------------------------------------------------------
r = run([VIPCTL, "--help"])
ok(r.returncode == 0, "vipctl --help runs", r.stderr)
chelp = r.stdout
commands_part, _, options_part = chelp.partition("\nOptions:")
# A command starts a line indented by two; its continuation lines are indented further.
blocks = {}
for line in commands_part.splitlines():
    if re.match(r"^  [a-z]", line):
        key = tuple(w for w in line.split()[:2] if re.fullmatch(r"[a-z]+", w))
        blocks[key] = line
    elif line.startswith("   ") and blocks:
        blocks[key] += line
cmds = {k[0] for k in blocks}
ok({"lb", "backend"} <= cmds, f"vipctl --help lists commands {sorted(cmds)}", chelp)
same(complete("vipctl", "_vipctl", ["vipctl", ""]), cmds,
     "vipctl <TAB> offers exactly the commands vipctl --help lists")
for c in sorted(cmds):
    subs = {k[1] for k in blocks if k[0] == c and len(k) > 1}
    if not subs:
        continue
    same(complete("vipctl", "_vipctl", ["vipctl", c, ""]), subs,
         f"vipctl {c} <TAB> offers exactly {' '.join(sorted(subs))}")
same(complete("vipctl", "_vipctl", ["vipctl", "--api", "http://127.0.0.1:1", "--json", "lb", ""]),
     {k[1] for k in blocks if k[0] == "lb"},
     "vipctl --api URL --json lb <TAB>: global options and their values are skipped")
gflags = set(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", options_part))
same(complete("vipctl", "_vipctl", ["vipctl", "-"]), gflags,
     "vipctl -<TAB> offers exactly the options vipctl --help lists")
create = set(re.findall(r"--[a-z][a-z-]*", blocks.get(("lb", "create"), "")))
ok(len(create) > 10, f"vipctl --help lists {len(create)} lb create flags")
same(complete("vipctl", "_vipctl", ["vipctl", "lb", "create", "web", "--"]), create,
     "vipctl lb create NAME --<TAB> offers exactly the lb create flags")
add = set(re.findall(r"--[a-z][a-z-]*", blocks.get(("backend", "add"), "")))
same(complete("vipctl", "_vipctl", ["vipctl", "backend", "add", "web", "10.0.0.1:80", "--"]),
     add, "vipctl backend add LB IP:PORT --<TAB> offers exactly the backend add flags")
for flag in ("--protocol", "--forwarding", "--check"):
    m = re.search(re.escape(flag) + r" ([a-z|]+)\]", blocks[("lb", "create")])
    want = set(m.group(1).split("|")) if m else {"<not in --help>"}
    same(complete("vipctl", "_vipctl", ["vipctl", "lb", "create", "web", flag, ""]), want,
         f"vipctl lb create NAME {flag} <TAB> offers what --help lists")
ok("rr" in complete("vipctl", "_vipctl", ["vipctl", "lb", "create", "web", "--scheduler", ""]),
   "vipctl lb create NAME --scheduler <TAB> offers schedulers")
same(complete("vipctl", "_vipctl", ["vipctl", "--token-file", "some"]), {"some-file"},
     "vipctl --token-file <TAB> completes file names")
done()
