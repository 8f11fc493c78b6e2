#include "nlattr.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <string.h>

int nlattr_put(struct nlmsghdr *nh, size_t cap, unsigned short type, const void *data,
	       size_t len)
{
	size_t off = NLMSG_ALIGN(nh->nlmsg_len);
	struct rtattr *a;

	if (off > cap || RTA_SPACE(len) > cap - off || RTA_LENGTH(len) > 0xffff)
		return -EMSGSIZE;
	a = (struct rtattr *)((char *)nh + off);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	nh->nlmsg_len = (unsigned)(off + RTA_ALIGN(a->rta_len));
	return 0;
}
