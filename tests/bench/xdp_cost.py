"""Per-packet cost of vipd's XDP program (src/bpf/vipd.bpf.c) through BPF_PROG_TEST_RUN.

Builds tests/bench/build_xdp_cost.sh into $BUILDDIR/tests/bench/xdp_cost (a temporary directory
without BUILDDIR) and runs the runner, which measures in a private network namespace of its own
(it vanishes with the runner) NEW and ESTABLISHED flows for IPv4/IPv6, TCP/UDP, FULLNAT/NAT/DSR,
backend replies, and non-VIP packets, next to a MAC-swap floor measured the same way in the same
run. Every pass of a wrapper first writes the original frame back, the floor's too, so "x floor"
compares like with like; "net x" takes that restore out of both (against a MAC swap alone, what a
plain benchmark of a floor reports).

Prints a table: median ns per packet over the rounds, spread, ratios, the target, and the share
of passes that got the expected verdict (a case whose packets took another path measures nothing;
it is flagged and the exit status is then non-zero). Timings are reported, never asserted: the
exit status is non-zero only if the benchmark cannot run or cannot measure what it names.

NEW flows run on tables churned like a long-running node's (emptied between runs, elements
handed out in scattered order); XDP_COST_FRESH=1 loads a fresh object before every NEW run
instead (elements in memory order: cheaper, as a freshly started benchmark would see them).

Environment: XDP_COST_ROUNDS (default 7), XDP_COST_EST_PASSES (1000000),
XDP_COST_NEW_FLOWS (16384), XDP_COST_FRESH. Needs root (BPF, a network namespace), clang,
bpftool, libbpf."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

SRCDIR = os.path.abspath(
    os.environ.get("SRCDIR", os.path.join(os.path.dirname(__file__), "..", "..")))
BUILDDIR = os.environ.get("BUILDDIR")
ROUNDS = os.environ.get("XDP_COST_ROUNDS", "7")
EST_PASSES = os.environ.get("XDP_COST_EST_PASSES", "1000000")
NEW_FLOWS = os.environ.get("XDP_COST_NEW_FLOWS", "16384")
FRESH = os.environ.get("XDP_COST_FRESH") == "1"

# Targets: ratio to the floor (restore + MAC swap), by case group.
TARGETS = {"est-dsr": 4.0, "est-nat": 5.0, "new": 12.0, "nonvip": 2.0}
KATRAN = ("Katran stock XDP balancer, measured on this kind of machine: "
          "149 ns established, 355 ns new, floor 25 ns (6.0x and 14x)")


def fail(msg):
    print(f"bench xdp_cost: {msg}", file=sys.stderr)
    sys.exit(1)


def run(cmd, timeout):
    try:
        return subprocess.run(cmd, cwd=SRCDIR, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail(f"{cmd[0]} ran longer than {timeout} s")
    except OSError as e:
        fail(f"cannot run {cmd[0]}: {e}")


def parse(stdout):
    """case lines -> [(name, group, verdict)]; run lines -> {name: [records]}."""
    cases, runs = [], {}
    for line in stdout.splitlines():
        f = line.split()
        if f[:1] == ["case"] and len(f) == 4:
            cases.append((f[1], f[2], f[3]))
        elif f[:1] == ["run"] and len(f) == 10:
            runs.setdefault(f[1], []).append({
                "ns": int(f[3]), "passes": int(f[4]), "ok": int(f[5]), "stats": f[6],
                "out": f[7] == "1", "drops": int(f[8]), "reused": int(f[9])})
    return cases, runs


def report(cases, runs):
    med = {name: statistics.median(r["ns"] for r in rs) for name, rs in runs.items()}
    if "floor" not in med or "floor-bare" not in med:
        fail("the runner measured no floor")
    floor, bare = med["floor"], med["floor-bare"]
    restore = floor - bare
    print(f"vipd XDP per-packet cost (BPF_PROG_TEST_RUN, kernel's mean per pass, whole ns; "
          f"median of {ROUNDS} rounds;")
    print(f"ESTABLISHED/reply/non-VIP {EST_PASSES} passes of one packet, "
          f"NEW {NEW_FLOWS} passes each a new flow, on "
          f"{'freshly loaded' if FRESH else 'churned'} tables)")
    print(f"floor (restore + MAC swap + XDP_TX): {floor:g} ns; MAC swap alone: {bare:g} ns; "
          f"so restoring the frame costs {restore:g} ns")
    print()
    hdr = (f"{'case':<22} {'ns/pkt':>7} {'min-max':>10} {'x floor':>8} {'net x':>6} "
           f"{'target':>7} {'':4} {'verdict ok':>10} {'stats':>5} {'out':>4}")
    print(hdr)
    print("-" * len(hdr))
    misses, invalid = [], []
    for name, group, verdict in cases:
        rs = runs.get(name)
        if not rs:
            continue
        ns = med[name]
        lo, hi = min(r["ns"] for r in rs), max(r["ns"] for r in rs)
        ratio = ns / floor
        net = (ns - restore) / bare if group != "bare" else 1.0
        target = TARGETS.get(group)
        passes = sum(r["passes"] for r in rs)
        ok = sum(r["ok"] for r in rs)
        stats = {r["stats"] for r in rs}
        stats_s = "-" if stats == {"-"} else ("yes" if stats == {"1"} else "NO")
        out_s = "yes" if all(r["out"] for r in rs) else "NO"
        valid = ok == passes and stats_s != "NO" and out_s == "yes"
        mark = ""
        if not valid:
            mark = "INV"
            invalid.append(name)
        elif target is not None and ratio > target:
            mark = "MISS"
            misses.append(f"{name} {ratio:.1f}x > {target:g}x")
        target_s = f"<={target:g}x" if target is not None else "-"
        print(f"{name:<22} {ns:>7g} {f'{lo}-{hi}':>10} {ratio:>7.1f}x {net:>5.1f}x "
              f"{target_s:>7} {mark:4} {100.0 * ok / passes:>9.2f}% {stats_s:>5} {out_s:>4}")
        drops = sum(r["drops"] for r in rs)
        reused = sum(r["reused"] for r in rs)
        if drops or reused:
            print(f"{'':<22}   (drop counters +{drops}, FULLNAT ports reused +{reused})")
    print()
    print("verdict ok: passes with the expected verdict (VIP and reply: XDP_REDIRECT, "
          "non-VIP: XDP_PASS, floor: XDP_TX)")
    print("stats: vip_stats counted every pass (and new flow); out: the last pass's frame, "
          "checked field by field")
    print("net x: (case - restore) / MAC swap alone")
    print(f"reference: {KATRAN}")
    if misses:
        print(f"targets missed ({len(misses)}): " + "; ".join(misses))
    else:
        print("every valid case with a target meets it")
    if invalid:
        print(f"INVALID ({len(invalid)}), not the path named: " + ", ".join(invalid))
    return not invalid


def main():
    if os.geteuid() != 0:
        fail("needs root (BPF programs, a network namespace)")
    tmp = None
    if BUILDDIR:
        out = os.path.join(os.path.abspath(BUILDDIR), "tests", "bench", "xdp_cost")
    else:
        out = tmp = tempfile.mkdtemp(prefix="xdp_cost-")
    try:
        r = run(["bash", os.path.join(SRCDIR, "tests", "bench", "build_xdp_cost.sh"), out], 300)
        if r.returncode != 0:
            sys.stderr.write(r.stdout + r.stderr)
            fail("build failed")
        r = run([os.path.join(out, "xdp_cost"), ROUNDS, EST_PASSES, NEW_FLOWS], 300)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            fail(f"the runner exited with {r.returncode}")
        cases, runs = parse(r.stdout)
        if not cases or not runs:
            sys.stderr.write(r.stdout + r.stderr)
            fail("the runner printed no figures")
        if not report(cases, runs):
            fail("some cases did not take the path they name (see INVALID above)")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


main()
