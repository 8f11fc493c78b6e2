/*
 * The XDP program run through BPF_PROG_TEST_RUN on crafted frames in a private network
 * namespace (see xdp_env.h). Every forwarded frame is compared byte for byte with the frame
 * the test builds itself, checksums computed from scratch, and the checksums are verified
 * again on their own.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pkt.h"
#include "xdp_env.h"

#define MAC_VC0 "02:00:00:00:0c:00"
#define MAC_VB0 "02:00:00:00:0b:00"
#define MAC_CLIENT "02:00:00:00:0c:02"
#define MAC_GW_C "02:00:00:00:0c:fe"

static const uint8_t test_payload[] = "who are you? vipd";

struct test_out {
	uint8_t in[2048];
	size_t in_len;
	uint8_t buf[2048];
	size_t len;
	uint32_t verdict;
	struct pkt_view v; /* of buf */
	int parsed;	   /* pkt_parse(buf) == 0 */
};

static int test_setup(void **state)
{
	struct xdp_env *e = calloc(1, sizeof(*e));

	if (!e || env_load(e)) {
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int test_teardown(void **state)
{
	struct xdp_env *e = *state;

	env_unload(e);
	free(e);
	return 0;
}

static void test_run_raw(struct xdp_env *e, int ifindex, const uint8_t *in, size_t len,
			 struct test_out *o)
{
	memcpy(o->in, in, len);
	o->in_len = len;
	o->len = sizeof(o->buf);
	assert_int_equal(env_run(e, ifindex, in, len, o->buf, &o->len, &o->verdict), 0);
	o->parsed = pkt_parse(o->buf, o->len, &o->v) == 0;
}

static void test_run(struct xdp_env *e, int ifindex, const struct pkt_spec *s, struct test_out *o)
{
	uint8_t in[2048];
	size_t n = pkt_build(s, in, sizeof(in));

	assert_true(n > 0);
	test_run_raw(e, ifindex, in, n, o);
}

/* The frame must be exactly the one want describes, with checksums that verify. */
static void test_expect(const struct test_out *o, uint32_t verdict, const struct pkt_spec *want)
{
	uint8_t w[2048];
	size_t n = pkt_build(want, w, sizeof(w));

	assert_int_equal(o->verdict, verdict);
	assert_true(pkt_same(o->buf, o->len, w, n));
	if (want->family == 4)
		assert_true(pkt_ipv4_csum_ok(o->buf, o->len));
	assert_true(pkt_l4_csum_ok(o->buf, o->len));
}

static void test_expect_untouched(const struct test_out *o, uint32_t verdict)
{
	assert_int_equal(o->verdict, verdict);
	assert_true(pkt_same(o->buf, o->len, o->in, o->in_len));
}

static void test_client_spec(struct pkt_spec *s, const struct env_vip *v, uint16_t cport)
{
	pkt_spec_init(s, v->family, v->proto, v->family == 4 ? "10.0.0.2" : "fd00:1::2", cport,
		      v->addr, v->port);
	s->payload = test_payload;
	s->payload_len = sizeof(test_payload) - 1;
}

/* Index (0..2) of the main backend the frame went to, by address; -1 if none. */
static int test_backend_of(const struct pkt_view *v)
{
	uint8_t a[16];
	int i;

	for (i = 0; i < 3; i++) {
		pkt_addr(v->family, a, env_backend_addr(v->family, i));
		if (!memcmp(a, v->dst, 16))
			return i;
	}
	return -1;
}

static int test_backend_of_mac(const struct pkt_view *v)
{
	uint8_t m[6];
	int i;

	for (i = 0; i < 3; i++) {
		pkt_mac(m, env_backend_mac(i));
		if (!memcmp(m, v->dmac, 6))
			return i;
	}
	return -1;
}

/*
 * The frame a client packet in becomes at backend b, for VIP v: MACs of vb0 and the backend;
 * NAT and FULLNAT rewrite the destination, FULLNAT the source to snat:sport too.
 */
static void test_forwarded_spec(struct pkt_spec *want, const struct pkt_spec *in,
				const struct env_vip *v, int b, uint16_t snat_port)
{
	*want = *in;
	pkt_mac(want->smac, MAC_VB0);
	pkt_mac(want->dmac, env_backend_mac(b));
	if (v->mode == VIPD_MODE_DSR)
		return;
	want->ttl--;
	pkt_addr(v->family, want->dst, env_backend_addr(v->family, b));
	want->dport = v->bport;
	if (v->mode == VIPD_MODE_FULLNAT) {
		pkt_addr(v->family, want->src, v->family == 4 ? "10.1.0.1" : "fd00:2::1");
		want->sport = snat_port;
	}
}

/* Sends client flow cport to VIP vip_id from the client on vc0; returns the backend index. */
static int test_client_flow(struct xdp_env *e, uint32_t vip_id, uint16_t cport,
			    struct test_out *o, struct pkt_spec *want)
{
	const struct env_vip *v = &env_vips[vip_id];
	struct pkt_spec in;
	int b;

	test_client_spec(&in, v, cport);
	test_run(e, e->ifc, &in, o);
	assert_int_equal(o->verdict, XDP_REDIRECT);
	assert_true(o->parsed);
	b = v->mode == VIPD_MODE_DSR ? test_backend_of_mac(&o->v) : test_backend_of(&o->v);
	assert_true(b >= 0 && b < v->n_backends);
	if (v->mode == VIPD_MODE_FULLNAT) {
		assert_in_range(o->v.sport, VIPD_SNAT_PORT_MIN, VIPD_SNAT_PORT_MAX);
	}
	test_forwarded_spec(want, &in, v, b, o->v.sport);
	test_expect(o, XDP_REDIRECT, want);
	return b;
}

/* The backend's answer to what it received (fwd), as it reaches vb0. */
static void test_reply_spec(struct pkt_spec *r, const struct pkt_view *fwd, int b)
{
	const char *src = fwd->family == 4 ? "10.0.0.2" : "fd00:1::2";
	char dst[INET6_ADDRSTRLEN];

	inet_ntop(fwd->family == 4 ? AF_INET : AF_INET6, fwd->src, dst, sizeof(dst));
	pkt_spec_init(r, fwd->family, fwd->proto, src, fwd->dport, dst, fwd->sport);
	memcpy(r->src, fwd->dst, 16);
	pkt_mac(r->smac, env_backend_mac(b));
	pkt_mac(r->dmac, MAC_VB0);
	r->payload = (const uint8_t *)"i am a backend";
	r->payload_len = 14;
}

static void test_mode(void **state, int family, uint8_t mode, uint8_t proto)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(family, mode, proto);
	const struct env_vip *v = &env_vips[id];
	struct test_out o, o2;
	struct pkt_spec want, rep, back;
	struct vipd_stats st;
	int b;

	b = test_client_flow(e, id, 40000, &o, &want);

	/* The established flow: the very same frame again. */
	test_client_flow(e, id, 40000, &o2, &want);
	assert_true(pkt_same(o2.buf, o2.len, o.buf, o.len));
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 1);

	if (mode != VIPD_MODE_DSR) {
		test_reply_spec(&rep, &o.v, b);
		test_run(e, e->ifb, &rep, &o2);
		back = rep;
		pkt_mac(back.smac, MAC_VC0);
		pkt_mac(back.dmac, MAC_CLIENT);
		pkt_addr(family, back.src, v->addr);
		back.sport = v->port;
		pkt_addr(family, back.dst, family == 4 ? "10.0.0.2" : "fd00:1::2");
		back.dport = 40000;
		back.ttl--;
		test_expect(&o2, XDP_REDIRECT, &back);
	}

	assert_int_equal(env_stats(e, e->vip_stats, id, &st), 0);
	assert_int_equal(st.packets, 2);
	assert_int_equal(st.bytes, 2 * o.in_len);
	assert_int_equal(st.conns, 1);
	assert_int_equal(st.reply_packets, mode == VIPD_MODE_DSR ? 0 : 1);
	assert_int_equal(env_stats(e, e->backend_stats, id * 3 + b, &st), 0);
	assert_int_equal(st.packets, 2);
	assert_int_equal(st.conns, 1);
}

#define TEST_MODE(name, fam, mode, proto)                                                       \
	static void name(void **state)                                                          \
	{                                                                                       \
		test_mode(state, fam, mode, proto);                                             \
	}

TEST_MODE(fullnat_v4_tcp, 4, VIPD_MODE_FULLNAT, IPPROTO_TCP)
TEST_MODE(fullnat_v4_udp, 4, VIPD_MODE_FULLNAT, IPPROTO_UDP)
TEST_MODE(fullnat_v6_tcp, 6, VIPD_MODE_FULLNAT, IPPROTO_TCP)
TEST_MODE(fullnat_v6_udp, 6, VIPD_MODE_FULLNAT, IPPROTO_UDP)
TEST_MODE(nat_v4_tcp, 4, VIPD_MODE_NAT, IPPROTO_TCP)
TEST_MODE(nat_v4_udp, 4, VIPD_MODE_NAT, IPPROTO_UDP)
TEST_MODE(nat_v6_tcp, 6, VIPD_MODE_NAT, IPPROTO_TCP)
TEST_MODE(nat_v6_udp, 6, VIPD_MODE_NAT, IPPROTO_UDP)
TEST_MODE(dsr_v4_tcp, 4, VIPD_MODE_DSR, IPPROTO_TCP)
TEST_MODE(dsr_v4_udp, 4, VIPD_MODE_DSR, IPPROTO_UDP)
TEST_MODE(dsr_v6_tcp, 6, VIPD_MODE_DSR, IPPROTO_TCP)
TEST_MODE(dsr_v6_udp, 6, VIPD_MODE_DSR, IPPROTO_UDP)

/* Client and backend behind the same interface: one-armed, XDP_TX both ways. */
static void fullnat_one_armed_xdp_tx(void **state)
{
	struct xdp_env *e = *state;
	const struct env_vip *v = &env_vips[0];
	struct pkt_spec in, want, rep, back;
	struct test_out o, o2;
	int b;

	test_client_spec(&in, v, 40100);
	pkt_addr(4, in.src, "10.1.0.50");
	pkt_mac(in.smac, "02:00:00:00:0b:50");
	pkt_mac(in.dmac, MAC_VB0);
	test_run(e, e->ifb, &in, &o);
	assert_true(o.parsed);
	b = test_backend_of(&o.v);
	assert_true(b >= 0);
	test_forwarded_spec(&want, &in, v, b, o.v.sport);
	test_expect(&o, XDP_TX, &want);

	test_reply_spec(&rep, &o.v, b);
	test_run(e, e->ifb, &rep, &o2);
	back = rep;
	pkt_mac(back.smac, MAC_VB0);
	pkt_mac(back.dmac, "02:00:00:00:0b:50");
	pkt_addr(4, back.src, v->addr);
	back.sport = v->port;
	pkt_addr(4, back.dst, "10.1.0.50");
	back.dport = 40100;
	back.ttl--;
	test_expect(&o2, XDP_TX, &back);
}

/* A client beyond a router: the reply goes to the gateway's MAC (v4 and v6, NAT). */
static void nat_remote_client_via_gateway(void **state)
{
	struct xdp_env *e = *state;
	int family;

	for (family = 4; family <= 6; family += 2) {
		uint32_t id = env_vip_id(family, VIPD_MODE_NAT, IPPROTO_TCP);
		const struct env_vip *v = &env_vips[id];
		const char *client = family == 4 ? "198.51.100.7" : "2001:db8:100::7";
		struct pkt_spec in, want, rep, back;
		struct test_out o, o2;
		int b;

		test_client_spec(&in, v, 40200);
		pkt_addr(family, in.src, client);
		pkt_mac(in.smac, MAC_GW_C);
		in.ttl = 60;
		test_run(e, e->ifc, &in, &o);
		assert_true(o.parsed);
		b = test_backend_of(&o.v);
		assert_true(b >= 0);
		test_forwarded_spec(&want, &in, v, b, 0);
		test_expect(&o, XDP_REDIRECT, &want);

		test_reply_spec(&rep, &o.v, b);
		memcpy(rep.dst, in.src, 16);
		test_run(e, e->ifb, &rep, &o2);
		back = rep;
		pkt_mac(back.smac, MAC_VC0);
		pkt_mac(back.dmac, MAC_GW_C);
		pkt_addr(family, back.src, v->addr);
		back.sport = v->port;
		back.ttl--;
		test_expect(&o2, XDP_REDIRECT, &back);
	}
}

static void ring_rotate(struct xdp_env *e, uint32_t id, int shift)
{
	uint32_t ids[3];
	int i;

	for (i = 0; i < 3; i++)
		ids[i] = id * 3 + (i + shift) % 3;
	assert_int_equal(env_ring_set(e, id, ids, 3), 0);
}

/* Every slot of the table changes backend; the established flow stays where it was. */
static void sticky_after_ring_change(void **state)
{
	struct xdp_env *e = *state;
	struct test_out o, o2;
	struct pkt_spec want;
	struct vipd_stats st;
	uint32_t only;
	int b, i, moved = 0;

	b = test_client_flow(e, 0, 40300, &o, &want);
	ring_rotate(e, 0, 1);
	assert_int_equal(test_client_flow(e, 0, 40300, &o2, &want), b);
	assert_true(pkt_same(o2.buf, o2.len, o.buf, o.len));
	ring_rotate(e, 0, 2);
	assert_int_equal(test_client_flow(e, 0, 40300, &o2, &want), b);
	assert_true(pkt_same(o2.buf, o2.len, o.buf, o.len));
	assert_int_equal(env_stats(e, e->vip_stats, 0, &st), 0);
	assert_int_equal(st.conns, 1);

	/* New flows do follow the new table. */
	only = (uint32_t)((b + 1) % 3);
	assert_int_equal(env_ring_set(e, 0, &only, 1), 0);
	for (i = 0; i < 10; i++)
		moved += test_client_flow(e, 0, (uint16_t)(41000 + i), &o2, &want) == (int)only;
	assert_int_equal(moved, 10);
	assert_int_equal(test_client_flow(e, 0, 40300, &o2, &want), b);
}

/* Weight 0: out of the table but ALIVE; its flow stays, new flows avoid it. */
static void draining_backend_keeps_flow(void **state)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(6, VIPD_MODE_NAT, IPPROTO_UDP), others[2];
	struct test_out o, o2;
	struct pkt_spec want;
	int b, i, n = 0;

	b = test_client_flow(e, id, 40400, &o, &want);
	for (i = 0; i < 3; i++)
		if (i != b)
			others[n++] = id * 3 + i;
	assert_int_equal(env_ring_set(e, id, others, 2), 0);
	for (i = 0; i < 5; i++) {
		assert_int_equal(test_client_flow(e, id, 40400, &o2, &want), b);
		assert_true(pkt_same(o2.buf, o2.len, o.buf, o.len));
	}
	for (i = 0; i < 20; i++)
		assert_int_not_equal(test_client_flow(e, id, (uint16_t)(42000 + i), &o2, &want), b);
}

/* A failed backend (not ALIVE): its flows move at once, even before the table is rebuilt. */
static void dead_backend_rechosen(void **state)
{
	struct xdp_env *e = *state;
	const struct env_vip *v = &env_vips[0];
	struct vipd_flow old_rev;
	struct vipd_rev rv;
	struct test_out o, o2;
	struct pkt_spec want, rep;
	struct vipd_stats st;
	int b, b2, i;

	b = test_client_flow(e, 0, 40500, &o, &want);
	memset(&old_rev, 0, sizeof(old_rev));
	memcpy(old_rev.src, o.v.dst, 16);
	memcpy(old_rev.dst, o.v.src, 16);
	old_rev.sport = htons(o.v.dport);
	old_rev.dport = htons(o.v.sport);
	old_rev.proto = IPPROTO_TCP;
	old_rev.family = VIPD_FAMILY_V4;
	assert_int_equal(bpf_map_lookup_elem(e->rev, &old_rev, &rv), 0);

	assert_int_equal(env_backend_set(e, (uint32_t)b, 4, env_backend_addr(4, b), v->bport, 0),
			 0);
	b2 = test_client_flow(e, 0, 40500, &o2, &want);
	assert_int_not_equal(b2, b);
	/* The old translation is gone, the new one answers. */
	assert_int_equal(bpf_map_lookup_elem(e->rev, &old_rev, &rv), -ENOENT);
	test_reply_spec(&rep, &o2.v, b2);
	test_run(e, e->ifb, &rep, &o);
	assert_int_equal(o.verdict, XDP_REDIRECT);
	assert_int_equal(o.v.dport, 40500);
	assert_int_equal(env_stats(e, e->vip_stats, 0, &st), 0);
	assert_int_equal(st.conns, 2);

	for (i = 0; i < 20; i++)
		assert_int_not_equal(test_client_flow(e, 0, (uint16_t)(43000 + i), &o2, &want), b);
}

static void no_backend_drops(void **state)
{
	struct xdp_env *e = *state;
	struct pkt_spec in;
	struct test_out o;
	uint32_t id;

	test_client_spec(&in, &env_vips[ENV_VIP_NO_RING], 40600);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	test_client_spec(&in, &env_vips[ENV_VIP_EMPTY_RING], 40600);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	for (id = 0; id < 3; id++)
		assert_int_equal(env_backend_set(e, id, 4, env_backend_addr(4, id), 8080, 0), 0);
	test_client_spec(&in, &env_vips[0], 40600);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	assert_int_equal(env_counter(e, VIPD_CNT_NO_BACKEND), 3);
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

static void test_pass_untouched(struct xdp_env *e, int ifindex, const struct pkt_spec *s)
{
	struct test_out o;

	test_run(e, ifindex, s, &o);
	test_expect_untouched(&o, XDP_PASS);
}

static void non_vip_passes_untouched(void **state)
{
	static const uint8_t arp[42] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0x0c, 0x02, 0x08, 0x06,
		0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0x0c, 0x02, 10, 0, 0, 2,
		0, 0, 0, 0, 0, 0, 10, 9, 0, 1,
	};
	struct xdp_env *e = *state;
	struct pkt_spec s, want;
	struct test_out o;
	uint8_t buf[2048], tagged[2048];
	size_t n;

	test_run_raw(e, e->ifc, arp, sizeof(arp), &o);
	test_expect_untouched(&o, XDP_PASS);

	pkt_spec_init(&s, 4, IPPROTO_ICMP, "10.0.0.2", 0, "10.9.0.1", 0);
	s.payload = (const uint8_t *)"\x08\x00\xf7\xff\x00\x00\x00\x00";
	s.payload_len = 8;
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 6, IPPROTO_ICMPV6, "fd00:1::2", 0, "fd00:9::1", 0);
	test_pass_untouched(e, e->ifc, &s);

	/* SSH and BGP to a VIP address or the node, TCP to the node on a VIP port. */
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.0.0.2", 50000, "10.9.0.1", 22);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.0.0.2", 50000, "10.0.0.1", 179);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.0.0.2", 50000, "10.0.0.1", 80);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.0.0.2", 50000, "10.9.0.1", 81);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 4, IPPROTO_UDP, "10.0.0.2", 50000, "10.9.0.1", 54);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 4, IPPROTO_UDP, "10.0.0.2", 50000, "10.9.0.1", 80);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 6, IPPROTO_TCP, "fd00:1::2", 50000, "fd00:9::1", 22);
	test_pass_untouched(e, e->ifc, &s);
	pkt_spec_init(&s, 6, IPPROTO_TCP, "fd00:1::2", 50000, "fd00:1::1", 80);
	test_pass_untouched(e, e->ifc, &s);

	/* A backend port with reverse entries in use, but not one of ours. */
	test_client_flow(e, 0, 40700, &o, &want);
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.1.0.11", 8080, "10.1.0.1", 5555);
	test_pass_untouched(e, e->ifb, &s);
	pkt_spec_init(&s, 4, IPPROTO_TCP, "10.1.0.11", 8080, "10.1.0.1", o.v.sport);
	s.proto = IPPROTO_UDP;
	test_pass_untouched(e, e->ifb, &s);

	/* VLAN-tagged VIP traffic is the kernel's. */
	test_client_spec(&s, &env_vips[0], 40701);
	n = pkt_build(&s, buf, sizeof(buf));
	memcpy(tagged, buf, 12);
	memcpy(tagged + 12, "\x81\x00\x00\x07", 4);
	memcpy(tagged + 16, buf + 12, n - 12);
	test_run_raw(e, e->ifc, tagged, n + 4, &o);
	test_expect_untouched(&o, XDP_PASS);
}

/* Every prefix of a VIP frame: refused by the kernel below 14 bytes, else passed unchanged. */
static void truncated_frames_pass(void **state)
{
	struct xdp_env *e = *state;
	uint32_t ids[4] = { 0, 1, 6, 7 };
	int i;

	for (i = 0; i < 4; i++) {
		const struct env_vip *v = &env_vips[ids[i]];
		size_t hdrs = 14 + (v->family == 4 ? 20 : 40) + (v->proto == IPPROTO_TCP ? 20 : 8);
		uint8_t full[2048], cut[2048], out[2048];
		struct pkt_spec s;
		struct test_out o;
		size_t n, len, olen;
		uint32_t verdict;
		int err;

		test_client_spec(&s, v, 40800);
		n = pkt_build(&s, full, sizeof(full));
		for (len = 0; len < n; len++) {
			olen = sizeof(out);
			if (len < 14) {
				err = env_run(e, e->ifc, full, len, out, &olen, &verdict);
				assert_int_equal(err, -EINVAL);
				continue;
			}
			test_run_raw(e, e->ifc, full, len, &o);
			test_expect_untouched(&o, XDP_PASS);
			if (len < 14 + (v->family == 4 ? 20u : 40u) || len >= hdrs)
				continue;
			/* The IP header agrees with the cut: L4 header incomplete. */
			memcpy(cut, full, len);
			if (v->family == 4) {
				uint16_t c;
				uint32_t sum = 0;
				size_t k;

				cut[16] = (uint8_t)((len - 14) >> 8);
				cut[17] = (uint8_t)(len - 14);
				cut[24] = cut[25] = 0;
				for (k = 14; k < 34; k += 2)
					sum += (uint32_t)cut[k] << 8 | cut[k + 1];
				while (sum >> 16)
					sum = (sum & 0xffff) + (sum >> 16);
				c = (uint16_t)~sum;
				cut[24] = c >> 8;
				cut[25] = c & 0xff;
			} else {
				cut[18] = (uint8_t)((len - 54) >> 8);
				cut[19] = (uint8_t)(len - 54);
			}
			test_run_raw(e, e->ifc, cut, len, &o);
			test_expect_untouched(&o, XDP_PASS);
		}
	}
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

/* IPv4 options: the L4 header is found through IHL and the options travel unchanged. */
static void ipv4_options_forwarded(void **state)
{
	struct xdp_env *e = *state;
	uint8_t words[] = { 1, 3, 10 };
	uint32_t ids[] = { 0, 1, 2, 3, 4 };
	size_t i, j;

	for (i = 0; i < sizeof(words); i++) {
		for (j = 0; j < sizeof(ids) / sizeof(ids[0]); j++) {
			const struct env_vip *v = &env_vips[ids[j]];
			struct pkt_spec in, want;
			struct test_out o;
			int b;

			test_client_spec(&in, v, (uint16_t)(40900 + i * 10 + j));
			in.ip_opt_words = words[i];
			test_run(e, e->ifc, &in, &o);
			assert_true(o.parsed);
			b = v->mode == VIPD_MODE_DSR ? test_backend_of_mac(&o.v) :
						       test_backend_of(&o.v);
			assert_true(b >= 0);
			test_forwarded_spec(&want, &in, v, b, o.v.sport);
			test_expect(&o, XDP_REDIRECT, &want);
		}
	}
}

static void bad_ipv4_headers_pass(void **state)
{
	struct xdp_env *e = *state;
	uint8_t buf[2048];
	struct pkt_spec s;
	struct test_out o;
	size_t n;
	int ihl;

	test_client_spec(&s, &env_vips[0], 41000);
	n = pkt_build(&s, buf, sizeof(buf));
	for (ihl = 0; ihl < 5; ihl++) {
		buf[14] = (uint8_t)(0x40 | ihl);
		test_run_raw(e, e->ifc, buf, n, &o);
		test_expect_untouched(&o, XDP_PASS);
	}
	buf[14] = 0x65; /* version 6 in an IPv4 frame */
	test_run_raw(e, e->ifc, buf, n, &o);
	test_expect_untouched(&o, XDP_PASS);
	buf[14] = 0x4f; /* IHL 15: options would run into the TCP header's space */
	test_run_raw(e, e->ifc, buf, n, &o);
	test_expect_untouched(&o, XDP_PASS);
	buf[14] = 0x45;
	buf[16] = 0;
	buf[17] = 39; /* total length shorter than IP + TCP headers */
	test_run_raw(e, e->ifc, buf, n, &o);
	test_expect_untouched(&o, XDP_PASS);
	buf[16] = 0x05; /* longer than the frame */
	test_run_raw(e, e->ifc, buf, n, &o);
	test_expect_untouched(&o, XDP_PASS);
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

static void fragments_pass(void **state)
{
	struct xdp_env *e = *state;
	uint16_t frags[] = { 0x2000, 0x0001, 0x2001, 0x1fff, 0x6000 };
	struct pkt_spec s;
	size_t i;
	int j;

	for (i = 0; i < sizeof(frags) / sizeof(frags[0]); i++) {
		for (j = 0; j < 2; j++) {
			test_client_spec(&s, &env_vips[j], 41100);
			s.frag_off = frags[i];
			test_pass_untouched(e, e->ifc, &s);
		}
	}
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

static void ipv6_extension_headers_pass(void **state)
{
	struct xdp_env *e = *state;
	uint8_t nh[] = { 0, 43, 44, 60 };
	uint8_t buf[2048], ext[2048];
	struct pkt_spec s;
	struct test_out o;
	size_t i, n;

	test_client_spec(&s, &env_vips[6], 41200);
	n = pkt_build(&s, buf, sizeof(buf));
	for (i = 0; i < sizeof(nh); i++) {
		uint16_t plen = (uint16_t)(buf[18] << 8 | buf[19]) + 8;

		memcpy(ext, buf, 54);
		ext[20] = nh[i];
		ext[18] = plen >> 8;
		ext[19] = plen & 0xff;
		memset(ext + 54, 0, 8);
		ext[54] = IPPROTO_TCP;
		memcpy(ext + 62, buf + 54, n - 54);
		test_run_raw(e, e->ifc, ext, n + 8, &o);
		test_expect_untouched(&o, XDP_PASS);
	}
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

static void expiring_ttl_passes(void **state)
{
	struct xdp_env *e = *state;
	uint32_t ids[] = { 0, 4, 6, 10 };
	struct pkt_spec s;
	size_t i;

	for (i = 0; i < 4; i++) {
		test_client_spec(&s, &env_vips[ids[i]], 41300);
		s.ttl = 1;
		test_pass_untouched(e, e->ifc, &s);
		s.ttl = 0;
		test_pass_untouched(e, e->ifc, &s);
	}
	assert_int_equal(env_counter(e, VIPD_CNT_TTL), 8);
}

static void udp_v4_zero_checksum_stays_zero(void **state)
{
	struct xdp_env *e = *state;
	uint32_t ids[] = { 1, 3 };
	size_t i;

	for (i = 0; i < 2; i++) {
		const struct env_vip *v = &env_vips[ids[i]];
		struct pkt_spec in, want;
		struct test_out o;
		int b;

		test_client_spec(&in, v, 41400);
		in.udp_no_csum = 1;
		test_run(e, e->ifc, &in, &o);
		assert_true(o.parsed);
		assert_int_equal(o.v.l4_csum, 0);
		b = test_backend_of(&o.v);
		assert_true(b >= 0);
		test_forwarded_spec(&want, &in, v, b, o.v.sport);
		test_expect(&o, XDP_REDIRECT, &want);
	}
}

/* A UDP/IPv6 checksum that computes to 0 goes out as 0xffff. */
static void udp_v6_checksum_never_zero(void **state)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(6, VIPD_MODE_NAT, IPPROTO_UDP), only = id * 3;
	const struct env_vip *v = &env_vips[id];
	uint8_t payload[16], w[2048];
	struct pkt_spec in, want;
	struct pkt_view wv;
	struct test_out o;

	assert_int_equal(env_ring_set(e, id, &only, 1), 0);
	memset(payload, 0x5a, sizeof(payload));
	payload[0] = payload[1] = 0;
	test_client_spec(&in, v, 41500);
	in.payload = payload;
	in.payload_len = sizeof(payload);
	test_forwarded_spec(&want, &in, v, 0, 0);
	assert_true(pkt_build(&want, w, sizeof(w)) > 0);
	assert_int_equal(pkt_parse(w, pkt_build(&want, w, sizeof(w)), &wv), 0);
	/* This word cancels the sum: the true checksum of the output becomes 0. */
	payload[0] = wv.l4_csum >> 8;
	payload[1] = wv.l4_csum & 0xff;

	test_run(e, e->ifc, &in, &o);
	assert_true(o.parsed);
	assert_int_equal(o.v.l4_csum, 0xffff);
	test_expect(&o, XDP_REDIRECT, &want);
}

/* Many flows to the same backends: every translation gets its own source port. */
static void fullnat_ports_unique(void **state)
{
	struct xdp_env *e = *state;
	static uint8_t seen[3][65536];
	struct test_out o, o2;
	struct pkt_spec want, rep;
	int i, b;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 300; i++) {
		b = test_client_flow(e, 0, (uint16_t)(30000 + i), &o, &want);
		assert_int_equal(seen[b][o.v.sport], 0);
		seen[b][o.v.sport] = 1;
		if (i % 15)
			continue;
		test_reply_spec(&rep, &o.v, b);
		test_run(e, e->ifb, &rep, &o2);
		assert_int_equal(o2.verdict, XDP_REDIRECT);
		assert_int_equal(o2.v.dport, 30000 + i);
	}
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 300);
	assert_int_equal(env_map_count(e->rev, sizeof(struct vipd_flow)), 300);
}

static uint64_t test_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * FULLNAT port ownership. A flow whose conns entry was lost finds its own reverse entry and
 * keeps its port; a port held by a live flow is skipped; the port of a finished flow (closed
 * and quiet) is taken over, and the finished flow's conns entry goes with it.
 */
static void fullnat_port_collision(void **state)
{
	struct xdp_env *e = *state;
	struct vipd_flow rk, ck, xk;
	struct vipd_conn cv;
	struct vipd_rev rv;
	struct test_out o, o2;
	struct pkt_spec in, want;
	uint16_t port;
	int b;

	b = test_client_flow(e, 0, 41600, &o, &want);
	port = o.v.sport;
	test_client_spec(&in, &env_vips[0], 41600);
	memset(&ck, 0, sizeof(ck));
	memcpy(ck.src, in.src, 16);
	memcpy(ck.dst, in.dst, 16);
	ck.sport = htons(41600);
	ck.dport = htons(80);
	ck.proto = IPPROTO_TCP;
	ck.family = VIPD_FAMILY_V4;
	assert_int_equal(bpf_map_delete_elem(e->conns, &ck), 0);
	assert_int_equal(test_client_flow(e, 0, 41600, &o2, &want), b);
	assert_int_equal(o2.v.sport, port);

	/* The port now belongs to a live flow X from client port 999. */
	memset(&rk, 0, sizeof(rk));
	memcpy(rk.src, o.v.dst, 16);
	memcpy(rk.dst, o.v.src, 16);
	rk.sport = htons(o.v.dport);
	rk.dport = htons(port);
	rk.proto = IPPROTO_TCP;
	rk.family = VIPD_FAMILY_V4;
	assert_int_equal(bpf_map_lookup_elem(e->rev, &rk, &rv), 0);
	rv.client_port = htons(999);
	assert_int_equal(bpf_map_update_elem(e->rev, &rk, &rv, BPF_EXIST), 0);
	assert_int_equal(bpf_map_lookup_elem(e->conns, &ck, &cv), 0);
	xk = ck;
	xk.sport = htons(999);
	cv.flags = VIPD_CONN_F_ESTABLISHED;
	cv.last_seen_ns = test_coarse_ns() - VIPD_SNAT_IDLE_CLOSED_NS - 1000000000ull;
	assert_int_equal(bpf_map_update_elem(e->conns, &xk, &cv, BPF_NOEXIST), 0);
	rv.last_seen_ns = cv.last_seen_ns;
	assert_int_equal(bpf_map_update_elem(e->rev, &rk, &rv, BPF_EXIST), 0);

	assert_int_equal(bpf_map_delete_elem(e->conns, &ck), 0);
	assert_int_equal(test_client_flow(e, 0, 41600, &o2, &want), b);
	assert_int_not_equal(o2.v.sport, port);
	assert_int_equal(bpf_map_lookup_elem(e->rev, &rk, &rv), 0);
	assert_int_equal(rv.client_port, htons(999));
	rk.dport = htons(o2.v.sport);
	assert_int_equal(bpf_map_lookup_elem(e->rev, &rk, &rv), 0);
	assert_int_equal(rv.client_port, htons(41600));
	assert_int_equal(env_counter(e, VIPD_CNT_SNAT_REUSED), 0);

	/* Had X never completed its handshake (a SYN flood), its port would be free by now. */
	cv.flags = 0;
	assert_int_equal(bpf_map_update_elem(e->conns, &xk, &cv, BPF_EXIST), 0);
	assert_int_equal(bpf_map_delete_elem(e->conns, &ck), 0);
	assert_int_equal(test_client_flow(e, 0, 41600, &o2, &want), b);
	assert_int_equal(o2.v.sport, port);
	assert_int_equal(env_counter(e, VIPD_CNT_SNAT_REUSED), 1);
	assert_int_equal(bpf_map_lookup_elem(e->conns, &xk, &cv), -ENOENT);
	rk.dport = htons(port);
	assert_int_equal(bpf_map_lookup_elem(e->rev, &rk, &rv), 0);
	assert_int_equal(rv.client_port, htons(41600));
}

/* The TCP state kept for port reuse: ESTABLISHED on the client's ACK, CLOSING on FIN/RST. */
static void tcp_state_tracked(void **state)
{
	struct xdp_env *e = *state;
	static const uint8_t steps[][2] = {
		{ 0x02, 0 },
		{ 0x10, VIPD_CONN_F_ESTABLISHED },
		{ 0x18, VIPD_CONN_F_ESTABLISHED },
		{ 0x11, VIPD_CONN_F_ESTABLISHED | VIPD_CONN_F_CLOSING },
		{ 0x02, 0 },
		{ 0x04, VIPD_CONN_F_CLOSING },
	};
	struct pkt_spec in, want, rep;
	struct vipd_flow ck, rk;
	struct vipd_conn cv;
	struct vipd_rev rv;
	struct test_out o;
	size_t i;
	int b = -1;

	test_client_spec(&in, &env_vips[0], 42300);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		in.tcp_flags = steps[i][0];
		test_run(e, e->ifc, &in, &o);
		assert_true(o.parsed);
		b = test_backend_of(&o.v);
		assert_true(b >= 0);
		test_forwarded_spec(&want, &in, &env_vips[0], b, o.v.sport);
		test_expect(&o, XDP_REDIRECT, &want);
		memset(&ck, 0, sizeof(ck));
		memcpy(ck.src, in.src, 16);
		memcpy(ck.dst, in.dst, 16);
		ck.sport = htons(in.sport);
		ck.dport = htons(in.dport);
		ck.proto = IPPROTO_TCP;
		ck.family = VIPD_FAMILY_V4;
		assert_int_equal(bpf_map_lookup_elem(e->conns, &ck, &cv), 0);
		assert_int_equal(cv.flags, steps[i][1]);
	}
	test_reply_spec(&rep, &o.v, b);
	rep.tcp_flags = 0x14; /* RST|ACK from the backend */
	test_run(e, e->ifb, &rep, &o);
	assert_int_equal(o.verdict, XDP_REDIRECT);
	memset(&rk, 0, sizeof(rk));
	memcpy(rk.src, rep.src, 16);
	memcpy(rk.dst, rep.dst, 16);
	rk.sport = htons(rep.sport);
	rk.dport = htons(rep.dport);
	rk.proto = IPPROTO_TCP;
	rk.family = VIPD_FAMILY_V4;
	assert_int_equal(bpf_map_lookup_elem(e->rev, &rk, &rv), 0);
	assert_int_equal(rv.flags, VIPD_CONN_F_CLOSING);
}

/*
 * Next hops are cached for VIPD_NH_CACHE_NS: a changed neighbour is used after that. The
 * cache is per CPU, so the test stays on one.
 */
static void next_hop_follows_neighbour_change(void **state)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(4, VIPD_MODE_NAT, IPPROTO_TCP), only = id * 3;
	struct timespec pause = { 1, 200000000 };
	uint8_t mac14[6], mac15[6];
	struct pkt_spec in;
	struct test_out o, cached, later;
	cpu_set_t all, one;
	uint64_t t0, t1;
	int err, err2;

	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);

	pkt_mac(mac14, "02:00:00:00:0b:14");
	pkt_mac(mac15, "02:00:00:00:0b:15");
	assert_int_equal(env_backend_set(e, only, 4, "10.1.0.14", 8080, VIPD_BACKEND_F_ALIVE), 0);
	assert_int_equal(env_ring_set(e, id, &only, 1), 0);
	test_client_spec(&in, &env_vips[id], 42400);
	t0 = test_coarse_ns();
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_REDIRECT);
	assert_memory_equal(o.v.dmac, mac14, 6);

	err = system("ip neigh replace 10.1.0.14 lladdr 02:00:00:00:0b:15 dev vb0 nud permanent");
	test_run(e, e->ifc, &in, &cached);
	t1 = test_coarse_ns();
	nanosleep(&pause, NULL);
	test_run(e, e->ifc, &in, &later);
	err2 = system("ip neigh replace 10.1.0.14 lladdr 02:00:00:00:0b:14 dev vb0 nud permanent");
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	assert_int_equal(err, 0);
	assert_int_equal(err2, 0);
	/* Still the cached MAC, unless this machine was too slow to tell. */
	if (t1 - t0 < VIPD_NH_CACHE_NS * 8 / 10)
		assert_memory_equal(cached.v.dmac, mac14, 6);
	assert_int_equal(later.verdict, XDP_REDIRECT);
	assert_memory_equal(later.v.dmac, mac15, 6);
}

/* A backend id given a new address: the cached next hop of the old one is not used. */
static void readdressed_backend_gets_its_own_next_hop(void **state)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(4, VIPD_MODE_NAT, IPPROTO_TCP), only = id * 3;
	struct pkt_spec in, want;
	struct test_out o;

	assert_int_equal(env_ring_set(e, id, &only, 1), 0);
	test_client_spec(&in, &env_vips[id], 42500);
	test_run(e, e->ifc, &in, &o);
	test_forwarded_spec(&want, &in, &env_vips[id], 0, 0);
	test_expect(&o, XDP_REDIRECT, &want);
	assert_int_equal(env_backend_set(e, only, 4, env_backend_addr(4, 1), 8080,
					 VIPD_BACKEND_F_ALIVE),
			 0);
	test_run(e, e->ifc, &in, &o);
	test_forwarded_spec(&want, &in, &env_vips[id], 1, 0);
	test_expect(&o, XDP_REDIRECT, &want);
}

/* Established FULLNAT flows keep their source address; new ones need one. */
static void fullnat_without_snat_address_drops(void **state)
{
	struct xdp_env *e = *state;
	uint32_t key = (uint32_t)e->ifb;
	struct test_out o, o2;
	struct pkt_spec want, in;

	test_client_flow(e, 0, 41700, &o, &want);
	assert_int_equal(bpf_map_delete_elem(e->snat_addrs, &key), 0);
	test_client_flow(e, 0, 41700, &o2, &want);
	assert_true(pkt_same(o2.buf, o2.len, o.buf, o.len));
	test_client_spec(&in, &env_vips[0], 41701);
	test_run(e, e->ifc, &in, &o2);
	assert_int_equal(o2.verdict, XDP_DROP);
	assert_int_equal(env_counter(e, VIPD_CNT_NO_SNAT), 1);
}

/* Unresolved next hop: rewritten and handed to the kernel, state kept for the next packet. */
static void no_neighbour_passes_rewritten(void **state)
{
	struct xdp_env *e = *state;
	const struct env_vip *v = &env_vips[ENV_VIP_NO_NEIGH];
	struct pkt_spec in, want;
	struct test_out o;

	test_client_spec(&in, v, 41800);
	test_run(e, e->ifc, &in, &o);
	want = in;
	want.ttl--;
	pkt_addr(4, want.dst, v->be_addr);
	test_expect(&o, XDP_PASS, &want);
	assert_int_equal(env_counter(e, VIPD_CNT_NO_NEIGH), 1);
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 1);
}

static void unroutable_backends_drop(void **state)
{
	struct xdp_env *e = *state;
	struct pkt_spec in;
	struct test_out o;

	test_client_spec(&in, &env_vips[ENV_VIP_DSR_OFFLINK], 41900);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	assert_int_equal(env_counter(e, VIPD_CNT_DSR_OFFLINK), 1);
	test_client_spec(&in, &env_vips[ENV_VIP_NO_ROUTE], 41900);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	assert_int_equal(env_counter(e, VIPD_CNT_FIB_FAIL), 1);
	assert_int_equal(env_map_count(e->conns, sizeof(struct vipd_flow)), 0);
}

static void backend_of_other_family_drops(void **state)
{
	struct xdp_env *e = *state;
	struct pkt_spec in;
	struct test_out o;
	uint32_t id;

	for (id = 0; id < 3; id++)
		assert_int_equal(env_backend_set(e, id, 6, env_backend_addr(6, id), 8080,
						 VIPD_BACKEND_F_ALIVE),
				 0);
	test_client_spec(&in, &env_vips[0], 42000);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_DROP);
	assert_int_equal(env_counter(e, VIPD_CNT_FAMILY), 1);
}

/* Removing a VIP stops its traffic at once, established flows included. */
static void removed_vip_passes(void **state)
{
	struct xdp_env *e = *state;
	struct vipd_vip_key k;
	struct test_out o;
	struct pkt_spec want, in;

	test_client_flow(e, 2, 42100, &o, &want);
	memset(&k, 0, sizeof(k));
	pkt_addr(4, k.addr, "10.9.0.2");
	k.port = htons(80);
	k.proto = IPPROTO_TCP;
	k.family = VIPD_FAMILY_V4;
	assert_int_equal(bpf_map_delete_elem(e->vips, &k), 0);
	/* Until the generation moves, the established flow's entry still stands for the VIP. */
	test_client_spec(&in, &env_vips[2], 42100);
	test_run(e, e->ifc, &in, &o);
	assert_int_equal(o.verdict, XDP_REDIRECT);
	/* The loader's side of removing a VIP (vipd_bpf.h): a new generation for its id. */
	{
		uint32_t id = 2, gen;

		assert_int_equal(bpf_map_lookup_elem(e->vip_gen, &id, &gen), 0);
		gen++;
		assert_int_equal(bpf_map_update_elem(e->vip_gen, &id, &gen, BPF_ANY), 0);
	}
	test_pass_untouched(e, e->ifc, &in);
}

/* Counters per VIP and backend over several flows and replies. */
static void stats_count_packets_bytes_conns(void **state)
{
	struct xdp_env *e = *state;
	uint32_t id = env_vip_id(4, VIPD_MODE_NAT, IPPROTO_TCP);
	uint64_t pk[3] = { 0 }, cn[3] = { 0 }, rp[3] = { 0 };
	struct test_out o, o2;
	struct pkt_spec want, rep;
	struct vipd_stats st;
	uint64_t bytes = 0;
	int f, i, b = 0;

	for (f = 0; f < 6; f++) {
		for (i = 0; i <= f % 3; i++) {
			b = test_client_flow(e, id, (uint16_t)(42200 + f), &o, &want);
			pk[b]++;
			cn[b] += i == 0;
			bytes += o.in_len;
		}
		test_reply_spec(&rep, &o.v, b);
		test_run(e, e->ifb, &rep, &o2);
		assert_int_equal(o2.verdict, XDP_REDIRECT);
		rp[b]++;
	}
	assert_int_equal(env_stats(e, e->vip_stats, id, &st), 0);
	assert_int_equal(st.packets, 12);
	assert_int_equal(st.bytes, bytes);
	assert_int_equal(st.conns, 6);
	assert_int_equal(st.reply_packets, 6);
	assert_int_equal(st.reply_bytes, 6 * o2.in_len);
	for (b = 0; b < 3; b++) {
		assert_int_equal(env_stats(e, e->backend_stats, id * 3 + b, &st), 0);
		assert_int_equal(st.packets, pk[b]);
		assert_int_equal(st.conns, cn[b]);
		assert_int_equal(st.reply_packets, rp[b]);
	}
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(fullnat_v4_tcp),
		T(fullnat_v4_udp),
		T(fullnat_v6_tcp),
		T(fullnat_v6_udp),
		T(nat_v4_tcp),
		T(nat_v4_udp),
		T(nat_v6_tcp),
		T(nat_v6_udp),
		T(dsr_v4_tcp),
		T(dsr_v4_udp),
		T(dsr_v6_tcp),
		T(dsr_v6_udp),
		T(fullnat_one_armed_xdp_tx),
		T(nat_remote_client_via_gateway),
		T(sticky_after_ring_change),
		T(draining_backend_keeps_flow),
		T(dead_backend_rechosen),
		T(no_backend_drops),
		T(non_vip_passes_untouched),
		T(truncated_frames_pass),
		T(ipv4_options_forwarded),
		T(bad_ipv4_headers_pass),
		T(fragments_pass),
		T(ipv6_extension_headers_pass),
		T(expiring_ttl_passes),
		T(udp_v4_zero_checksum_stays_zero),
		T(udp_v6_checksum_never_zero),
		T(fullnat_ports_unique),
		T(fullnat_port_collision),
		T(tcp_state_tracked),
		T(next_hop_follows_neighbour_change),
		T(readdressed_backend_gets_its_own_next_hop),
		T(fullnat_without_snat_address_drops),
		T(no_neighbour_passes_rewritten),
		T(unroutable_backends_drop),
		T(backend_of_other_family_drops),
		T(removed_vip_passes),
		T(stats_count_packets_bytes_conns),
	};

	if (env_netns()) {
		fprintf(stderr, "test_xdp: cannot build the test namespace (root needed)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
