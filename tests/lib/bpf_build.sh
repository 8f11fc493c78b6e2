# Shared steps of the scripts that build BPF objects outside the autotools build (the bpf tier
# and the XDP benchmarks). Source it; CLANG, BPFTOOL and CC may be set by the caller.
#   bpf_vmlinux OUT                  OUT/vmlinux.h from the running kernel's BTF
#   bpf_object SRC OBJ [CLANG-ARGS]  SRC compiled for BPF as vipd's own object is (-mcpu=v3,
#                                    so what is tested or measured is the same code)
#   bpf_skeleton OBJ NAME HEADER     a libbpf skeleton of OBJ named NAME
# HOST_CFLAGS: the warnings-as-errors flags for the userspace programs.
CLANG=${CLANG:-clang}
BPFTOOL=${BPFTOOL:-bpftool}
CC=${CC:-gcc}
HOST_CFLAGS="-std=gnu11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Wshadow -Wstrict-prototypes \
-Wmissing-prototypes -Werror"

bpf_vmlinux() {
	"$BPFTOOL" btf dump file /sys/kernel/btf/vmlinux format c >"$1/vmlinux.h.tmp"
	mv "$1/vmlinux.h.tmp" "$1/vmlinux.h"
}

bpf_object() {
	local src=$1 obj=$2
	shift 2
	"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Wextra -Werror "$@" -c "$src" -o "$obj"
}

bpf_skeleton() {
	"$BPFTOOL" gen skeleton "$1" name "$2" >"$3.tmp"
	mv "$3.tmp" "$3"
}
