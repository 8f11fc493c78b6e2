/*
 * Per-packet cost of vipd's XDP program through BPF_PROG_TEST_RUN, next to a MAC-swap floor
 * measured the same way in the same run (the wrappers are in xdp_cost.bpf.c). Runs in the
 * bpf tier's private network namespace (tests/bpf/xdp_env.c: anonymous, so it goes away with
 * this process however it ends), entered before anything else.
 *
 *   xdp_cost [ROUNDS [EST_PASSES [NEW_FLOWS [PREFIX]]]]    (default 5 1000000 16384)
 *
 * PREFIX: only the cases whose name starts with it (and the floors). With XDP_COST_FRESH=1 in
 * the environment every NEW run gets a freshly loaded object instead of emptied tables.
 *
 * Each round measures every case once, in turn, so that drift hits all cases alike. Before a
 * VIP case conns and rev are emptied: an ESTABLISHED case creates its one flow with a first
 * pass, then runs EST_PASSES passes of it; a NEW case runs NEW_FLOWS passes, each a flow of
 * its own (few enough for the FULLNAT port space of three backends to stay mostly free).
 * Before the first round the tables are churned once (see main()).
 *
 * Output, for tests/bench/xdp_cost.py:
 *   case NAME GROUP VERDICT          every case, once, first
 *   run NAME ROUND NS PASSES OK STATS OUTPUT DROPS REUSED
 * NS: the kernel's mean per pass (whole ns, rounded down); OK: passes with the expected
 * verdict; STATS: 1 if vip_stats counted every pass (and every new flow), 0 if not, - where
 * it does not apply; OUTPUT: 1 if the last pass's frame is what it should be; DROPS:
 * drop-type counters added by the run; REUSED: FULLNAT ports taken over.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkt.h"
#include "vipd.skel.h"
#include "xdp_env.h"

#define XC_FRAME_MAX sizeof(((struct vipd_bpf__bss *)0)->xcost_frame)
/* The client ports of NEW flows: XCOST_PORT_BASE and XCOST_PORTS of xdp_cost.bpf.c. */
#define XC_PORT_BASE 1024
#define XC_PORTS 64000
#define XC_CLIENT_PORT 40000
#define XC_BATCH 4096

#define XC_MAC_VC0 "02:00:00:00:0c:00"
#define XC_MAC_VB0 "02:00:00:00:0b:00"
#define XC_MAC_CLIENT "02:00:00:00:0c:02"

enum xc_kind {
	XC_BARE,   /* MAC swap alone */
	XC_FLOOR,  /* restore + MAC swap */
	XC_NEW,	   /* every pass a new flow to a VIP */
	XC_EST,	   /* every pass the same established flow */
	XC_REPLY,  /* a backend's reply on an established FULLNAT/NAT flow */
	XC_NONVIP, /* TCP to the node's port 22 */
	XC_ARP,
};

struct xc_case {
	char name[48];
	enum xc_kind kind;
	int family; /* 4 or 6 */
	uint8_t proto;
	uint32_t vip_id;
	uint32_t expect; /* verdict */
};

struct xc_bench {
	struct xdp_env e;
	int vipd_fd, floor_fd, bare_fd;
	unsigned int est_passes, new_flows;
	int fresh; /* reload before every NEW run */
	struct xc_case cases[64];
	int n_cases;
};

static const char *const xc_mode_name[] = { "fullnat", "nat", "dsr" };
static const char *const xc_verdict_name[] = { "ABORTED", "DROP", "PASS", "TX", "REDIRECT" };

static const char *xc_client(int family)
{
	return family == 4 ? "10.0.0.2" : "fd00:1::2";
}

static const char *xc_node(int family)
{
	return family == 4 ? "10.0.0.1" : "fd00:1::1";
}

/* The node's FULLNAT source address towards the backends (env_load's snat_addrs[vb0]). */
static const char *xc_snat(int family)
{
	return family == 4 ? "10.1.0.1" : "fd00:2::1";
}

static int xc_add(struct xc_bench *b, enum xc_kind kind, int family, uint8_t proto,
		  uint8_t mode, uint32_t expect)
{
	struct xc_case *c = &b->cases[b->n_cases++];
	const char *pn = proto == IPPROTO_TCP ? "tcp" : "udp";

	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->family = family;
	c->proto = proto;
	c->expect = expect;
	switch (kind) {
	case XC_BARE:
		snprintf(c->name, sizeof(c->name), "floor-bare");
		break;
	case XC_FLOOR:
		snprintf(c->name, sizeof(c->name), "floor");
		break;
	case XC_NEW:
	case XC_EST:
	case XC_REPLY:
		c->vip_id = env_vip_id(family, mode, proto);
		if (c->vip_id >= ENV_N_VIPS)
			return -ENOENT;
		snprintf(c->name, sizeof(c->name), "%s-v%d-%s-%s",
			 kind == XC_NEW ? "new" : kind == XC_EST ? "est" : "reply", family, pn,
			 xc_mode_name[mode]);
		break;
	case XC_NONVIP:
		snprintf(c->name, sizeof(c->name), "nonvip-v%d-tcp-22", family);
		break;
	case XC_ARP:
		snprintf(c->name, sizeof(c->name), "nonvip-arp");
		break;
	}
	return 0;
}

static const char *xc_group(const struct xc_case *c)
{
	switch (c->kind) {
	case XC_BARE:
		return "bare";
	case XC_FLOOR:
		return "floor";
	case XC_NEW:
		return "new";
	case XC_EST:
		return env_vips[c->vip_id].mode == VIPD_MODE_DSR ? "est-dsr" : "est-nat";
	case XC_REPLY:
		return "reply";
	default:
		return "nonvip";
	}
}

/* The cases in the order of each round; -ENOENT if the test bed lacks one of its VIPs. */
static int xc_cases(struct xc_bench *b)
{
	static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };
	int kind, family, p, mode, err = 0;

	err |= xc_add(b, XC_BARE, 4, IPPROTO_TCP, 0, XDP_TX);
	err |= xc_add(b, XC_FLOOR, 4, IPPROTO_TCP, 0, XDP_TX);
	for (kind = XC_NEW; kind <= XC_REPLY; kind++)
		for (family = 4; family <= 6; family += 2)
			for (p = 0; p < 2; p++)
				for (mode = VIPD_MODE_FULLNAT; mode <= VIPD_MODE_DSR; mode++)
					if (kind != XC_REPLY || mode != VIPD_MODE_DSR)
						err |= xc_add(b, kind, family, protos[p], mode,
							      XDP_REDIRECT);
	err |= xc_add(b, XC_NONVIP, 4, IPPROTO_TCP, 0, XDP_PASS);
	err |= xc_add(b, XC_NONVIP, 6, IPPROTO_TCP, 0, XDP_PASS);
	err |= xc_add(b, XC_ARP, 4, 0, 0, XDP_PASS);
	return err ? -ENOENT : 0;
}

/* A client's frame to the case's VIP (or the node's port 22): SYN, or ACK if ack. */
static size_t xc_client_frame(const struct xc_case *c, int ack, uint8_t *buf)
{
	struct pkt_spec s;

	if (c->kind == XC_NONVIP || c->kind == XC_FLOOR || c->kind == XC_BARE)
		pkt_spec_init(&s, c->family, c->proto, xc_client(c->family), XC_CLIENT_PORT,
			      xc_node(c->family), 22);
	else
		pkt_spec_init(&s, c->family, c->proto, xc_client(c->family), XC_CLIENT_PORT,
			      env_vips[c->vip_id].addr, env_vips[c->vip_id].port);
	if (c->proto == IPPROTO_TCP && ack)
		s.tcp_flags = 0x10;
	return pkt_build(&s, buf, XC_FRAME_MAX);
}

/* Who-has 10.0.0.1 from the client. */
static size_t xc_arp_frame(uint8_t *buf)
{
	static const uint8_t tail[] = { 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01 };
	uint8_t mac[6], a[16];

	memset(buf, 0, 42);
	memset(buf, 0xff, 6);
	pkt_mac(mac, XC_MAC_CLIENT);
	memcpy(buf + 6, mac, 6);
	buf[12] = 0x08;
	buf[13] = 0x06;
	memcpy(buf + 14, tail, sizeof(tail));
	memcpy(buf + 22, mac, 6);
	pkt_addr(4, a, xc_client(4));
	memcpy(buf + 28, a, 4);
	pkt_addr(4, a, xc_node(4));
	memcpy(buf + 38, a, 4);
	return 42;
}

/* Empties an LRU flow map (conns or rev). */
static int xc_clear(int fd)
{
	static uint8_t keys[XC_BATCH * sizeof(struct vipd_flow)];
	static uint8_t vals[XC_BATCH * sizeof(struct vipd_rev)];
	uint8_t batch[sizeof(struct vipd_flow)], next[sizeof(struct vipd_flow)];
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	void *in = NULL;
	__u32 count;
	int err;

	for (;;) {
		count = XC_BATCH;
		err = bpf_map_lookup_and_delete_batch(fd, in, batch, keys, vals, &count, &opts);
		if (err == -ENOENT)
			break;
		if (err)
			return err;
		in = batch;
	}
	return bpf_map_get_next_key(fd, NULL, next) == -ENOENT ? 0 : -EBUSY;
}

static uint64_t xc_drops(struct xdp_env *e)
{
	static const uint32_t idx[] = { VIPD_CNT_NO_BACKEND, VIPD_CNT_FAMILY, VIPD_CNT_NO_SNAT,
					VIPD_CNT_SNAT_EXHAUSTED, VIPD_CNT_TTL, VIPD_CNT_NO_NEIGH,
					VIPD_CNT_FIB_FAIL, VIPD_CNT_DSR_OFFLINK,
					VIPD_CNT_MAP_FULL };
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		sum += env_counter(e, idx[i]);
	return sum;
}

/* Index of the main backend (0..2) with address a, or whose MAC is mac; -1 if none. */
static int xc_backend(int family, const uint8_t *a, const uint8_t *mac)
{
	uint8_t x[16], m[6];
	int i;

	for (i = 0; i < 3; i++) {
		pkt_addr(family, x, env_backend_addr(family, i));
		pkt_mac(m, env_backend_mac(i));
		if ((a && !memcmp(a, x, 16)) || (mac && !memcmp(mac, m, 6)))
			return i;
	}
	return -1;
}

static int xc_addr_is(int family, const uint8_t *a, const char *s)
{
	uint8_t x[16];

	pkt_addr(family, x, s);
	return !memcmp(a, x, 16);
}

static int xc_mac_is(const uint8_t *m, const char *s)
{
	uint8_t x[6];

	pkt_mac(x, s);
	return !memcmp(m, x, 6);
}

/* Whether a forwarded client frame (the last pass's) went to a backend as the mode says. */
static int xc_forward_ok(const struct xc_case *c, const uint8_t *out, size_t len,
			 unsigned int passes)
{
	const struct env_vip *v = &env_vips[c->vip_id];
	struct pkt_view pv;
	uint8_t m[6];
	int i;

	if (pkt_parse(out, len, &pv) || !pkt_l4_csum_ok(out, len) ||
	    (c->family == 4 && !pkt_ipv4_csum_ok(out, len)) || !xc_mac_is(pv.smac, XC_MAC_VB0))
		return 0;
	if (v->mode == VIPD_MODE_DSR) {
		i = xc_backend(c->family, NULL, pv.dmac);
		if (i < 0 || !xc_addr_is(c->family, pv.dst, v->addr) || pv.ttl != 64)
			return 0;
	} else {
		i = xc_backend(c->family, pv.dst, NULL);
		if (i < 0 || pv.dport != v->bport || pv.ttl != 63)
			return 0;
		pkt_mac(m, env_backend_mac(i));
		if (memcmp(pv.dmac, m, 6))
			return 0;
	}
	if (v->mode == VIPD_MODE_FULLNAT)
		return xc_addr_is(c->family, pv.src, xc_snat(c->family)) &&
		       pv.sport >= VIPD_SNAT_PORT_MIN && pv.sport <= VIPD_SNAT_PORT_MAX;
	if (!xc_addr_is(c->family, pv.src, xc_client(c->family)))
		return 0;
	if (c->kind == XC_NEW)
		return pv.sport == XC_PORT_BASE + (passes - 1) % XC_PORTS;
	return pv.sport == XC_CLIENT_PORT;
}

static int xc_reply_ok(const struct xc_case *c, const uint8_t *out, size_t len)
{
	const struct env_vip *v = &env_vips[c->vip_id];
	struct pkt_view pv;

	return !pkt_parse(out, len, &pv) && pkt_l4_csum_ok(out, len) &&
	       (c->family == 6 || pkt_ipv4_csum_ok(out, len)) &&
	       xc_addr_is(c->family, pv.src, v->addr) && pv.sport == v->port &&
	       xc_addr_is(c->family, pv.dst, xc_client(c->family)) &&
	       pv.dport == XC_CLIENT_PORT && pv.ttl == 63 && xc_mac_is(pv.dmac, XC_MAC_CLIENT) &&
	       xc_mac_is(pv.smac, XC_MAC_VC0);
}

static int xc_output_ok(const struct xc_case *c, const uint8_t *in, const uint8_t *out,
			size_t len, unsigned int passes)
{
	switch (c->kind) {
	case XC_BARE:
		/* Swapped once per pass, on the same buffer. */
		if (passes % 2 == 0)
			return !memcmp(out, in, len);
		/* fall through */
	case XC_FLOOR:
		return !memcmp(out, in + 6, 6) && !memcmp(out + 6, in, 6) &&
		       !memcmp(out + 12, in + 12, len - 12);
	case XC_NEW:
	case XC_EST:
		return xc_forward_ok(c, out, len, passes);
	case XC_REPLY:
		return xc_reply_ok(c, out, len);
	default:
		return !memcmp(out, in, len);
	}
}

/*
 * A backend's reply to the client flow (XC_CLIENT_PORT) just created: read its backend and
 * FULLNAT source from conns.
 */
static size_t xc_reply_frame(struct xc_bench *b, const struct xc_case *c, uint8_t *buf)
{
	const struct env_vip *v = &env_vips[c->vip_id];
	struct vipd_backend be;
	struct vipd_flow k;
	struct vipd_conn conn;
	struct pkt_spec s;
	int i;

	memset(&k, 0, sizeof(k));
	pkt_addr(c->family, k.src, xc_client(c->family));
	pkt_addr(c->family, k.dst, v->addr);
	k.sport = htons(XC_CLIENT_PORT);
	k.dport = htons(v->port);
	k.proto = c->proto;
	k.family = c->family == 4 ? VIPD_FAMILY_V4 : VIPD_FAMILY_V6;
	if (bpf_map_lookup_elem(b->e.conns, &k, &conn) ||
	    bpf_map_lookup_elem(b->e.backends, &conn.backend_id, &be))
		return 0;
	i = xc_backend(c->family, be.addr, NULL);
	if (i < 0)
		return 0;
	pkt_spec_init(&s, c->family, c->proto, env_backend_addr(c->family, i), v->bport,
		      xc_client(c->family), XC_CLIENT_PORT);
	if (v->mode == VIPD_MODE_FULLNAT) {
		memcpy(s.dst, conn.snat_addr, 16);
		s.dport = ntohs(conn.snat_port);
	}
	pkt_mac(s.smac, env_backend_mac(i));
	pkt_mac(s.dmac, XC_MAC_VB0);
	if (c->proto == IPPROTO_TCP)
		s.tcp_flags = 0x10;
	return pkt_build(&s, buf, XC_FRAME_MAX);
}

/* Points the wrappers at a frame; vary: each pass a new flow of protocol vary. */
static void xc_set_frame(struct xc_bench *b, const uint8_t *frame, size_t len, uint32_t vary)
{
	struct vipd_bpf__bss *bss = b->e.skel->bss;

	memcpy(bss->xcost_frame, frame, len);
	bss->xcost_len = (uint32_t)len;
	bss->xcost_vary = vary;
	bss->xcost_seq = 0;
	memset(bss->xcost_verdicts, 0, sizeof(bss->xcost_verdicts));
}

/* The ESTABLISHED state: one pass of the client's first packet. */
static int xc_prime(struct xc_bench *b, const struct xc_case *c)
{
	uint8_t frame[XC_FRAME_MAX], out[256];
	size_t len = xc_client_frame(c, 0, frame), out_len = sizeof(out);
	uint32_t ns, verdict;
	int err;

	xc_set_frame(b, frame, len, 0);
	err = env_run_prog(b->vipd_fd, b->e.ifc, frame, len, 1, out, &out_len, &ns, &verdict);
	if (err)
		return err;
	return verdict == XDP_REDIRECT ? 0 : -EPROTO;
}

static int xc_load(struct xc_bench *b)
{
	if (env_load(&b->e))
		return -1;
	b->vipd_fd = bpf_program__fd(b->e.skel->progs.xcost_vipd);
	b->floor_fd = bpf_program__fd(b->e.skel->progs.xcost_floor);
	b->bare_fd = bpf_program__fd(b->e.skel->progs.xcost_bare);
	return 0;
}

/* One run of passes passes; printed unless round < 0. */
static int xc_measure(struct xc_bench *b, const struct xc_case *c, int round, unsigned int passes)
{
	uint8_t frame[XC_FRAME_MAX], out[256];
	size_t len = 0, out_len = sizeof(out);
	struct vipd_stats st0, st1;
	uint64_t drops0, reused0, ok;
	int vip = c->kind == XC_NEW || c->kind == XC_EST || c->kind == XC_REPLY;
	int prog, ifindex = b->e.ifc, err;
	const char *stats = "-";
	uint32_t ns, verdict, vary = 0;

	if (c->kind == XC_NEW && round >= 0 && b->fresh) {
		env_unload(&b->e);
		if (xc_load(b))
			return -1;
	}
	prog = b->vipd_fd;
	if (vip && (xc_clear(b->e.conns) || xc_clear(b->e.rev))) {
		fprintf(stderr, "xdp_cost: cannot empty conns/rev\n");
		return -1;
	}
	if ((c->kind == XC_EST || c->kind == XC_REPLY) && xc_prime(b, c)) {
		fprintf(stderr, "xdp_cost: %s: the flow's first packet was not forwarded\n",
			c->name);
		return -1;
	}
	switch (c->kind) {
	case XC_BARE:
		prog = b->bare_fd;
		len = xc_client_frame(c, 0, frame);
		break;
	case XC_FLOOR:
		prog = b->floor_fd;
		len = xc_client_frame(c, 0, frame);
		break;
	case XC_NEW:
		vary = c->proto;
		len = xc_client_frame(c, 0, frame);
		break;
	case XC_EST:
	case XC_NONVIP:
		len = xc_client_frame(c, 1, frame);
		break;
	case XC_REPLY:
		ifindex = b->e.ifb;
		len = xc_reply_frame(b, c, frame);
		break;
	case XC_ARP:
		len = xc_arp_frame(frame);
		break;
	}
	if (!len) {
		fprintf(stderr, "xdp_cost: %s: cannot build the frame\n", c->name);
		return -1;
	}
	xc_set_frame(b, frame, len, vary);
	if (vip && env_stats(&b->e, b->e.vip_stats, c->vip_id, &st0))
		return -1;
	drops0 = xc_drops(&b->e);
	reused0 = env_counter(&b->e, VIPD_CNT_SNAT_REUSED);
	err = env_run_prog(prog, ifindex, frame, len, passes, out, &out_len, &ns, &verdict);
	if (err) {
		fprintf(stderr, "xdp_cost: %s: BPF_PROG_TEST_RUN: %s\n", c->name, strerror(-err));
		return -1;
	}
	if (vip) {
		int counted;

		if (env_stats(&b->e, b->e.vip_stats, c->vip_id, &st1))
			return -1;
		if (c->kind == XC_REPLY)
			counted = st1.reply_packets - st0.reply_packets == passes;
		else
			counted = st1.packets - st0.packets == passes &&
				  st1.conns - st0.conns == (c->kind == XC_NEW ? passes : 0);
		stats = counted ? "1" : "0";
	}
	if (round < 0)
		return 0;
	/* The bare floor keeps no tally; it has one outcome, so its last verdict tells. */
	if (c->kind == XC_BARE)
		ok = verdict == c->expect ? passes : 0;
	else
		ok = b->e.skel->bss->xcost_verdicts[c->expect];
	printf("run %s %d %u %u %llu %s %d %llu %llu\n", c->name, round, ns, passes,
	       (unsigned long long)ok, stats,
	       out_len == len && xc_output_ok(c, frame, out, len, passes),
	       (unsigned long long)(xc_drops(&b->e) - drops0),
	       (unsigned long long)(env_counter(&b->e, VIPD_CNT_SNAT_REUSED) - reused0));
	fflush(stdout);
	return 0;
}

static unsigned int xc_arg(int argc, char **argv, int i, unsigned int def, unsigned int max)
{
	unsigned long v;
	char *end;

	if (argc <= i)
		return def;
	v = strtoul(argv[i], &end, 10);
	if (*end || v == 0 || v > max) {
		fprintf(stderr, "xdp_cost: bad argument %s (1..%u)\n", argv[i], max);
		exit(2);
	}
	return (unsigned int)v;
}

int main(int argc, char **argv)
{
	static struct xc_bench b;
	unsigned int rounds;
	int i, r, rc = 0;

	rounds = xc_arg(argc, argv, 1, 5, 100);
	b.est_passes = xc_arg(argc, argv, 2, 1000000, 100000000);
	/* Within the client port range the wrapper cycles through, and well within conns. */
	b.new_flows = xc_arg(argc, argv, 3, 16384, XC_PORTS);
	b.fresh = getenv("XDP_COST_FRESH") && !strcmp(getenv("XDP_COST_FRESH"), "1");
	if (env_netns() || xc_load(&b))
		return 1;
	if (xc_cases(&b)) {
		fprintf(stderr, "xdp_cost: the test bed (xdp_env.c) lacks a VIP used here\n");
		env_unload(&b.e);
		return 1;
	}
	for (i = 0; i < b.n_cases; i++)
		printf("case %s %s %s\n", b.cases[i].name, xc_group(&b.cases[i]),
		       xc_verdict_name[b.cases[i].expect]);
	/*
	 * Churn conns and rev once (fill a quarter, empty in hash order), as a long-running
	 * node's tables are: fresh maps hand out their elements in memory order, which makes
	 * the first new flows cost about half what later ones do on this kind of machine.
	 */
	for (i = 0; i < b.n_cases && strcmp(b.cases[i].name, "new-v4-tcp-nat"); i++)
		;
	if (!b.fresh)
		rc = xc_measure(&b, &b.cases[i], -1, XC_PORTS);
	for (r = 0; r < (int)rounds && !rc; r++)
		for (i = 0; i < b.n_cases && !rc; i++)
			if (argc <= 4 || b.cases[i].kind <= XC_FLOOR ||
			    !strncmp(b.cases[i].name, argv[4], strlen(argv[4])))
				rc = xc_measure(&b, &b.cases[i], r,
						b.cases[i].kind == XC_NEW ? b.new_flows :
									    b.est_passes);
	env_unload(&b.e);
	return rc ? 1 : 0;
}
