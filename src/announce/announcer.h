/*
 * Announcers make the network send a VIP's traffic to this node: gratuitous
 * ARP / NDP on an adapter, or routes handed to BIRD. The reconciler passes the
 * full list of VIPs that should be announced now (those with a healthy backend);
 * anything the announcer holds beyond that list it withdraws.
 */
#ifndef VIPD_ANNOUNCER_H
#define VIPD_ANNOUNCER_H

#include <stddef.h>

#include "../addr.h"

struct announcer;

struct announcer_ops {
	const char *name;
	/* Announce exactly these VIPs. 0 or -errno (logged by the announcer). */
	int (*sync)(struct announcer *an, const struct ip_addr *vips, size_t n);
	/* Withdraw everything (SIGTERM). */
	void (*withdraw_all)(struct announcer *an);
	void (*free)(struct announcer *an);
};

struct announcer {
	const struct announcer_ops *ops;
};

/* Announces nothing: the operator routes VIPs to the node. */
struct announcer *announcer_none_new(void);

#endif
