# Sourced by the demos (contrib/demo.sh, demo-ipvs.sh, demo-metal.sh) from the top of the
# tree, with TOP and B set: say(), and demo_prepare, which checks for root, installs the
# Debian dependencies the demo lacks and builds vipd into $B.
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

demo_prepare() { # NAME DEPS-KIND (build or test) WHY-ROOT
	if [ "$(id -u)" != 0 ]; then
		echo "$1: run as root ($3)" >&2
		exit 1
	fi
	say "installing dependencies (only what is missing)"
	./contrib/deps.sh "$2"
	say "building vipd into $B"
	autoreconf -fi >/dev/null 2>&1
	mkdir -p "$B"
	(cd "$B" && { [ -f Makefile ] || "$TOP/configure" >/dev/null; } && make -j"$(nproc)" >/dev/null)
	"$B/vipd" --version
}
