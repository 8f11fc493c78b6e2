/*
 * The VIPs as addresses on an interface (the adapter in L2 mode, lo in BGP mode), so the
 * node accepts their traffic. vipd marks the addresses it adds with its own address
 * protocol (IFA_PROTO, kernel >= 5.18): that mark, not a list in memory, tells vipd's
 * addresses from the operator's, so a restarted vipd finds the ones it left behind and never
 * removes an address it did not add. IPv4 VIPs go on as /32, IPv6 as /128 with no duplicate
 * address detection (usable at once) and a preferred lifetime of 0, so the node's own
 * connections never pick a VIP as their source address.
 *
 * A netlink watch on the loop puts back a wanted address that someone removed by hand.
 */
#ifndef VIPD_ADDRS_H
#define VIPD_ADDRS_H

#include <stddef.h>
#include <stdint.h>

#include "addr.h"

/* The IFA_PROTO value of vipd's addresses ("proto 118" in iproute2 >= 6.2's ip addr). */
#define ADDRS_PROTO 118

struct ev_loop;
struct addrs;

/* Addresses on interface ifindex. NULL with errno set on failure. */
struct addrs *addrs_new(struct ev_loop *loop, int ifindex);

/*
 * Makes vips (any order, duplicates allowed) exactly the set of vipd's addresses on the
 * interface: adds the missing ones, removes vipd's others. A wanted address already there
 * without vipd's mark is the operator's and is left alone, now and when it stops being
 * wanted. Carries on past a failing address; 0 or the first -errno.
 */
int addrs_sync(struct addrs *a, const struct ip_addr *vips, size_t n);

/* Stops the watch; the addresses stay (a restarted vipd adopts them). */
void addrs_free(struct addrs *a);

/* One address as the kernel reports it in RTM_NEWADDR / RTM_DELADDR. */
struct addrs_entry {
	int ifindex;
	struct ip_addr addr;
	uint8_t prefixlen;
	uint8_t proto; /* IFA_PROTO, 0 when absent */
};

/*
 * Parses one rtnetlink message (len bytes from msg) of type RTM_NEWADDR or RTM_DELADDR.
 * Pure. 0; -ENOMSG for another message type; -EPROTO for anything malformed or of another
 * address family.
 */
int addrs_parse(const void *msg, size_t len, struct addrs_entry *out);

struct addrs_plan {
	struct ip_addr *add;
	size_t n_add;
	struct addrs_entry *del;
	size_t n_del;
};

/*
 * What addrs_sync changes, given the addresses on the interface (have, all of one
 * interface) and the wanted ones (want, sorted by ip_addr_cmp, no duplicates): every
 * wanted address missing from have (under any prefix length) is added; every address of
 * have with vipd's mark that is not wanted is removed. Pure. 0 or -ENOMEM; free the
 * result with addrs_plan_free.
 */
int addrs_plan(const struct addrs_entry *have, size_t n_have, const struct ip_addr *want,
	       size_t n_want, struct addrs_plan *out);
void addrs_plan_free(struct addrs_plan *p);

#endif
