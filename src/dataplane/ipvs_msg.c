#include "dataplane/ipvs_msg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The kernel sends and expects addresses as a 16-byte union nf_inet_addr, whatever the family. */
#define IPVS_ADDR_LEN 16

/* ---- building ---- */

struct msgbuf {
	char *buf;
	size_t cap;
	size_t len;
	bool full; /* something did not fit: the message is dropped */
};

static void *mb_room(struct msgbuf *b, size_t n)
{
	void *p;

	if (b->full || n > b->cap - b->len) {
		b->full = true;
		return NULL;
	}
	p = b->buf + b->len;
	memset(p, 0, n);
	b->len += n;
	return p;
}

static void mb_put(struct msgbuf *b, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = mb_room(b, NLA_ALIGN(NLA_HDRLEN + len));

	if (!a)
		return;
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy((char *)a + NLA_HDRLEN, data, len);
}

static void mb_u8(struct msgbuf *b, uint16_t type, uint8_t v)
{
	mb_put(b, type, &v, sizeof(v));
}

static void mb_u16(struct msgbuf *b, uint16_t type, uint16_t v)
{
	mb_put(b, type, &v, sizeof(v));
}

static void mb_u32(struct msgbuf *b, uint16_t type, uint32_t v)
{
	mb_put(b, type, &v, sizeof(v));
}

static void mb_addr(struct msgbuf *b, uint16_t type, const struct ip_addr *a)
{
	uint8_t raw[IPVS_ADDR_LEN] = { 0 };

	memcpy(raw, a->bytes, ip_addr_len(a));
	mb_put(b, type, raw, sizeof(raw));
}

/* Opens a nested attribute; its offset, for mb_nest_end. */
static size_t mb_nest(struct msgbuf *b, uint16_t type)
{
	size_t off = b->len;
	struct nlattr *a = mb_room(b, NLA_HDRLEN);

	if (a)
		a->nla_type = type | NLA_F_NESTED;
	return off;
}

static void mb_nest_end(struct msgbuf *b, size_t off)
{
	if (!b->full && b->len - off <= 0xffff)
		((struct nlattr *)(b->buf + off))->nla_len = (uint16_t)(b->len - off);
	else
		b->full = true;
}

static int mb_begin(struct msgbuf *b, void *buf, size_t cap, size_t len, uint16_t family,
		    uint8_t cmd, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nh;
	struct genlmsghdr *g;

	if (len > cap || NLMSG_ALIGN(len) != len)
		return -EMSGSIZE;
	*b = (struct msgbuf){ .buf = buf, .cap = cap, .len = len };
	nh = mb_room(b, NLMSG_HDRLEN);
	g = mb_room(b, GENL_HDRLEN);
	if (!nh || !g)
		return -EMSGSIZE;
	nh->nlmsg_type = family;
	nh->nlmsg_flags = NLM_F_REQUEST | flags;
	nh->nlmsg_seq = seq;
	g->cmd = cmd;
	g->version = IPVS_GENL_VERSION;
	return 0;
}

/* Seals the message that started at start; 0 and *len advanced, or -EMSGSIZE. */
static int mb_finish(struct msgbuf *b, size_t start, size_t *len)
{
	if (b->full)
		return -EMSGSIZE;
	((struct nlmsghdr *)(b->buf + start))->nlmsg_len = (uint32_t)(b->len - start);
	*len = b->len;
	return 0;
}

static bool family_ok(int af)
{
	return af == AF_INET || af == AF_INET6;
}

static void put_service_key(struct msgbuf *b, const struct ipvs_service_key *k)
{
	mb_u16(b, IPVS_SVC_ATTR_AF, (uint16_t)k->addr.family);
	mb_u16(b, IPVS_SVC_ATTR_PROTOCOL, k->protocol);
	mb_addr(b, IPVS_SVC_ATTR_ADDR, &k->addr);
	mb_u16(b, IPVS_SVC_ATTR_PORT, htons(k->port));
}

int ipvs_msg_service(void *buf, size_t cap, size_t *len, uint16_t family, uint8_t cmd,
		     uint32_t seq, const struct ipvs_service *svc)
{
	struct msgbuf b;
	size_t start = *len, nest;
	int err;

	if ((cmd != IPVS_CMD_NEW_SERVICE && cmd != IPVS_CMD_SET_SERVICE &&
	     cmd != IPVS_CMD_DEL_SERVICE) || !family_ok(svc->key.addr.family))
		return -EINVAL;
	err = mb_begin(&b, buf, cap, start, family, cmd, 0, seq);
	if (err)
		return err;
	nest = mb_nest(&b, IPVS_CMD_ATTR_SERVICE);
	put_service_key(&b, &svc->key);
	if (cmd != IPVS_CMD_DEL_SERVICE) {
		/* The whole flag word is ours: mask all of it (HASHED is the kernel's own). */
		struct ip_vs_flags fl = { .flags = svc->flags, .mask = ~0u };

		mb_put(&b, IPVS_SVC_ATTR_SCHED_NAME, svc->sched, strnlen(svc->sched,
			IPVS_SCHED_MAX - 1) + 1);
		mb_put(&b, IPVS_SVC_ATTR_FLAGS, &fl, sizeof(fl));
		mb_u32(&b, IPVS_SVC_ATTR_TIMEOUT, svc->timeout);
		mb_u32(&b, IPVS_SVC_ATTR_NETMASK, svc->netmask);
	}
	mb_nest_end(&b, nest);
	return mb_finish(&b, start, len);
}

int ipvs_msg_dest(void *buf, size_t cap, size_t *len, uint16_t family, uint8_t cmd,
		  uint32_t seq, const struct ipvs_service_key *key, const struct ipvs_dest *d)
{
	struct msgbuf b;
	size_t start = *len, nest;
	int err;

	if ((cmd != IPVS_CMD_NEW_DEST && cmd != IPVS_CMD_SET_DEST && cmd != IPVS_CMD_DEL_DEST) ||
	    !family_ok(key->addr.family) || !family_ok(d->addr.family))
		return -EINVAL;
	err = mb_begin(&b, buf, cap, start, family, cmd, 0, seq);
	if (err)
		return err;
	nest = mb_nest(&b, IPVS_CMD_ATTR_SERVICE);
	put_service_key(&b, key);
	mb_nest_end(&b, nest);
	nest = mb_nest(&b, IPVS_CMD_ATTR_DEST);
	mb_addr(&b, IPVS_DEST_ATTR_ADDR, &d->addr);
	mb_u16(&b, IPVS_DEST_ATTR_PORT, htons(d->port));
	mb_u16(&b, IPVS_DEST_ATTR_ADDR_FAMILY, (uint16_t)d->addr.family);
	if (cmd != IPVS_CMD_DEL_DEST) {
		mb_u32(&b, IPVS_DEST_ATTR_FWD_METHOD, d->fwd);
		mb_u32(&b, IPVS_DEST_ATTR_WEIGHT, d->weight);
		mb_u32(&b, IPVS_DEST_ATTR_U_THRESH, d->u_thresh);
		mb_u32(&b, IPVS_DEST_ATTR_L_THRESH, d->l_thresh);
		if ((d->fwd & IP_VS_CONN_F_FWD_MASK) == IP_VS_CONN_F_TUNNEL)
			mb_u8(&b, IPVS_DEST_ATTR_TUN_TYPE, d->tun_type);
	}
	mb_nest_end(&b, nest);
	return mb_finish(&b, start, len);
}

int ipvs_msg_dump_services(void *buf, size_t cap, size_t *len, uint16_t family, uint32_t seq)
{
	struct msgbuf b;
	size_t start = *len;
	int err = mb_begin(&b, buf, cap, start, family, IPVS_CMD_GET_SERVICE, NLM_F_DUMP, seq);

	return err ? err : mb_finish(&b, start, len);
}

int ipvs_msg_dump_dests(void *buf, size_t cap, size_t *len, uint16_t family, uint32_t seq,
			const struct ipvs_service_key *key)
{
	struct msgbuf b;
	size_t start = *len, nest;
	int err;

	if (!family_ok(key->addr.family))
		return -EINVAL;
	err = mb_begin(&b, buf, cap, start, family, IPVS_CMD_GET_DEST, NLM_F_DUMP, seq);
	if (err)
		return err;
	nest = mb_nest(&b, IPVS_CMD_ATTR_SERVICE);
	put_service_key(&b, key);
	mb_nest_end(&b, nest);
	return mb_finish(&b, start, len);
}

/* ---- parsing ---- */

#define ATTR_MAX 16 /* above every attribute type read here */

/* Indexes the attributes in data[0..len) by type (the last of a type wins). 0 or -EPROTO. */
static int attrs_parse(const void *data, size_t len, const struct nlattr *tb[ATTR_MAX])
{
	const char *p = data;

	memset(tb, 0, ATTR_MAX * sizeof(tb[0]));
	while (len >= NLA_HDRLEN) {
		const struct nlattr *a = (const struct nlattr *)p;
		size_t step = NLA_ALIGN(a->nla_len);
		uint16_t type = a->nla_type & NLA_TYPE_MASK;

		if (a->nla_len < NLA_HDRLEN || a->nla_len > len)
			return -EPROTO;
		if (type < ATTR_MAX)
			tb[type] = a;
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
	return len ? -EPROTO : 0;
}

static size_t attr_len(const struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

static const void *attr_data(const struct nlattr *a)
{
	return (const char *)a + NLA_HDRLEN;
}

static int attrs_nested(const struct nlattr *a, const struct nlattr *tb[ATTR_MAX])
{
	return attrs_parse(attr_data(a), attr_len(a), tb);
}

/* An unsigned integer of exactly 1, 2, 4 or 8 bytes (the old stats mixed 32 and 64 bits). */
static int attr_uint(const struct nlattr *a, uint64_t *out)
{
	union { uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64; } v;

	if (!a)
		return 0;
	switch (attr_len(a)) {
	case 1: memcpy(&v.u8, attr_data(a), 1); *out = v.u8; return 0;
	case 2: memcpy(&v.u16, attr_data(a), 2); *out = v.u16; return 0;
	case 4: memcpy(&v.u32, attr_data(a), 4); *out = v.u32; return 0;
	case 8: memcpy(&v.u64, attr_data(a), 8); *out = v.u64; return 0;
	default: return -EPROTO;
	}
}

static int attr_u32(const struct nlattr *a, uint32_t *out)
{
	uint64_t v = 0;
	int err = attr_uint(a, &v);

	if (err || v > UINT32_MAX)
		return -EPROTO;
	if (a)
		*out = (uint32_t)v;
	return 0;
}

static int attr_port(const struct nlattr *a, uint16_t *out)
{
	uint16_t be;

	if (!a || attr_len(a) != sizeof(be))
		return -EPROTO;
	memcpy(&be, attr_data(a), sizeof(be));
	*out = ntohs(be);
	return 0;
}

static int attr_addr(const struct nlattr *a, int af, struct ip_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (!a || !family_ok(af))
		return -EPROTO;
	out->family = af;
	if (attr_len(a) < ip_addr_len(out))
		return -EPROTO;
	memcpy(out->bytes, attr_data(a), ip_addr_len(out));
	return 0;
}

static int stats_parse(const struct nlattr *a, struct ipvs_stats *s)
{
	const struct nlattr *tb[ATTR_MAX];
	int err;

	if (!a)
		return 0;
	err = attrs_nested(a, tb);
	if (!err)
		err = attr_uint(tb[IPVS_STATS_ATTR_CONNS], &s->conns);
	if (!err)
		err = attr_uint(tb[IPVS_STATS_ATTR_INPKTS], &s->inpkts);
	if (!err)
		err = attr_uint(tb[IPVS_STATS_ATTR_OUTPKTS], &s->outpkts);
	if (!err)
		err = attr_uint(tb[IPVS_STATS_ATTR_INBYTES], &s->inbytes);
	if (!err)
		err = attr_uint(tb[IPVS_STATS_ATTR_OUTBYTES], &s->outbytes);
	return err;
}

static int service_parse(const struct nlattr *nest, struct ipvs_service *s)
{
	const struct nlattr *tb[ATTR_MAX];
	uint64_t af = 0, proto = 0;
	int err;

	memset(s, 0, sizeof(*s));
	err = attrs_nested(nest, tb);
	if (err || !tb[IPVS_SVC_ATTR_AF] || attr_uint(tb[IPVS_SVC_ATTR_AF], &af) ||
	    !family_ok((int)af) || attr_u32(tb[IPVS_SVC_ATTR_FWMARK], &s->fwmark))
		return -EPROTO;
	if (s->fwmark) {
		s->key.addr.family = (int)af;
	} else if (attr_uint(tb[IPVS_SVC_ATTR_PROTOCOL], &proto) || !tb[IPVS_SVC_ATTR_PROTOCOL] ||
		   proto > UINT16_MAX || attr_addr(tb[IPVS_SVC_ATTR_ADDR], (int)af, &s->key.addr) ||
		   attr_port(tb[IPVS_SVC_ATTR_PORT], &s->key.port)) {
		return -EPROTO;
	}
	s->key.protocol = (uint16_t)proto;
	if (tb[IPVS_SVC_ATTR_SCHED_NAME]) {
		const struct nlattr *a = tb[IPVS_SVC_ATTR_SCHED_NAME];

		memcpy(s->sched, attr_data(a), attr_len(a) < IPVS_SCHED_MAX - 1 ? attr_len(a)
			: IPVS_SCHED_MAX - 1);
		s->sched[IPVS_SCHED_MAX - 1] = 0;
	}
	if (tb[IPVS_SVC_ATTR_FLAGS]) {
		if (attr_len(tb[IPVS_SVC_ATTR_FLAGS]) < sizeof(s->flags))
			return -EPROTO;
		memcpy(&s->flags, attr_data(tb[IPVS_SVC_ATTR_FLAGS]), sizeof(s->flags));
	}
	if (attr_u32(tb[IPVS_SVC_ATTR_TIMEOUT], &s->timeout) ||
	    attr_u32(tb[IPVS_SVC_ATTR_NETMASK], &s->netmask))
		return -EPROTO;
	/* 64-bit counters where the kernel has them, else the old ones. */
	return stats_parse(tb[IPVS_SVC_ATTR_STATS64] ? tb[IPVS_SVC_ATTR_STATS64]
						   : tb[IPVS_SVC_ATTR_STATS], &s->stats);
}

static int dest_parse(const struct nlattr *nest, int dest_af, struct ipvs_dest *d)
{
	const struct nlattr *tb[ATTR_MAX];
	uint64_t af = (uint64_t)dest_af, tun = 0;
	int err;

	memset(d, 0, sizeof(*d));
	err = attrs_nested(nest, tb);
	if (err || attr_uint(tb[IPVS_DEST_ATTR_ADDR_FAMILY], &af) || af > INT16_MAX ||
	    attr_addr(tb[IPVS_DEST_ATTR_ADDR], (int)af, &d->addr) ||
	    attr_port(tb[IPVS_DEST_ATTR_PORT], &d->port) ||
	    attr_u32(tb[IPVS_DEST_ATTR_FWD_METHOD], &d->fwd) ||
	    attr_u32(tb[IPVS_DEST_ATTR_WEIGHT], &d->weight) ||
	    attr_u32(tb[IPVS_DEST_ATTR_U_THRESH], &d->u_thresh) ||
	    attr_u32(tb[IPVS_DEST_ATTR_L_THRESH], &d->l_thresh) ||
	    attr_u32(tb[IPVS_DEST_ATTR_ACTIVE_CONNS], &d->active_conns) ||
	    attr_u32(tb[IPVS_DEST_ATTR_INACT_CONNS], &d->inact_conns) ||
	    attr_uint(tb[IPVS_DEST_ATTR_TUN_TYPE], &tun) || tun > UINT8_MAX)
		return -EPROTO;
	d->tun_type = (uint8_t)tun;
	return stats_parse(tb[IPVS_DEST_ATTR_STATS64] ? tb[IPVS_DEST_ATTR_STATS64]
						    : tb[IPVS_DEST_ATTR_STATS], &d->stats);
}

/* One message of the IPVS family: a dumped service or destination, or something skipped. */
static int family_msg(const struct nlmsghdr *nh, int dest_af, const struct ipvs_reply_ops *ops,
		      void *arg)
{
	const struct nlattr *tb[ATTR_MAX];
	const struct genlmsghdr *g;
	size_t plen = nh->nlmsg_len - NLMSG_HDRLEN;

	if (plen < GENL_HDRLEN)
		return -EPROTO;
	g = NLMSG_DATA(nh);
	if (attrs_parse((const char *)g + GENL_HDRLEN, plen - GENL_HDRLEN, tb))
		return -EPROTO;
	if (g->cmd == IPVS_CMD_NEW_SERVICE && ops->service) {
		struct ipvs_service s;

		if (!tb[IPVS_CMD_ATTR_SERVICE] || service_parse(tb[IPVS_CMD_ATTR_SERVICE], &s))
			return -EPROTO;
		return ops->service(arg, nh->nlmsg_seq, &s);
	}
	if (g->cmd == IPVS_CMD_NEW_DEST && ops->dest) {
		struct ipvs_dest d;

		if (!tb[IPVS_CMD_ATTR_DEST] || dest_parse(tb[IPVS_CMD_ATTR_DEST], dest_af, &d))
			return -EPROTO;
		return ops->dest(arg, nh->nlmsg_seq, &d);
	}
	return 0;
}

static bool errno_ok(int e)
{
	return e <= 0 && e > -4096;
}

int ipvs_reply_parse(const void *buf, size_t len, uint16_t family, int dest_af,
		     const struct ipvs_reply_ops *ops, void *arg)
{
	const char *p = buf;
	int err;

	while (len > 0) {
		const struct nlmsghdr *nh = (const struct nlmsghdr *)p;
		size_t step;

		if (len < NLMSG_HDRLEN || nh->nlmsg_len < NLMSG_HDRLEN || nh->nlmsg_len > len)
			return -EPROTO;
		if (nh->nlmsg_type == NLMSG_DONE) {
			int e = 0;

			/* A dump that failed half-way says why in its DONE. */
			if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(e)))
				memcpy(&e, NLMSG_DATA(nh), sizeof(e));
			return e < 0 && errno_ok(e) ? e : 1;
		} else if (nh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = NLMSG_DATA(nh);

			if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)) || !errno_ok(e->error))
				return -EPROTO;
			err = ops->ack ? ops->ack(arg, nh->nlmsg_seq, e->error) : 0;
		} else if (nh->nlmsg_type == family) {
			err = family_msg(nh, dest_af, ops, arg);
		} else {
			err = 0; /* NLMSG_NOOP, or another family on a shared socket */
		}
		if (err)
			return err;
		step = NLMSG_ALIGN(nh->nlmsg_len);
		if (step > len)
			step = len;
		p += step;
		len -= step;
	}
	return 0;
}

/* ---- the ownership file's text form ---- */

const char *ipvs_key_format(const struct ipvs_service_key *k, char buf[IPVS_KEY_STRLEN])
{
	char ip[IP_ADDR_STRLEN];

	snprintf(buf, IPVS_KEY_STRLEN, "%s %s %u", k->protocol == IPPROTO_UDP ? "udp" : "tcp",
		 ip_addr_str(&k->addr, ip), k->port);
	return buf;
}

int ipvs_key_parse(const char *s, size_t len, struct ipvs_service_key *out)
{
	char line[IPVS_KEY_STRLEN + 1], *save = NULL, *proto, *ip, *port, *end;
	unsigned long p;

	memset(out, 0, sizeof(*out));
	if (len >= sizeof(line) || memchr(s, 0, len))
		return -EINVAL;
	memcpy(line, s, len);
	line[len] = 0;
	proto = strtok_r(line, " \t", &save);
	ip = strtok_r(NULL, " \t", &save);
	port = strtok_r(NULL, " \t", &save);
	if (!proto || !ip || !port || strtok_r(NULL, " \t", &save))
		return -EINVAL;
	if (strcmp(proto, "tcp") == 0)
		out->protocol = IPPROTO_TCP;
	else if (strcmp(proto, "udp") == 0)
		out->protocol = IPPROTO_UDP;
	else
		return -EINVAL;
	if (ip_addr_parse(ip, &out->addr))
		return -EINVAL;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*end || port[0] < '0' || port[0] > '9' || p < 1 || p > 65535 || errno)
		return -EINVAL;
	out->port = (uint16_t)p;
	return 0;
}
