/*
 * Local IPAM: a VIP source over configured ranges ("A-B", CIDR or a single
 * address; IPv4 and IPv6). Hands out the lowest free address, never one address
 * twice. Which addresses are used is not kept here: the store reserves every
 * VIP it restores from the state file, so the state file is the one truth.
 */
#ifndef VIPD_IPAM_H
#define VIPD_IPAM_H

#include <stddef.h>

#include "../src/addr.h"
#include "../src/vipsrc.h"

struct ipam_range {
	struct ip_addr first;
	struct ip_addr last; /* inclusive, same family as first */
};

/*
 * Pure parser: "192.168.1.200-192.168.1.250", "10.0.0.0/24" (an IPv4 prefix
 * shorter than /31 leaves out its network and broadcast addresses),
 * "2001:db8::/120", "192.0.2.7". 0, or -EINVAL with err filled.
 */
int ipam_range_parse(const char *s, struct ipam_range *out, char *err, size_t errlen);
/* Whether two ranges share an address. */
int ipam_ranges_overlap(const struct ipam_range *a, const struct ipam_range *b);

/* A source over copies of these ranges, in this order; NULL on ENOMEM. */
struct vip_source *ipam_new(const struct ipam_range *ranges, size_t n);

#endif
