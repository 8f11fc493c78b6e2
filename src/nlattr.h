/* Building netlink requests: what rtnetlink users (route lookup, addresses) share. */
#ifndef VIPD_NLATTR_H
#define VIPD_NLATTR_H

#include <linux/netlink.h>
#include <stddef.h>

/*
 * Appends one attribute (type, len bytes of data) to the message nh, whose buffer holds cap
 * bytes, and grows nh->nlmsg_len. 0, or -EMSGSIZE (nothing written) if it does not fit.
 */
int nlattr_put(struct nlmsghdr *nh, size_t cap, unsigned short type, const void *data,
	       size_t len);

#endif
