/*
 * Randomized BPF_PROG_TEST_RUN harness: random frames and mutated valid ones (VIP traffic,
 * replies to live translations, non-VIP traffic) through the XDP program while the tables
 * change under it. Asserts that every run succeeds with a sane verdict, keeps the frame's
 * length, leaves non-IP frames alone, changes a passed frame only when the next hop was
 * unresolved, and never breaks a checksum that was valid on input.
 *   random_packets [SEED [COUNT]]     (defaults 1 and 200000)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pkt.h"
#include "xdp_env.h"

static uint64_t rp_seed = 1;
static long rp_count = 200000;
static uint64_t rp_state;

/* The last FULLNAT source ports seen, so replies can hit live reverse entries. */
static uint16_t rp_ports[64];
static unsigned int rp_nports, rp_next;

static uint64_t rp_rand(void)
{
	uint64_t x = rp_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rp_state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rp_below(uint32_t n)
{
	return (uint32_t)(rp_rand() % n);
}

static const char *const rp_other_v4[] = { "10.0.0.1", "10.1.0.1", "10.9.0.7", "10.0.0.2",
					   "198.51.100.9", "10.1.0.99" };
static const char *const rp_other_v6[] = { "fd00:1::1", "fd00:2::1", "fd00:9::7", "fd00:1::2",
					   "2001:db8:100::9" };
static const uint16_t rp_other_ports[] = { 22, 179, 80, 53, 8080, 5353, 443, 1, 65535 };

static void rp_random_spec(struct pkt_spec *s, uint8_t *payload)
{
	uint32_t kind = rp_below(10);
	int family;

	if (kind < 5) {
		/* To a VIP (any of the table, special ones included). */
		const struct env_vip *v = &env_vips[rp_below(ENV_N_VIPS)];

		pkt_spec_init(s, v->family, v->proto, v->family == 4 ? "10.0.0.2" : "fd00:1::2",
			      (uint16_t)(1024 + rp_below(2000)), v->addr, v->port);
		if (rp_below(4) == 0)
			pkt_addr(v->family, s->src, v->family == 4 ? "198.51.100.7" :
								     "2001:db8:100::7");
	} else if (kind < 8) {
		/* A backend's answer, often to a live translation. */
		int b = (int)rp_below(3);

		family = rp_below(2) ? 4 : 6;
		pkt_spec_init(s, family, rp_below(2) ? IPPROTO_TCP : IPPROTO_UDP,
			      env_backend_addr(family, b), rp_below(2) ? 8080 : 5353,
			      family == 4 ? "10.1.0.1" : "fd00:2::1",
			      rp_nports ? rp_ports[rp_below(rp_nports)] : 2000);
		if (rp_below(3) == 0) {
			pkt_addr(family, s->dst, family == 4 ? "10.0.0.2" : "fd00:1::2");
			s->dport = (uint16_t)(1024 + rp_below(2000));
		}
	} else {
		static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, 47, 0 };

		family = rp_below(2) ? 4 : 6;
		pkt_spec_init(s, family, protos[rp_below(sizeof(protos))],
			      family == 4 ? rp_other_v4[rp_below(6)] : rp_other_v6[rp_below(5)],
			      rp_other_ports[rp_below(9)],
			      family == 4 ? rp_other_v4[rp_below(6)] : rp_other_v6[rp_below(5)],
			      rp_other_ports[rp_below(9)]);
	}
	if (rp_below(8) == 0)
		s->ttl = (uint8_t)rp_below(4);
	if (s->family == 4 && rp_below(6) == 0)
		s->ip_opt_words = (uint8_t)rp_below(11);
	if (s->family == 4 && rp_below(10) == 0)
		s->frag_off = (uint16_t)rp_rand();
	if (rp_below(10) == 0)
		s->udp_no_csum = 1;
	s->payload_len = rp_below(120);
	for (size_t i = 0; i < s->payload_len; i++)
		payload[i] = (uint8_t)rp_rand();
	s->payload = payload;
}

/* Mutations: flip or set bytes in the headers, truncate, or append junk. */
static size_t rp_mutate(uint8_t *buf, size_t len, size_t cap)
{
	uint32_t n = rp_below(5), i;

	for (i = 0; i < n && len; i++) {
		uint32_t at = rp_below((uint32_t)(len < 80 ? len : 80));

		switch (rp_below(5)) {
		case 0:
			buf[at] ^= (uint8_t)(1 << rp_below(8));
			break;
		case 1:
			buf[at] = (uint8_t)rp_rand();
			break;
		case 2:
			len = rp_below((uint32_t)len + 1);
			break;
		case 3: {
			size_t extra = rp_below(64);

			if (len + extra > cap)
				extra = cap - len;
			for (size_t k = 0; k < extra; k++)
				buf[len + k] = (uint8_t)rp_rand();
			len += extra;
			break;
		}
		default:
			/* Swap the ethertype between IPv4 and IPv6 over the same bytes. */
			if (len >= 14) {
				buf[12] = buf[13] == 0x00 ? 0x86 : 0x08;
				buf[13] = buf[13] == 0x00 ? 0xdd : 0x00;
			}
			break;
		}
	}
	return len;
}

/* Tables changing under the traffic: rings swapped, backends dying and coming back. */
static void rp_churn(struct xdp_env *e)
{
	uint32_t vip = rp_below(ENV_N_MAIN_VIPS), b = rp_below(3), ids[3];
	const struct env_vip *v = &env_vips[vip];
	int i, n = 1 + (int)rp_below(3);
	uint8_t flags;

	if (rp_below(2)) {
		for (i = 0; i < n; i++)
			ids[i] = vip * 3 + (b + (uint32_t)i) % 3;
		assert_int_equal(env_ring_set(e, vip, ids, (size_t)n), 0);
		return;
	}
	flags = rp_below(2) ? VIPD_BACKEND_F_ALIVE : 0;
	assert_int_equal(env_backend_set(e, vip * 3 + b, v->family,
					 env_backend_addr(v->family, (int)b), v->bport, flags),
			 0);
}

static void random_packets(void **state)
{
	struct xdp_env *e = *state;
	uint64_t verdicts[5] = { 0 }, einval = 0, rewritten_pass = 0, forwarded_checked = 0;
	uint8_t in[2048], out[2048], payload[128];
	long i;

	rp_state = rp_seed * 0x9E3779B97F4A7C15ull + 1;
	for (i = 0; i < rp_count; i++) {
		struct pkt_view iv, ov;
		struct pkt_spec s;
		size_t len, olen = sizeof(out);
		uint32_t verdict;
		int ifindex, err, in_ip_ok = 0, in_l4_ok = 0, in_parsed;
		uint64_t neigh_before = 0;

		if (i % 5000 == 4999)
			rp_churn(e);
		if (rp_below(7) == 0) {
			len = rp_below(300);
			for (size_t k = 0; k < len; k++)
				in[k] = (uint8_t)rp_rand();
			if (len >= 14 && rp_below(2))
				memcpy(in + 12, rp_below(2) ? "\x08\x00" : "\x86\xdd", 2);
		} else {
			rp_random_spec(&s, payload);
			len = pkt_build(&s, in, sizeof(in));
			if (rp_below(2))
				len = rp_mutate(in, len, sizeof(in));
		}
		ifindex = (int[]){ e->ifc, e->ifb, 1 }[rp_below(3)];
		in_parsed = pkt_parse(in, len, &iv) == 0;
		if (in_parsed) {
			in_ip_ok = iv.family == 6 || pkt_ipv4_csum_ok(in, len);
			in_l4_ok = pkt_l4_csum_ok(in, len);
			neigh_before = env_counter(e, VIPD_CNT_NO_NEIGH);
		}

		err = env_run(e, ifindex, in, len, out, &olen, &verdict);
		if (len < 14) {
			assert_int_equal(err, -EINVAL);
			einval++;
			continue;
		}
		if (err) {
			fprintf(stderr, "packet %ld: BPF_PROG_TEST_RUN failed: %s\n", i,
				strerror(-err));
			fail();
		}
		if (verdict != XDP_PASS && verdict != XDP_DROP && verdict != XDP_TX &&
		    verdict != XDP_REDIRECT) {
			fprintf(stderr, "packet %ld: verdict %u\n", i, verdict);
			fail();
		}
		verdicts[verdict]++;
		assert_int_equal(olen, len);
		if (!in_parsed && !(in[12] == 0x08 && in[13] == 0x00) &&
		    !(in[12] == 0x86 && in[13] == 0xdd)) {
			assert_int_equal(verdict, XDP_PASS);
			assert_true(pkt_same(out, olen, in, len));
			continue;
		}
		if (verdict == XDP_DROP || !memcmp(out, in, len))
			continue;
		/* Changed: forwarded, or passed rewritten for lack of a neighbour entry. */
		if (verdict == XDP_PASS) {
			assert_true(in_parsed);
			assert_true(env_counter(e, VIPD_CNT_NO_NEIGH) > neigh_before);
			rewritten_pass++;
		}
		assert_true(in_parsed);
		assert_int_equal(pkt_parse(out, olen, &ov), 0);
		if (in_ip_ok && ov.family == 4 && !pkt_ipv4_csum_ok(out, olen)) {
			fprintf(stderr, "packet %ld: IPv4 checksum broken\n", i);
			assert_true(pkt_same(out, olen, in, len));
		}
		if (in_l4_ok && !pkt_l4_csum_ok(out, olen)) {
			fprintf(stderr, "packet %ld: L4 checksum broken\n", i);
			assert_true(pkt_same(out, olen, in, len));
		}
		forwarded_checked += in_ip_ok && in_l4_ok;
		if (ov.family == 4 && ov.sport >= VIPD_SNAT_PORT_MIN &&
		    ov.sport <= VIPD_SNAT_PORT_MAX && ov.src[0] == 10 && ov.src[1] == 1)
		{
			rp_ports[rp_next++ % 64] = ov.sport;
			rp_nports = rp_next < 64 ? rp_next : 64;
		}
	}
	printf("random_packets: seed %" PRIu64 ", %ld packets: pass %" PRIu64 " (rewritten %" PRIu64
	       ") drop %" PRIu64 " tx %" PRIu64 " redirect %" PRIu64
	       " refused-short %" PRIu64 "; %" PRIu64 " forwarded with checksums verified\n",
	       rp_seed, rp_count, verdicts[XDP_PASS], rewritten_pass, verdicts[XDP_DROP],
	       verdicts[XDP_TX], verdicts[XDP_REDIRECT], einval, forwarded_checked);
	assert_true(verdicts[XDP_TX] > 0 && verdicts[XDP_REDIRECT] > 0 && verdicts[XDP_DROP] > 0);
}

static int rp_setup(void **state)
{
	static struct xdp_env e;

	if (env_load(&e))
		return -1;
	*state = &e;
	return 0;
}

static int rp_teardown(void **state)
{
	env_unload(*state);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(random_packets, rp_setup, rp_teardown),
	};

	if (argc > 1)
		rp_seed = strtoull(argv[1], NULL, 0);
	if (argc > 2)
		rp_count = strtol(argv[2], NULL, 0);
	if (env_netns()) {
		fprintf(stderr, "random_packets: cannot build the test namespace (root needed)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
