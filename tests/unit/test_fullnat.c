/* fullnat: the nft script for the fullnat SNAT table, and the order of its services. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dataplane/fullnat.h"

#define BIG 65536

static struct ipvs_service_key key(const char *addr, uint16_t proto, uint16_t port)
{
	struct ipvs_service_key k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(ip_addr_parse(addr, &k.addr), 0);
	k.protocol = proto;
	k.port = port;
	return k;
}

static char *render(const struct ipvs_service_key *s, size_t n)
{
	static char buf[BIG];
	ssize_t len = fullnat_render(s, n, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal((size_t)len, strlen(buf));
	return buf;
}

#define HEAD "table inet vipd {}\ndelete table inet vipd\ntable inet vipd {\n"
#define SET4 "\tset fullnat4 {\n\t\ttype ipv4_addr . inet_proto . inet_service\n"
#define SET6 "\tset fullnat6 {\n\t\ttype ipv6_addr . inet_proto . inet_service\n"
#define CHAIN \
	"\tchain postrouting {\n" \
	"\t\ttype nat hook postrouting priority srcnat; policy accept;\n" \
	"\t\tmeta l4proto tcp ct original ip daddr . meta l4proto . ct original proto-dst " \
	"@fullnat4 masquerade\n" \
	"\t\tmeta l4proto udp ct original ip daddr . meta l4proto . ct original proto-dst " \
	"@fullnat4 masquerade\n" \
	"\t\tmeta l4proto tcp ct original ip6 daddr . meta l4proto . ct original proto-dst " \
	"@fullnat6 masquerade\n" \
	"\t\tmeta l4proto udp ct original ip6 daddr . meta l4proto . ct original proto-dst " \
	"@fullnat6 masquerade\n" \
	"\t}\n}\n"

static void test_v4(void **state)
{
	struct ipvs_service_key s[] = {
		key("10.0.0.10", IPPROTO_TCP, 80),
		key("10.0.0.10", IPPROTO_UDP, 53),
	};

	(void)state;
	assert_string_equal(render(s, 2),
			    HEAD SET4
			    "\t\telements = {\n"
			    "\t\t\t10.0.0.10 . tcp . 80,\n"
			    "\t\t\t10.0.0.10 . udp . 53,\n"
			    "\t\t}\n"
			    "\t}\n"
			    SET6 "\t}\n" CHAIN);
}

static void test_v6(void **state)
{
	struct ipvs_service_key s[] = { key("2001:db8::10", IPPROTO_TCP, 443) };

	(void)state;
	assert_string_equal(render(s, 1),
			    HEAD SET4 "\t}\n" SET6
			    "\t\telements = {\n"
			    "\t\t\t2001:db8::10 . tcp . 443,\n"
			    "\t\t}\n"
			    "\t}\n" CHAIN);
}

static void test_both(void **state)
{
	struct ipvs_service_key s[] = {
		key("192.0.2.1", IPPROTO_TCP, 8080),
		key("2001:db8::1", IPPROTO_UDP, 53),
		key("10.1.2.3", IPPROTO_UDP, 65535),
		key("::ffff:10.0.0.1", IPPROTO_TCP, 1),
	};

	(void)state;
	/* Each element lands in its family's set, in the order given. */
	assert_string_equal(render(s, 4),
			    HEAD SET4
			    "\t\telements = {\n"
			    "\t\t\t192.0.2.1 . tcp . 8080,\n"
			    "\t\t\t10.1.2.3 . udp . 65535,\n"
			    "\t\t}\n"
			    "\t}\n" SET6
			    "\t\telements = {\n"
			    "\t\t\t2001:db8::1 . udp . 53,\n"
			    "\t\t\t::ffff:10.0.0.1 . tcp . 1,\n"
			    "\t\t}\n"
			    "\t}\n" CHAIN);
}

static void test_none(void **state)
{
	char buf[64];

	(void)state;
	/* No service: the table is deleted, not left empty. */
	assert_string_equal(render(NULL, 0), "delete table inet vipd\n");
	assert_int_equal(fullnat_render(NULL, 0, buf, 23), -ENOSPC);
	assert_int_equal(fullnat_render(NULL, 0, buf, 24), 23);
	assert_int_equal(fullnat_render(NULL, 0, buf, 0), -ENOSPC);
}

static struct ipvs_service_key *many(size_t n)
{
	struct ipvs_service_key *s = calloc(n, sizeof(*s));

	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		s[i].protocol = i % 3 ? IPPROTO_TCP : IPPROTO_UDP;
		s[i].port = (uint16_t)(1 + i % 65535);
		if (i % 2) {
			s[i].addr.family = AF_INET6;
			s[i].addr.v6.s6_addr[0] = 0x20;
			s[i].addr.v6.s6_addr[1] = 0x01;
			s[i].addr.v6.s6_addr[2] = 0x0d;
			s[i].addr.v6.s6_addr[3] = 0xb8;
			s[i].addr.v6.s6_addr[14] = (uint8_t)(i >> 8);
			s[i].addr.v6.s6_addr[15] = (uint8_t)i;
		} else {
			s[i].addr.family = AF_INET;
			s[i].addr.v4.s_addr = htonl(0x0a000000u + (uint32_t)i);
		}
	}
	return s;
}

static size_t count(const char *text, const char *what)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

static void test_many_and_too_small(void **state)
{
	size_t n = 4000, sizes[] = { 0, 1, 60, 1000, 0 /* len */ };
	struct ipvs_service_key *s = many(n);
	char *buf = malloc(4 * BIG), *copy;
	ssize_t len = fullnat_render(s, n, buf, 4 * BIG);

	(void)state;
	assert_non_null(buf);
	assert_true(len > 0);
	assert_int_equal(count(buf, " . tcp . ") + count(buf, " . udp . "), n);
	assert_int_equal(count(buf, "elements = {"), 2);
	copy = strdup(buf);
	assert_non_null(copy);
	/* Exactly len + 1 bytes are enough; any less is -ENOSPC, and nothing is written past the
	 * buffer's end. */
	sizes[4] = (size_t)len;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		memset(buf, 'x', 4 * BIG);
		assert_int_equal(fullnat_render(s, n, buf, sizes[i]), -ENOSPC);
		assert_int_equal(buf[sizes[i]], 'x');
	}
	memset(buf, 'x', 4 * BIG);
	assert_int_equal(fullnat_render(s, n, buf, (size_t)len + 1), len);
	assert_string_equal(buf, copy);
	assert_int_equal(buf[len + 1], 'x');
	free(copy);
	free(buf);
	free(s);
}

static void test_sort_dedup(void **state)
{
	struct ipvs_service_key s[] = {
		key("2001:db8::1", IPPROTO_TCP, 80),
		key("10.0.0.2", IPPROTO_UDP, 80),
		key("10.0.0.2", IPPROTO_TCP, 443),
		key("10.0.0.10", IPPROTO_TCP, 80),
		key("10.0.0.2", IPPROTO_TCP, 80),
		key("2001:db8::1", IPPROTO_TCP, 80),
		key("10.0.0.2", IPPROTO_TCP, 443),
	};
	const char *want[] = { "10.0.0.2 . tcp . 80", "10.0.0.2 . tcp . 443",
			       "10.0.0.2 . udp . 80", "10.0.0.10 . tcp . 80",
			       "2001:db8::1 . tcp . 80" };
	char first[4096], *text;
	const char *p;

	(void)state;
	assert_int_equal(fullnat_services_sort(s, 7), 5);
	assert_int_equal(fullnat_services_sort(s, 0), 0);
	text = render(s, 5);
	p = text;
	for (size_t i = 0; i < 5; i++) {
		p = strstr(p, want[i]);
		assert_non_null(p);
	}
	snprintf(first, sizeof(first), "%s", text);
	/* The same services in any order, with repeats, give the same script. */
	for (unsigned seed = 1; seed <= 50; seed++) {
		struct ipvs_service_key t[10];

		srand(seed);
		for (size_t i = 0; i < 10; i++)
			t[i] = s[(size_t)rand() % 5];
		for (size_t i = 0; i < 5; i++)
			t[i] = s[i];
		for (size_t i = 9; i > 0; i--) {
			size_t j = (size_t)rand() % (i + 1);
			struct ipvs_service_key x = t[i];

			t[i] = t[j];
			t[j] = x;
		}
		assert_int_equal(fullnat_services_sort(t, 10), 5);
		assert_string_equal(render(t, 5), first);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4),
		cmocka_unit_test(test_v6),
		cmocka_unit_test(test_both),
		cmocka_unit_test(test_none),
		cmocka_unit_test(test_many_and_too_small),
		cmocka_unit_test(test_sort_dedup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
