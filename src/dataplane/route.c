#include "dataplane/route.h"

#include <errno.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nlattr.h"

struct nl_req {
	struct nlmsghdr nh;
	union {
		struct rtmsg rt;
		struct ndmsg nd;
	};
	char attrs[64];
};

/* Sends one request and reads its one answer into buf: its length, or -errno. */
static ssize_t nl_transact(struct nl_req *r, char *buf, size_t buflen)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct timeval tv = { .tv_sec = 2 };
	ssize_t n;
	int fd;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	r->nh.nlmsg_seq = 1;
	if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		n = -errno;
	else if ((n = recv(fd, buf, buflen, 0)) < 0)
		n = -errno;
	close(fd);
	return n;
}

static void addr_from(struct ip_addr *a, int family, const struct rtattr *rta)
{
	size_t len = family == AF_INET ? 4 : 16;

	if (RTA_PAYLOAD(rta) < len)
		return;
	memset(a, 0, sizeof(*a));
	a->family = family;
	memcpy(a->bytes, RTA_DATA(rta), len);
}

int route_parse(const void *msg, size_t len, int family, struct route_info *out)
{
	const struct nlmsghdr *nh = msg;
	const struct rtattr *rta;
	int alen;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*nh) || nh->nlmsg_len > len || !NLMSG_OK(nh, len))
		return -EPROTO;
	if (nh->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(nh);

		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
			return -EPROTO;
		return e->error < 0 && e->error > -4096 ? e->error : -EPROTO;
	}
	if (nh->nlmsg_type != RTM_NEWROUTE || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return -EPROTO;
	out->local = ((const struct rtmsg *)NLMSG_DATA(nh))->rtm_type == RTN_LOCAL;
	alen = (int)RTM_PAYLOAD(nh);
	for (rta = RTM_RTA(NLMSG_DATA(nh)); RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
		if (rta->rta_type == RTA_OIF && RTA_PAYLOAD(rta) >= sizeof(int))
			memcpy(&out->oif, RTA_DATA(rta), sizeof(int));
		else if (rta->rta_type == RTA_PREFSRC)
			addr_from(&out->src, family, rta);
		else if (rta->rta_type == RTA_GATEWAY)
			addr_from(&out->via, family, rta);
	}
	return out->oif > 0 ? 0 : -ENETUNREACH;
}

int route_get(const struct ip_addr *dst, struct route_info *out)
{
	struct nl_req r;
	char buf[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t n;

	if (!ip_addr_is_set(dst))
		return -EINVAL;
	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	r.nh.nlmsg_type = RTM_GETROUTE;
	r.nh.nlmsg_flags = NLM_F_REQUEST;
	r.rt.rtm_family = (unsigned char)dst->family;
	r.rt.rtm_dst_len = dst->family == AF_INET ? 32 : 128;
	if (nlattr_put(&r.nh, sizeof(r), RTA_DST, dst->bytes, ip_addr_len(dst)))
		return -EMSGSIZE;
	n = nl_transact(&r, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return route_parse(buf, (size_t)n, dst->family, out);
}

int route_neigh_probe(int ifindex, const struct ip_addr *addr)
{
	struct nl_req r;
	char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
	const struct nlmsghdr *nh = (const struct nlmsghdr *)buf;
	ssize_t n;

	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	r.nh.nlmsg_type = RTM_NEWNEIGH;
	/* NTF_USE on an existing entry only kicks its state machine; create makes a new one. */
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
	r.nd.ndm_family = (unsigned char)addr->family;
	r.nd.ndm_ifindex = ifindex;
	r.nd.ndm_state = NUD_NONE;
	r.nd.ndm_flags = NTF_USE;
	if (nlattr_put(&r.nh, sizeof(r), NDA_DST, addr->bytes, ip_addr_len(addr)))
		return -EMSGSIZE;
	n = nl_transact(&r, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if ((size_t)n < NLMSG_LENGTH(sizeof(struct nlmsgerr)) || nh->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ((const struct nlmsgerr *)NLMSG_DATA(nh))->error;
}
