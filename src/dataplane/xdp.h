/*
 * The XDP data plane: loads src/bpf/vipd.bpf.c (embedded as a skeleton), pins its maps and
 * program under a bpffs directory, attaches it to the adapter and to every interface that
 * backends are reached through, and keeps its maps in line with the model.
 *
 * A restarted vipd adopts the maps it finds pinned (or, where the pins are out of reach, the
 * maps of the vipd program attached to the adapter), so established flows keep their
 * backends; the new program replaces the old one on each interface in one atomic step.
 * Exiting leaves the program attached and the maps pinned: forwarding goes on while vipd
 * restarts. xdp_plane_remove() takes everything away.
 */
#ifndef VIPD_XDP_H
#define VIPD_XDP_H

#include <stdbool.h>

#include "dataplane/dataplane.h"

/*
 * How the program goes on the adapter when no vipd program is there yet. One that is (a
 * restart) is replaced in the mode it runs in, whatever this says: changing modes means
 * detaching first, which would stop forwarding for a moment.
 */
enum xdp_plane_mode {
	XDP_PLANE_ANY,     /* native where the driver has it, else generic with a warning */
	XDP_PLANE_NATIVE,  /* native, else -EOPNOTSUPP with nothing attached, pinned or set */
	XDP_PLANE_GENERIC, /* generic, without trying native */
};

struct xdp_options {
	const char *adapter; /* where VIP traffic arrives; required */
	const char *pin_dir; /* bpffs directory for pins, e.g. /sys/fs/bpf/vipd */
	enum xdp_plane_mode mode;
};

/*
 * Loads and attaches the program. 0 and *out, or -errno (logged; -EOPNOTSUPP with
 * XDP_PLANE_NATIVE on an adapter without native XDP). A start that fails leaves no program
 * attached that was not there before.
 */
int xdp_plane_new(const struct xdp_options *opt, struct dataplane **out);

/* Whether the program runs natively (in the driver) on the adapter, rather than generic. */
bool xdp_plane_native(const struct dataplane *dp);

/*
 * Detaches vipd's program from every interface of this network namespace that carries it and
 * removes the pin directory (`vipd --xdp-unload`). 0 or -errno (logged).
 */
int xdp_plane_remove(const struct xdp_options *opt);

#endif
