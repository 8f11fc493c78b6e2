/* ipvs_msg: IPVS generic-netlink requests as bytes, and dump replies parsed back. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/genetlink.h>
#include <linux/ip_vs.h>
#include <linux/netlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dataplane/ipvs_msg.h"

#define FAM 0x1d /* a family id as the controller would hand out */

/* ---- an independent writer for hand-made replies ---- */

struct wbuf {
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
	size_t msg;       /* start of the open message */
	size_t nests[4];
	int depth;
};

static void *w_room(struct wbuf *w, size_t n)
{
	void *p = w->buf + w->len;

	assert_true(w->len + NLMSG_ALIGN(n) <= sizeof(w->buf));
	memset(p, 0, NLMSG_ALIGN(n));
	w->len += NLMSG_ALIGN(n);
	return p;
}

static void w_msg(struct wbuf *w, uint16_t type, uint32_t seq, int cmd)
{
	struct nlmsghdr *nh;

	w->msg = w->len;
	nh = w_room(w, NLMSG_HDRLEN);
	nh->nlmsg_type = type;
	nh->nlmsg_seq = seq;
	nh->nlmsg_flags = NLM_F_MULTI;
	if (cmd >= 0) {
		struct genlmsghdr *g = w_room(w, GENL_HDRLEN);

		g->cmd = (uint8_t)cmd;
		g->version = 1;
	}
}

static void w_end(struct wbuf *w)
{
	((struct nlmsghdr *)(w->buf + w->msg))->nlmsg_len = (uint32_t)(w->len - w->msg);
}

static void w_attr(struct wbuf *w, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = w_room(w, NLA_HDRLEN + len);

	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	memcpy(a + 1, data, len);
}

static void w_u8(struct wbuf *w, uint16_t t, uint8_t v) { w_attr(w, t, &v, 1); }
static void w_u16(struct wbuf *w, uint16_t t, uint16_t v) { w_attr(w, t, &v, 2); }
static void w_u32(struct wbuf *w, uint16_t t, uint32_t v) { w_attr(w, t, &v, 4); }
static void w_u64(struct wbuf *w, uint16_t t, uint64_t v) { w_attr(w, t, &v, 8); }

static void w_addr(struct wbuf *w, uint16_t t, int af, const char *s)
{
	uint8_t a[16] = { 0 };

	assert_int_equal(inet_pton(af, s, a), 1);
	w_attr(w, t, a, 16);
}

static void w_nest(struct wbuf *w, uint16_t type)
{
	w->nests[w->depth++] = w->len;
	w_room(w, NLA_HDRLEN);
	((struct nlattr *)(w->buf + w->nests[w->depth - 1]))->nla_type = type | NLA_F_NESTED;
}

static void w_nest_end(struct wbuf *w)
{
	size_t off = w->nests[--w->depth];

	((struct nlattr *)(w->buf + off))->nla_len = (uint16_t)(w->len - off);
}

static void w_stats64(struct wbuf *w, uint16_t type, uint64_t base)
{
	w_nest(w, type);
	w_u64(w, IPVS_STATS_ATTR_CONNS, base + 1);
	w_u64(w, IPVS_STATS_ATTR_INPKTS, base + 2);
	w_u64(w, IPVS_STATS_ATTR_OUTPKTS, base + 3);
	w_u64(w, IPVS_STATS_ATTR_INBYTES, base + 4);
	w_u64(w, IPVS_STATS_ATTR_OUTBYTES, base + 5);
	w_u64(w, IPVS_STATS_ATTR_CPS, 999); /* rates: not read */
	w_nest_end(w);
}

/* A dumped service, as the kernel's ip_vs_genl_fill_service writes it. */
static void w_service(struct wbuf *w, uint32_t seq, int af, const char *addr, uint16_t port,
		      const char *sched, uint32_t flags, uint32_t timeout)
{
	struct ip_vs_flags fl = { .flags = flags, .mask = ~0u };

	w_msg(w, FAM, seq, IPVS_CMD_NEW_SERVICE);
	w_nest(w, IPVS_CMD_ATTR_SERVICE);
	w_u16(w, IPVS_SVC_ATTR_AF, (uint16_t)af);
	w_u16(w, IPVS_SVC_ATTR_PROTOCOL, IPPROTO_TCP);
	w_addr(w, IPVS_SVC_ATTR_ADDR, af, addr);
	w_u16(w, IPVS_SVC_ATTR_PORT, htons(port));
	w_attr(w, IPVS_SVC_ATTR_SCHED_NAME, sched, strlen(sched) + 1);
	w_attr(w, IPVS_SVC_ATTR_FLAGS, &fl, sizeof(fl));
	w_u32(w, IPVS_SVC_ATTR_TIMEOUT, timeout);
	w_u32(w, IPVS_SVC_ATTR_NETMASK, af == AF_INET ? 0xffffffffu : 128);
	w_stats64(w, IPVS_SVC_ATTR_STATS64, 100);
	w_nest_end(w);
	w_end(w);
}

static void w_done(struct wbuf *w, uint32_t seq, int error)
{
	w_msg(w, NLMSG_DONE, seq, -1);
	memcpy(w_room(w, sizeof(error)), &error, sizeof(error));
	w_end(w);
}

static void w_error(struct wbuf *w, uint32_t seq, int error)
{
	struct nlmsgerr *e;

	w_msg(w, NLMSG_ERROR, seq, -1);
	e = w_room(w, sizeof(*e));
	e->error = error;
	e->msg.nlmsg_seq = seq;
	w_end(w);
}

/* ---- what the parser hands over ---- */

struct got {
	struct ipvs_service svc[8];
	struct ipvs_dest dest[8];
	uint32_t ack_seq[8];
	int ack_err[8];
	size_t n_svc, n_dest, n_ack;
	int stop_after; /* service callback fails once this many were seen; 0: never */
};

static int got_service(void *arg, uint32_t seq, const struct ipvs_service *s)
{
	struct got *g = arg;

	(void)seq;
	if (g->n_svc < 8)
		g->svc[g->n_svc] = *s;
	g->n_svc++;
	return g->stop_after && (int)g->n_svc >= g->stop_after ? -ECANCELED : 0;
}

static int got_dest(void *arg, uint32_t seq, const struct ipvs_dest *d)
{
	struct got *g = arg;

	(void)seq;
	if (g->n_dest < 8)
		g->dest[g->n_dest] = *d;
	g->n_dest++;
	return 0;
}

static int got_ack(void *arg, uint32_t seq, int error)
{
	struct got *g = arg;

	if (g->n_ack < 8) {
		g->ack_seq[g->n_ack] = seq;
		g->ack_err[g->n_ack] = error;
	}
	g->n_ack++;
	return 0;
}

static const struct ipvs_reply_ops got_ops = {
	.service = got_service, .dest = got_dest, .ack = got_ack,
};

static int parse(const void *buf, size_t len, int dest_af, struct got *g)
{
	int stop = g->stop_after;

	memset(g, 0, sizeof(*g));
	g->stop_after = stop;
	return ipvs_reply_parse(buf, len, FAM, dest_af, &got_ops, g);
}

static void addr(struct ip_addr *a, const char *s)
{
	assert_int_equal(ip_addr_parse(s, a), 0);
}

static void sample_service(struct ipvs_service *s, const char *vip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	addr(&s->key.addr, vip);
	s->key.protocol = IPPROTO_TCP;
	s->key.port = port;
	strcpy(s->sched, "wrr");
	s->flags = IP_VS_SVC_F_PERSISTENT;
	s->timeout = 300;
	s->netmask = s->key.addr.family == AF_INET ? 0xffffffffu : 128;
}

/* ---- requests ---- */

static void test_service_roundtrip(void **state)
{
	struct wbuf w = { .len = 0 };
	struct ipvs_service s, v6;
	struct got g = { 0 };
	struct nlmsghdr *nh = (struct nlmsghdr *)w.buf;
	struct genlmsghdr *gh = NLMSG_DATA(nh);
	char ip[IP_ADDR_STRLEN];

	(void)state;
	sample_service(&s, "192.0.2.10", 443);
	assert_int_equal(ipvs_msg_service(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_NEW_SERVICE,
					  41, &s), 0);
	assert_int_equal(nh->nlmsg_len, w.len);
	assert_int_equal(nh->nlmsg_type, FAM);
	assert_int_equal(nh->nlmsg_seq, 41);
	assert_int_equal(nh->nlmsg_flags, NLM_F_REQUEST);
	assert_int_equal(gh->cmd, IPVS_CMD_NEW_SERVICE);
	assert_int_equal(gh->version, IPVS_GENL_VERSION);
	/* A second message goes right after the first, aligned. */
	sample_service(&v6, "2001:db8::5", 53);
	v6.key.protocol = IPPROTO_UDP;
	strcpy(v6.sched, "mh");
	v6.flags = 0;
	v6.timeout = 0;
	assert_int_equal(ipvs_msg_service(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_SET_SERVICE,
					  42, &v6), 0);
	assert_int_equal(w.len % 4, 0);
	/* The request's nest reads back as a dump entry (same attributes, no counters). */
	gh->cmd = IPVS_CMD_NEW_SERVICE;
	nh = (struct nlmsghdr *)(w.buf + NLMSG_ALIGN(nh->nlmsg_len));
	((struct genlmsghdr *)NLMSG_DATA(nh))->cmd = IPVS_CMD_NEW_SERVICE;
	assert_int_equal(parse(w.buf, w.len, 0, &g), 0);
	assert_int_equal(g.n_svc, 2);
	assert_int_equal(g.svc[0].key.addr.family, AF_INET);
	assert_string_equal(ip_addr_str(&g.svc[0].key.addr, ip), "192.0.2.10");
	assert_int_equal(g.svc[0].key.port, 443);
	assert_int_equal(g.svc[0].key.protocol, IPPROTO_TCP);
	assert_string_equal(g.svc[0].sched, "wrr");
	assert_int_equal(g.svc[0].flags, IP_VS_SVC_F_PERSISTENT);
	assert_int_equal(g.svc[0].timeout, 300);
	assert_int_equal(g.svc[0].netmask, 0xffffffffu);
	assert_string_equal(ip_addr_str(&g.svc[1].key.addr, ip), "2001:db8::5");
	assert_int_equal(g.svc[1].key.protocol, IPPROTO_UDP);
	assert_int_equal(g.svc[1].key.port, 53);
	assert_string_equal(g.svc[1].sched, "mh");
	assert_int_equal(g.svc[1].netmask, 128);
}

static void test_service_delete_is_key_only(void **state)
{
	struct wbuf w = { .len = 0 };
	struct ipvs_service s;
	struct got g = { 0 };

	(void)state;
	sample_service(&s, "10.1.2.3", 80);
	assert_int_equal(ipvs_msg_service(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_DEL_SERVICE,
					  1, &s), 0);
	((struct genlmsghdr *)NLMSG_DATA((struct nlmsghdr *)w.buf))->cmd = IPVS_CMD_NEW_SERVICE;
	assert_int_equal(parse(w.buf, w.len, 0, &g), 0);
	assert_int_equal(g.n_svc, 1);
	assert_int_equal(g.svc[0].key.port, 80);
	assert_string_equal(g.svc[0].sched, "");
	assert_int_equal(g.svc[0].flags, 0);
	assert_int_equal(g.svc[0].timeout, 0);
}

static void test_dest_roundtrip(void **state)
{
	struct wbuf w = { .len = 0 };
	struct ipvs_service s;
	struct ipvs_dest d;
	struct got g = { 0 };
	char ip[IP_ADDR_STRLEN];
	size_t first;

	(void)state;
	sample_service(&s, "192.0.2.10", 443);
	memset(&d, 0, sizeof(d));
	addr(&d.addr, "10.0.0.7");
	d.port = 8443;
	d.fwd = IP_VS_CONN_F_TUNNEL;
	d.weight = 0; /* drained */
	d.tun_type = IP_VS_CONN_F_TUNNEL_TYPE_IPIP;
	assert_int_equal(ipvs_msg_dest(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_NEW_DEST, 7,
				       &s.key, &d), 0);
	first = w.len;
	d.fwd = IP_VS_CONN_F_DROUTE;
	d.weight = 65535;
	assert_int_equal(ipvs_msg_dest(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_SET_DEST, 8,
				       &s.key, &d), 0);
	assert_int_equal(ipvs_msg_dest(w.buf, sizeof(w.buf), &w.len, FAM, IPVS_CMD_DEL_DEST, 9,
				       &s.key, &d), 0);
	for (size_t off = 0; off < w.len;) {
		struct nlmsghdr *nh = (struct nlmsghdr *)(w.buf + off);

		((struct genlmsghdr *)NLMSG_DATA(nh))->cmd = IPVS_CMD_NEW_DEST;
		off += NLMSG_ALIGN(nh->nlmsg_len);
	}
	assert_true(first > 0);
	/* A destination takes the family it names over the default. */
	assert_int_equal(parse(w.buf, w.len, AF_INET6, &g), 0);
	assert_int_equal(g.n_dest, 3);
	assert_int_equal(g.dest[0].addr.family, AF_INET);
	assert_string_equal(ip_addr_str(&g.dest[0].addr, ip), "10.0.0.7");
	assert_int_equal(g.dest[0].port, 8443);
	assert_int_equal(g.dest[0].fwd, IP_VS_CONN_F_TUNNEL);
	assert_int_equal(g.dest[0].weight, 0);
	assert_int_equal(g.dest[1].fwd, IP_VS_CONN_F_DROUTE);
	assert_int_equal(g.dest[1].weight, 65535);
	/* DEL names the destination only. */
	assert_int_equal(g.dest[2].port, 8443);
	assert_int_equal(g.dest[2].weight, 0);
	assert_int_equal(g.dest[2].fwd, 0);
}

static void test_requests_bad_args(void **state)
{
	char buf[256] __attribute__((aligned(4)));
	struct ipvs_service s;
	struct ipvs_dest d;
	size_t len = 0;

	(void)state;
	sample_service(&s, "192.0.2.1", 80);
	memset(&d, 0, sizeof(d));
	addr(&d.addr, "10.0.0.1");
	assert_int_equal(ipvs_msg_service(buf, sizeof(buf), &len, FAM, IPVS_CMD_NEW_DEST, 1, &s),
			 -EINVAL);
	assert_int_equal(ipvs_msg_dest(buf, sizeof(buf), &len, FAM, IPVS_CMD_SET_SERVICE, 1,
				       &s.key, &d), -EINVAL);
	d.addr.family = 0;
	assert_int_equal(ipvs_msg_dest(buf, sizeof(buf), &len, FAM, IPVS_CMD_NEW_DEST, 1, &s.key,
				       &d), -EINVAL);
	s.key.addr.family = AF_UNIX;
	assert_int_equal(ipvs_msg_service(buf, sizeof(buf), &len, FAM, IPVS_CMD_NEW_SERVICE, 1,
					  &s), -EINVAL);
	assert_int_equal(ipvs_msg_dump_dests(buf, sizeof(buf), &len, FAM, 1, &s.key), -EINVAL);
	assert_int_equal(len, 0);
	/* An unaligned start is refused rather than written crooked. */
	len = 2;
	assert_int_equal(ipvs_msg_dump_services(buf, sizeof(buf), &len, FAM, 1), -EMSGSIZE);
	assert_int_equal(len, 2);
}

/* Every buffer too small by any amount: -EMSGSIZE and nothing appended. */
static void test_requests_do_not_overflow(void **state)
{
	char buf[512] __attribute__((aligned(4)));
	struct ipvs_service s;
	struct ipvs_dest d;
	size_t need_svc = 0, need_dest = 0, need_dump = 0;

	(void)state;
	sample_service(&s, "2001:db8::1", 80);
	memset(&d, 0, sizeof(d));
	addr(&d.addr, "2001:db8::2");
	d.fwd = IP_VS_CONN_F_TUNNEL;
	assert_int_equal(ipvs_msg_service(buf, sizeof(buf), &need_svc, FAM, IPVS_CMD_NEW_SERVICE,
					  1, &s), 0);
	assert_int_equal(ipvs_msg_dest(buf, sizeof(buf), &need_dest, FAM, IPVS_CMD_NEW_DEST, 1,
				       &s.key, &d), 0);
	assert_int_equal(ipvs_msg_dump_dests(buf, sizeof(buf), &need_dump, FAM, 1, &s.key), 0);
	for (size_t cap = 0; cap < need_svc; cap++) {
		size_t len = 0;

		memset(buf, 0xaa, sizeof(buf));
		assert_int_equal(ipvs_msg_service(buf, cap, &len, FAM, IPVS_CMD_NEW_SERVICE, 1, &s),
				 -EMSGSIZE);
		assert_int_equal(len, 0);
		assert_int_equal((uint8_t)buf[cap], 0xaa);
	}
	for (size_t cap = 0; cap < need_dest; cap++) {
		size_t len = 0;

		memset(buf, 0xaa, sizeof(buf));
		assert_int_equal(ipvs_msg_dest(buf, cap, &len, FAM, IPVS_CMD_NEW_DEST, 1, &s.key,
					       &d), -EMSGSIZE);
		assert_int_equal(len, 0);
		assert_int_equal((uint8_t)buf[cap], 0xaa);
	}
	for (size_t cap = 0; cap < need_dump; cap++) {
		size_t len = 0;

		assert_int_equal(ipvs_msg_dump_dests(buf, cap, &len, FAM, 1, &s.key), -EMSGSIZE);
		assert_int_equal(len, 0);
	}
}

static void test_dump_requests(void **state)
{
	struct wbuf w = { .len = 0 };
	struct ipvs_service s;
	const struct nlmsghdr *nh = (const struct nlmsghdr *)w.buf;
	struct got g = { 0 };

	(void)state;
	assert_int_equal(ipvs_msg_dump_services(w.buf, sizeof(w.buf), &w.len, FAM, 5), 0);
	assert_int_equal(w.len, NLMSG_HDRLEN + GENL_HDRLEN);
	assert_int_equal(nh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	assert_int_equal(((const struct genlmsghdr *)NLMSG_DATA(nh))->cmd, IPVS_CMD_GET_SERVICE);
	w.len = 0;
	sample_service(&s, "198.51.100.1", 25);
	assert_int_equal(ipvs_msg_dump_dests(w.buf, sizeof(w.buf), &w.len, FAM, 6, &s.key), 0);
	assert_int_equal(nh->nlmsg_flags, NLM_F_REQUEST | NLM_F_DUMP);
	assert_int_equal(((const struct genlmsghdr *)NLMSG_DATA(nh))->cmd, IPVS_CMD_GET_DEST);
	((struct genlmsghdr *)NLMSG_DATA((struct nlmsghdr *)w.buf))->cmd = IPVS_CMD_NEW_SERVICE;
	assert_int_equal(parse(w.buf, w.len, 0, &g), 0);
	assert_int_equal(g.n_svc, 1);
	assert_int_equal(g.svc[0].key.port, 25);
}

/* ---- replies ---- */

static void build_dump(struct wbuf *w)
{
	uint32_t u = 7;

	w_service(w, 3, AF_INET, "192.0.2.1", 80, "rr", IP_VS_SVC_F_HASHED, 0);
	w_service(w, 3, AF_INET6, "2001:db8::1", 443, "mh",
		  IP_VS_SVC_F_HASHED | IP_VS_SVC_F_PERSISTENT, 600);
	/* A firewall-mark service: no protocol, address or port. */
	w_msg(w, FAM, 3, IPVS_CMD_NEW_SERVICE);
	w_nest(w, IPVS_CMD_ATTR_SERVICE);
	w_u16(w, IPVS_SVC_ATTR_AF, AF_INET);
	w_u32(w, IPVS_SVC_ATTR_FWMARK, 42);
	w_attr(w, IPVS_SVC_ATTR_SCHED_NAME, "wlc", 4);
	w_nest_end(w);
	w_end(w);
	/* Another command of the family, and an unknown message type, are skipped. */
	w_msg(w, FAM, 3, IPVS_CMD_GET_INFO);
	w_u32(w, 1, u);
	w_end(w);
	w_msg(w, 0x3ff, 3, IPVS_CMD_NEW_SERVICE);
	w_end(w);
	w_done(w, 3, 0);
}

static void test_service_dump(void **state)
{
	struct wbuf w = { .len = 0 };
	struct got g = { 0 };
	char ip[IP_ADDR_STRLEN];

	(void)state;
	build_dump(&w);
	assert_int_equal(parse(w.buf, w.len, 0, &g), 1);
	assert_int_equal(g.n_svc, 3);
	assert_string_equal(ip_addr_str(&g.svc[0].key.addr, ip), "192.0.2.1");
	assert_int_equal(g.svc[0].key.port, 80);
	assert_string_equal(g.svc[0].sched, "rr");
	assert_int_equal(g.svc[0].flags, IP_VS_SVC_F_HASHED);
	assert_int_equal(g.svc[0].stats.conns, 101);
	assert_int_equal(g.svc[0].stats.inpkts, 102);
	assert_int_equal(g.svc[0].stats.outpkts, 103);
	assert_int_equal(g.svc[0].stats.inbytes, 104);
	assert_int_equal(g.svc[0].stats.outbytes, 105);
	assert_int_equal(g.svc[1].key.addr.family, AF_INET6);
	assert_string_equal(ip_addr_str(&g.svc[1].key.addr, ip), "2001:db8::1");
	assert_int_equal(g.svc[1].timeout, 600);
	assert_int_equal(g.svc[1].netmask, 128);
	assert_int_equal(g.svc[2].fwmark, 42);
	assert_int_equal(g.svc[2].key.addr.family, AF_INET);
	assert_string_equal(g.svc[2].sched, "wlc");
	/* Without the DONE: 0, more to come. */
	assert_int_equal(parse(w.buf, w.len - NLMSG_LENGTH(4), 0, &g), 0);
	assert_int_equal(g.n_svc, 3);
	/* A callback's error stops the walk and comes back. */
	g.stop_after = 2;
	assert_int_equal(parse(w.buf, w.len, 0, &g), -ECANCELED);
	assert_int_equal(g.n_svc, 2);
}

static void test_dest_dump(void **state)
{
	struct wbuf w = { .len = 0 };
	struct got g = { 0 };
	char ip[IP_ADDR_STRLEN];
	uint64_t odd = 5;

	(void)state;
	/* A kernel with mixed families and 64-bit counters. */
	w_msg(&w, FAM, 9, IPVS_CMD_NEW_DEST);
	w_nest(&w, IPVS_CMD_ATTR_DEST);
	w_addr(&w, IPVS_DEST_ATTR_ADDR, AF_INET6, "fd00::7");
	w_u16(&w, IPVS_DEST_ATTR_PORT, htons(8080));
	w_u32(&w, IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_TUNNEL);
	w_u32(&w, IPVS_DEST_ATTR_WEIGHT, 3);
	w_u32(&w, IPVS_DEST_ATTR_U_THRESH, 0);
	w_u32(&w, IPVS_DEST_ATTR_L_THRESH, 0);
	w_u32(&w, IPVS_DEST_ATTR_ACTIVE_CONNS, 12);
	w_u32(&w, IPVS_DEST_ATTR_INACT_CONNS, 4);
	w_u32(&w, IPVS_DEST_ATTR_PERSIST_CONNS, 1);
	w_u16(&w, IPVS_DEST_ATTR_ADDR_FAMILY, AF_INET6);
	w_u8(&w, IPVS_DEST_ATTR_TUN_TYPE, IP_VS_CONN_F_TUNNEL_TYPE_IPIP);
	w_u16(&w, IPVS_DEST_ATTR_TUN_PORT, 0);
	w_u16(&w, IPVS_DEST_ATTR_TUN_FLAGS, 0);
	w_stats64(&w, IPVS_DEST_ATTR_STATS64, 1000);
	w_u64(&w, 200, odd); /* an attribute from a newer kernel */
	w_nest_end(&w);
	w_end(&w);
	/* An older kernel: no family attribute, only the 32/64-bit counters. */
	w_msg(&w, FAM, 9, IPVS_CMD_NEW_DEST);
	w_nest(&w, IPVS_CMD_ATTR_DEST);
	w_addr(&w, IPVS_DEST_ATTR_ADDR, AF_INET, "10.9.9.9");
	w_u16(&w, IPVS_DEST_ATTR_PORT, htons(53));
	w_u32(&w, IPVS_DEST_ATTR_FWD_METHOD, IP_VS_CONN_F_MASQ | IP_VS_CONN_F_NFCT);
	w_u32(&w, IPVS_DEST_ATTR_WEIGHT, 1);
	w_nest(&w, IPVS_DEST_ATTR_STATS);
	w_u32(&w, IPVS_STATS_ATTR_CONNS, 7);
	w_u32(&w, IPVS_STATS_ATTR_INPKTS, 8);
	w_u32(&w, IPVS_STATS_ATTR_OUTPKTS, 9);
	w_u64(&w, IPVS_STATS_ATTR_INBYTES, 1ull << 40);
	w_u64(&w, IPVS_STATS_ATTR_OUTBYTES, 11);
	w_nest_end(&w);
	w_nest_end(&w);
	w_end(&w);
	w_done(&w, 9, 0);
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), 1);
	assert_int_equal(g.n_dest, 2);
	assert_int_equal(g.dest[0].addr.family, AF_INET6);
	assert_string_equal(ip_addr_str(&g.dest[0].addr, ip), "fd00::7");
	assert_int_equal(g.dest[0].port, 8080);
	assert_int_equal(g.dest[0].fwd, IP_VS_CONN_F_TUNNEL);
	assert_int_equal(g.dest[0].weight, 3);
	assert_int_equal(g.dest[0].active_conns, 12);
	assert_int_equal(g.dest[0].inact_conns, 4);
	assert_int_equal(g.dest[0].stats.conns, 1001);
	assert_int_equal(g.dest[0].stats.outbytes, 1005);
	assert_int_equal(g.dest[1].addr.family, AF_INET);
	assert_string_equal(ip_addr_str(&g.dest[1].addr, ip), "10.9.9.9");
	assert_int_equal(g.dest[1].port, 53);
	assert_int_equal(g.dest[1].fwd & IP_VS_CONN_F_FWD_MASK, IP_VS_CONN_F_MASQ);
	assert_int_equal(g.dest[1].stats.conns, 7);
	assert_int_equal(g.dest[1].stats.inpkts, 8);
	assert_int_equal(g.dest[1].stats.inbytes, 1ull << 40);
	assert_int_equal(g.dest[1].active_conns, 0);
}

static void test_acks_and_errors(void **state)
{
	struct wbuf w = { .len = 0 };
	struct got g = { 0 };

	(void)state;
	w_error(&w, 11, -ESRCH);
	w_error(&w, 12, -EEXIST);
	w_error(&w, 13, 0);
	assert_int_equal(parse(w.buf, w.len, 0, &g), 0);
	assert_int_equal(g.n_ack, 3);
	assert_int_equal(g.ack_seq[0], 11);
	assert_int_equal(g.ack_err[0], -ESRCH);
	assert_int_equal(g.ack_err[1], -EEXIST);
	assert_int_equal(g.ack_seq[2], 13);
	assert_int_equal(g.ack_err[2], 0);
	/* Not an errno. */
	w.len = 0;
	w_error(&w, 1, 7);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	w.len = 0;
	w_error(&w, 1, -70000);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	/* Cut before the error code. */
	w.len = 0;
	w_error(&w, 1, -EPERM);
	((struct nlmsghdr *)w.buf)->nlmsg_len = NLMSG_HDRLEN + 2;
	assert_int_equal(parse(w.buf, NLMSG_HDRLEN + 2, 0, &g), -EPROTO);
	/* A dump that failed half-way says so in its DONE. */
	w.len = 0;
	w_done(&w, 2, -EMSGSIZE);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EMSGSIZE);
	/* A bare DONE (no error word) still ends the dump. */
	w.len = 0;
	w_msg(&w, NLMSG_DONE, 2, -1);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, 0, &g), 1);
	/* Nothing at all: nothing to hand over. */
	assert_int_equal(parse(w.buf, 0, 0, &g), 0);
}

static void test_malformed(void **state)
{
	struct wbuf w = { .len = 0 };
	struct got g = { 0 };
	struct nlattr *a;
	size_t nest;

	(void)state;
	/* A service without its port. */
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_SERVICE);
	w_nest(&w, IPVS_CMD_ATTR_SERVICE);
	w_u16(&w, IPVS_SVC_ATTR_AF, AF_INET);
	w_u16(&w, IPVS_SVC_ATTR_PROTOCOL, IPPROTO_TCP);
	w_addr(&w, IPVS_SVC_ATTR_ADDR, AF_INET, "192.0.2.1");
	w_nest_end(&w);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	/* A family IPVS does not have. */
	w.len = 0;
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_SERVICE);
	w_nest(&w, IPVS_CMD_ATTR_SERVICE);
	w_u16(&w, IPVS_SVC_ATTR_AF, AF_UNIX);
	w_u32(&w, IPVS_SVC_ATTR_FWMARK, 1);
	w_nest_end(&w);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	/* An IPv6 address cut to 4 bytes. */
	w.len = 0;
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_DEST);
	w_nest(&w, IPVS_CMD_ATTR_DEST);
	w_attr(&w, IPVS_DEST_ATTR_ADDR, "\x0a\0\0\x01", 4);
	w_u16(&w, IPVS_DEST_ATTR_PORT, htons(1));
	w_nest_end(&w);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), 0);
	assert_int_equal(g.n_dest, 1);
	assert_int_equal(parse(w.buf, w.len, AF_INET6, &g), -EPROTO);
	/* A weight of 3 bytes. */
	w.len = 0;
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_DEST);
	w_nest(&w, IPVS_CMD_ATTR_DEST);
	w_addr(&w, IPVS_DEST_ATTR_ADDR, AF_INET, "10.0.0.1");
	w_u16(&w, IPVS_DEST_ATTR_PORT, htons(1));
	w_attr(&w, IPVS_DEST_ATTR_WEIGHT, "abc", 3);
	w_nest_end(&w);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), -EPROTO);
	/* A nested attribute longer than its parent. */
	w.len = 0;
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_DEST);
	nest = w.len;
	w_nest(&w, IPVS_CMD_ATTR_DEST);
	w_addr(&w, IPVS_DEST_ATTR_ADDR, AF_INET, "10.0.0.1");
	w_u16(&w, IPVS_DEST_ATTR_PORT, htons(1));
	w_nest_end(&w);
	w_end(&w);
	a = (struct nlattr *)(w.buf + nest + NLA_HDRLEN);
	a->nla_len = 200;
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), -EPROTO);
	a->nla_len = 2; /* shorter than a header */
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), -EPROTO);
	/* A message claiming more than was received, or less than its header. */
	w.len = 0;
	w_service(&w, 1, AF_INET, "192.0.2.1", 80, "rr", 0, 0);
	assert_int_equal(parse(w.buf, w.len - 4, 0, &g), -EPROTO);
	((struct nlmsghdr *)w.buf)->nlmsg_len = 8;
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	/* No generic-netlink header. */
	w.len = 0;
	w_msg(&w, FAM, 1, -1);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, 0, &g), -EPROTO);
	/* A dest message without its nest. */
	w.len = 0;
	w_msg(&w, FAM, 1, IPVS_CMD_NEW_DEST);
	w_end(&w);
	assert_int_equal(parse(w.buf, w.len, AF_INET, &g), -EPROTO);
}

/* Every prefix of a good dump: no read past the end, and only whole entries handed over. */
static void test_truncated(void **state)
{
	struct wbuf w = { .len = 0 };
	struct got g = { 0 };

	(void)state;
	build_dump(&w);
	for (size_t len = 0; len < w.len; len++) {
		char *copy = malloc(len ? len : 1);
		int r;

		memcpy(copy, w.buf, len);
		r = parse(copy, len, 0, &g);
		assert_true(r == 0 || r == -EPROTO);
		assert_true(g.n_svc <= 3);
		free(copy);
	}
}

static void test_key_text(void **state)
{
	struct ipvs_service_key k, back;
	char buf[IPVS_KEY_STRLEN];
	static const char *const bad[] = {
		"", "tcp", "tcp 10.0.0.1", "tcp 10.0.0.1 0", "tcp 10.0.0.1 65536",
		"sctp 10.0.0.1 80", "tcp 10.0.0.1/32 80", "tcp 10.0.0.1 80 extra", "tcp host 80",
		"tcp 10.0.0.1 +80", "tcp 10.0.0.1 8x",
	};

	(void)state;
	memset(&k, 0, sizeof(k));
	addr(&k.addr, "2001:db8::1");
	k.protocol = IPPROTO_UDP;
	k.port = 65535;
	assert_string_equal(ipvs_key_format(&k, buf), "udp 2001:db8::1 65535");
	assert_int_equal(ipvs_key_parse(buf, strlen(buf), &back), 0);
	assert_true(ip_addr_equal(&back.addr, &k.addr));
	assert_int_equal(back.protocol, IPPROTO_UDP);
	assert_int_equal(back.port, 65535);
	assert_int_equal(ipvs_key_parse("tcp\t192.0.2.9  80", 17, &back), 0);
	assert_int_equal(back.protocol, IPPROTO_TCP);
	assert_int_equal(back.port, 80);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ipvs_key_parse(bad[i], strlen(bad[i]), &back), -EINVAL);
	/* An embedded NUL, and a line longer than any key. */
	assert_int_equal(ipvs_key_parse("tcp 10.0.0.1 80\0", 16, &back), -EINVAL);
	memset(buf, '1', sizeof(buf));
	assert_int_equal(ipvs_key_parse(buf, sizeof(buf), &back), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_service_roundtrip),
		cmocka_unit_test(test_service_delete_is_key_only),
		cmocka_unit_test(test_dest_roundtrip),
		cmocka_unit_test(test_requests_bad_args),
		cmocka_unit_test(test_requests_do_not_overflow),
		cmocka_unit_test(test_dump_requests),
		cmocka_unit_test(test_service_dump),
		cmocka_unit_test(test_dest_dump),
		cmocka_unit_test(test_acks_and_errors),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_key_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
