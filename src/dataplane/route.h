/*
 * What the kernel's routing and neighbour tables say, asked over rtnetlink: the XDP plane
 * needs, for every backend, the interface its packets leave through (to attach there and to
 * know the source address FULLNAT uses) and a resolved next hop (bpf_fib_lookup only
 * reports neighbours the kernel already knows).
 */
#ifndef VIPD_ROUTE_H
#define VIPD_ROUTE_H

#include <stddef.h>

#include "addr.h"

struct route_info {
	int oif;             /* output interface index */
	struct ip_addr src;  /* the kernel's preferred source towards dst (unset if none) */
	struct ip_addr via;  /* gateway; unset when dst is on-link */
	bool local;          /* dst is one of this node's own addresses */
};

/*
 * Parses the kernel's answer to RTM_GETROUTE (msg, len bytes as received) for a destination
 * of family AF_INET or AF_INET6. Pure. 0; the kernel's -errno for an error message; -EPROTO
 * for anything malformed; -ENETUNREACH without an output interface.
 */
int route_parse(const void *msg, size_t len, int family, struct route_info *out);

/* The route the kernel would use for a packet to dst ("ip route get"). 0 or -errno. */
int route_get(const struct ip_addr *dst, struct route_info *out);

/*
 * Has the kernel resolve addr's link-layer address on ifindex if it does not know it yet
 * (a neighbour "use", NTF_USE: an ARP / NDP solicitation, no data packet). 0 or -errno.
 */
int route_neigh_probe(int ifindex, const struct ip_addr *addr);

#endif
