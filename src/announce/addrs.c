#include "announce/addrs.h"

#include <errno.h>
#include <ev.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "nlattr.h"

/*
 * Raw rtnetlink rather than libnl-route: libnl 3.7's rtnl_addr knows no IFA_PROTO (its parser
 * drops the attribute), and the mark is what this module is about.
 */

/* Folds a hand-made `ip addr flush` (many notifications) into one repair pass. */
#define ADDRS_REPAIR_DELAY_S 0.05
/* Against a tool that keeps removing what it does not know (a network manager), repairs
 * slow down to one per this many seconds instead of fighting it at full speed. */
#define ADDRS_REPAIR_BACKOFF_S 2.0
#define ADDRS_DUMP_BUF 65536

struct addrs {
	struct ev_loop *loop;
	int ifindex;
	char ifname[IF_NAMESIZE];
	int fd;       /* requests and their answers */
	int watch_fd; /* address notifications */
	uint32_t seq;
	ev_io watch;
	ev_timer repair;
	ev_tstamp last_repair;
	struct ip_addr *want; /* sorted, unique */
	size_t n_want;
};

struct addrs_req {
	struct nlmsghdr nh;
	struct ifaddrmsg ifa;
	char attrs[128];
};

static void req_attr(struct addrs_req *r, unsigned short type, const void *data, size_t len)
{
	/* Sized for the few attributes of one address: never short. */
	nlattr_put(&r->nh, sizeof(*r), type, data, len);
}

int addrs_parse(const void *msg, size_t len, struct addrs_entry *out)
{
	const struct nlmsghdr *nh = msg;
	const struct ifaddrmsg *ifa;
	const struct rtattr *rta, *local = NULL, *address = NULL, *use;
	size_t alen_want;
	int alen;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(*nh) || nh->nlmsg_len > len || !NLMSG_OK(nh, len))
		return -EPROTO;
	if (nh->nlmsg_type != RTM_NEWADDR && nh->nlmsg_type != RTM_DELADDR)
		return -ENOMSG;
	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
		return -EPROTO;
	ifa = NLMSG_DATA(nh);
	if (ifa->ifa_family == AF_INET)
		alen_want = 4;
	else if (ifa->ifa_family == AF_INET6)
		alen_want = 16;
	else
		return -EPROTO;
	if (ifa->ifa_prefixlen > alen_want * 8)
		return -EPROTO;
	alen = (int)IFA_PAYLOAD(nh);
	for (rta = IFA_RTA(ifa); RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
		if (rta->rta_type == IFA_LOCAL)
			local = rta;
		else if (rta->rta_type == IFA_ADDRESS)
			address = rta;
		else if (rta->rta_type == IFA_PROTO && RTA_PAYLOAD(rta) >= 1)
			out->proto = *(const uint8_t *)RTA_DATA(rta);
	}
	/* IFA_LOCAL is the node's own address; IFA_ADDRESS is the peer on point-to-point
	 * links and the only one IPv6 usually sends. */
	use = local ? local : address;
	if (!use || RTA_PAYLOAD(use) < alen_want)
		return -EPROTO;
	out->ifindex = (int)ifa->ifa_index;
	out->prefixlen = ifa->ifa_prefixlen;
	out->addr.family = ifa->ifa_family;
	memcpy(out->addr.bytes, RTA_DATA(use), alen_want);
	return 0;
}

static bool wanted(const struct ip_addr *want, size_t n, const struct ip_addr *a)
{
	return ip_addr_in_sorted(want, n, a);
}

int addrs_plan(const struct addrs_entry *have, size_t n_have, const struct ip_addr *want,
	       size_t n_want, struct addrs_plan *out)
{
	memset(out, 0, sizeof(*out));
	if (n_want && !(out->add = calloc(n_want, sizeof(*out->add))))
		return -ENOMEM;
	if (n_have && !(out->del = calloc(n_have, sizeof(*out->del)))) {
		addrs_plan_free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_want; i++) {
		bool present = false;

		for (size_t j = 0; j < n_have && !present; j++)
			present = ip_addr_equal(&have[j].addr, &want[i]);
		if (!present)
			out->add[out->n_add++] = want[i];
	}
	for (size_t j = 0; j < n_have; j++)
		if (have[j].proto == ADDRS_PROTO && !wanted(want, n_want, &have[j].addr))
			out->del[out->n_del++] = have[j];
	return 0;
}

void addrs_plan_free(struct addrs_plan *p)
{
	free(p->add);
	free(p->del);
	memset(p, 0, sizeof(*p));
}

static int nl_socket(int groups)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = (unsigned)groups };
	int fd, one = 1;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | (groups ? SOCK_NONBLOCK : 0),
		    NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (groups) {
		int rcvbuf = 1 << 20;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	} else {
		struct timeval tv = { .tv_sec = 2 };

		/* The kernel answers at once; the timeout only guards against a lost answer. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		/* Dumps filtered by interface in the kernel (>= 4.20); filtered here as well. */
		setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one));
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int nl_send(struct addrs *a, struct addrs_req *r)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };

	r->nh.nlmsg_seq = ++a->seq;
	if (sendto(a->fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

/*
 * Reads the answers to the last request until its end (an ack, an error or NLMSG_DONE),
 * handing each data message to fn. Answers to earlier requests that timed out are skipped
 * by sequence number. 0 or -errno.
 */
static int nl_answers(struct addrs *a, char *buf, size_t buflen,
		      int (*fn)(struct addrs *a, const struct nlmsghdr *nh, void *arg), void *arg)
{
	for (;;) {
		ssize_t n = recv(a->fd, buf, buflen, 0);
		const struct nlmsghdr *nh;
		size_t left;

		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		left = (size_t)n;
		for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			int err;

			if (nh->nlmsg_seq != a->seq)
				continue;
			if (nh->nlmsg_type == NLMSG_DONE) {
				int derr = 0;

				/* A dump that failed part way says so in its DONE message. */
				if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(derr)))
					memcpy(&derr, NLMSG_DATA(nh), sizeof(derr));
				return derr < 0 ? derr : 0;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = NLMSG_DATA(nh);

				if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
					return -EPROTO;
				return e->error;
			}
			if (fn && (err = fn(a, nh, arg)) < 0)
				return err;
		}
	}
}

struct dump {
	struct addrs_entry *v;
	size_t n, cap;
};

static int dump_one(struct addrs *a, const struct nlmsghdr *nh, void *arg)
{
	struct dump *d = arg;
	struct addrs_entry e;

	if (addrs_parse(nh, nh->nlmsg_len, &e) < 0 || e.ifindex != a->ifindex)
		return 0;
	if (d->n == d->cap) {
		size_t cap = d->cap ? 2 * d->cap : 16;
		struct addrs_entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = e;
	return 0;
}

static int addrs_dump(struct addrs *a, struct dump *d)
{
	struct addrs_req r;
	char *buf;
	int err;

	memset(d, 0, sizeof(*d));
	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifa));
	r.nh.nlmsg_type = RTM_GETADDR;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	r.ifa.ifa_family = AF_UNSPEC;
	r.ifa.ifa_index = (unsigned)a->ifindex;
	buf = malloc(ADDRS_DUMP_BUF);
	if (!buf)
		return -ENOMEM;
	err = nl_send(a, &r);
	if (!err)
		err = nl_answers(a, buf, ADDRS_DUMP_BUF, dump_one, d);
	free(buf);
	if (err) {
		free(d->v);
		memset(d, 0, sizeof(*d));
	}
	return err;
}

static int addrs_change(struct addrs *a, int type, const struct ip_addr *ip, uint8_t prefixlen)
{
	char buf[1024] __attribute__((aligned(NLMSG_ALIGNTO)));
	struct addrs_req r;
	size_t alen = ip_addr_len(ip);
	int err;

	memset(&r, 0, sizeof(r));
	r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifa));
	r.nh.nlmsg_type = (unsigned short)type;
	r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	r.ifa.ifa_family = (unsigned char)ip->family;
	r.ifa.ifa_prefixlen = prefixlen;
	r.ifa.ifa_index = (unsigned)a->ifindex;
	req_attr(&r, IFA_LOCAL, ip->bytes, alen);
	req_attr(&r, IFA_ADDRESS, ip->bytes, alen);
	if (type == RTM_NEWADDR) {
		uint8_t proto = ADDRS_PROTO;

		r.nh.nlmsg_flags |= NLM_F_CREATE | NLM_F_EXCL;
		req_attr(&r, IFA_PROTO, &proto, sizeof(proto));
		if (ip->family == AF_INET6) {
			uint32_t flags = IFA_F_NODAD;
			struct ifa_cacheinfo ci = { .ifa_prefered = 0, .ifa_valid = 0xffffffffu };

			r.ifa.ifa_flags = IFA_F_NODAD;
			req_attr(&r, IFA_FLAGS, &flags, sizeof(flags));
			req_attr(&r, IFA_CACHEINFO, &ci, sizeof(ci));
		}
	}
	err = nl_send(a, &r);
	if (!err)
		err = nl_answers(a, buf, sizeof(buf), NULL, NULL);
	return err;
}

static int full_len(const struct ip_addr *ip)
{
	return ip->family == AF_INET ? 32 : 128;
}

/* Brings the interface to a->want. 0 or the first -errno. */
static int addrs_apply(struct addrs *a)
{
	struct addrs_plan p;
	struct dump d;
	char s[IP_ADDR_STRLEN];
	int err, first = 0;

	err = addrs_dump(a, &d);
	if (err) {
		log_warn("msg=\"cannot list addresses\" iface=%s err=\"%s\"", a->ifname,
			 strerror(-err));
		return err;
	}
	err = addrs_plan(d.v, d.n, a->want, a->n_want, &p);
	free(d.v);
	if (err)
		return err;
	for (size_t i = 0; i < p.n_del; i++) {
		const struct addrs_entry *e = &p.del[i];

		err = addrs_change(a, RTM_DELADDR, &e->addr, e->prefixlen);
		/* Gone already (someone else, or the interface went down): the goal holds. */
		if (err == -EADDRNOTAVAIL || err == -ENOENT || err == -ENODEV)
			err = 0;
		if (err) {
			log_warn("msg=\"cannot remove address\" iface=%s addr=%s/%u err=\"%s\"",
				 a->ifname, ip_addr_str(&e->addr, s), e->prefixlen, strerror(-err));
			first = first ? first : err;
		} else {
			log_info("msg=\"address removed\" iface=%s addr=%s/%u", a->ifname,
				 ip_addr_str(&e->addr, s), e->prefixlen);
		}
	}
	for (size_t i = 0; i < p.n_add; i++) {
		const struct ip_addr *ip = &p.add[i];

		err = addrs_change(a, RTM_NEWADDR, ip, (uint8_t)full_len(ip));
		/* Added by someone else since the dump: theirs, so it stays unmarked. */
		if (err == -EEXIST)
			err = 0;
		if (err) {
			log_warn("msg=\"cannot add address\" iface=%s addr=%s/%d err=\"%s\"",
				 a->ifname, ip_addr_str(ip, s), full_len(ip), strerror(-err));
			first = first ? first : err;
		} else {
			log_info("msg=\"address added\" iface=%s addr=%s/%d", a->ifname,
				 ip_addr_str(ip, s), full_len(ip));
		}
	}
	addrs_plan_free(&p);
	return first;
}

int addrs_sync(struct addrs *a, const struct ip_addr *vips, size_t n)
{
	struct ip_addr *want = NULL;
	size_t w = 0;

	if (n) {
		want = malloc(n * sizeof(*want));
		if (!want)
			return -ENOMEM;
		memcpy(want, vips, n * sizeof(*want));
		w = ip_addr_sort_unique(want, n);
	}
	/* The wanted set changes first, so the watch ignores the removals made below. */
	free(a->want);
	a->want = want;
	a->n_want = w;
	ev_timer_stop(a->loop, &a->repair);
	return addrs_apply(a);
}

static void repair_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct addrs *a = w->data;

	(void)revents;
	a->last_repair = ev_now(loop);
	addrs_apply(a);
}

static void watch_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct addrs *a = w->data;
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	bool repair = false;

	(void)revents;
	for (;;) {
		ssize_t n = recv(a->watch_fd, buf, sizeof(buf), 0);
		const struct nlmsghdr *nh;
		size_t left;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* Notifications were lost: compare with the kernel instead. */
				log_warn("msg=\"address notifications overflowed; checking the "
					 "interface\" iface=%s", a->ifname);
				repair = true;
				continue;
			}
			break;
		}
		left = (size_t)n;
		for (nh = (const struct nlmsghdr *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			struct addrs_entry e;
			char s[IP_ADDR_STRLEN];

			if (nh->nlmsg_type != RTM_DELADDR || addrs_parse(nh, nh->nlmsg_len, &e) < 0 ||
			    e.ifindex != a->ifindex || !wanted(a->want, a->n_want, &e.addr))
				continue;
			log_warn("msg=\"address removed by someone else; putting it back\" iface=%s "
				 "addr=%s/%u", a->ifname, ip_addr_str(&e.addr, s), e.prefixlen);
			repair = true;
		}
	}
	if (repair && !ev_is_active(&a->repair)) {
		bool recent = a->last_repair && ev_now(loop) - a->last_repair < ADDRS_REPAIR_BACKOFF_S;

		ev_timer_set(&a->repair, recent ? ADDRS_REPAIR_BACKOFF_S : ADDRS_REPAIR_DELAY_S, 0.);
		ev_timer_start(loop, &a->repair);
	}
}

struct addrs *addrs_new(struct ev_loop *loop, int ifindex)
{
	struct addrs *a;
	int err;

	a = calloc(1, sizeof(*a));
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	a->loop = loop;
	a->ifindex = ifindex;
	a->fd = a->watch_fd = -1;
	if (!if_indextoname((unsigned)ifindex, a->ifname)) {
		err = -errno;
		goto fail;
	}
	a->fd = nl_socket(0);
	if (a->fd < 0) {
		err = a->fd;
		goto fail;
	}
	a->watch_fd = nl_socket(RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
	if (a->watch_fd < 0) {
		err = a->watch_fd;
		goto fail;
	}
	ev_io_init(&a->watch, watch_cb, a->watch_fd, EV_READ);
	a->watch.data = a;
	ev_io_start(loop, &a->watch);
	ev_timer_init(&a->repair, repair_cb, ADDRS_REPAIR_DELAY_S, 0.);
	a->repair.data = a;
	return a;
fail:
	if (a->fd >= 0)
		close(a->fd);
	free(a);
	errno = -err;
	return NULL;
}

void addrs_free(struct addrs *a)
{
	if (!a)
		return;
	ev_io_stop(a->loop, &a->watch);
	ev_timer_stop(a->loop, &a->repair);
	close(a->watch_fd);
	close(a->fd);
	free(a->want);
	free(a);
}
