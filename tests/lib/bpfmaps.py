"""Reading BPF maps through bpftool's JSON output, for tests and benchmarks."""


def _int(v):
    # bpftool prints raw bytes as a list of hex strings when the map has no BTF for them.
    if isinstance(v, list):
        return int.from_bytes(bytes(int(x, 16) for x in v), "little")
    return int(v)


def percpu_sum(entries):
    """`bpftool -j map dump` of a per-CPU array of integers -> {key: sum over CPUs}."""
    return {_int(e.get("key")): sum(_int(v.get("value")) for v in e.get("values", []))
            for e in entries}
