#!/bin/sh
# Builds the Debian package of vipd from this source tree into OUTDIR (default: the current
# directory) with dpkg-buildpackage, in a copy of the tree (contrib/debian becomes debian/),
# so the tree itself stays as it was. As root it installs the Debian packages it lacks.
#
#   contrib/build-deb.sh [OUTDIR]
#
# The XDP program is compiled against the build host's kernel BTF (/sys/kernel/btf/vmlinux);
# CO-RE relocates it on the host that loads it.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)

"$top/contrib/deps.sh" build
missing=""
for p in debhelper dpkg-dev fakeroot; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "build-deb: missing Debian packages:$missing (apt-get install$missing)" >&2
		exit 1
	fi
	echo "build-deb: installing$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The package's version is the changelog's; it must be the one configure.ac gives vipd.
ac=$(sed -n 's/^AC_INIT(\[vipd\], \[\([^]]*\)\].*/\1/p' "$top/configure.ac")
deb=$(sed -n '1s/^vipd (\([^)]*\)).*/\1/p' "$top/contrib/debian/changelog")
if [ "$ac" != "$deb" ]; then
	echo "build-deb: contrib/debian/changelog says $deb, configure.ac says $ac: add a changelog entry" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/vipd-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/vipd-$ac
mkdir "$src"
# The sources only: what git knows (tracked and new, not ignored), or without git every file
# but the build directories and what autoreconf made (dh_autoreconf makes it again).
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# shellcheck disable=SC2016 # $f is the inner shell's
	(cd "$top" && git ls-files -z -c -o --exclude-standard) |
		(cd "$top" && xargs -0 sh -c 'for f; do [ ! -e "$f" ] || printf "%s\0" "$f"; done' sh) |
		(cd "$top" && tar --null -T - -cf -) | tar -C "$src" -xf -
else
	tar -C "$top" --exclude=./build --exclude=./autom4te.cache --exclude=./debian -cf - . |
		tar -C "$src" -xf -
fi
rm -rf "$src/debian"
cp -a "$src/contrib/debian" "$src/debian"

(cd "$src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
	tail -n 60 "$work/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (last lines above)" >&2
	exit 1
}
for f in "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes; do
	[ -e "$f" ] && cp "$f" "$out/"
done
ls "$out"/vipd_"$ac"_*.deb
