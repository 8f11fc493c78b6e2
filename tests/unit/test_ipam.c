#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/ipam.h"

static char errbuf[256];

/* Parses s and returns "first-last" in canonical form, or "ERR: message". */
static const char *parsed(const char *s)
{
	static char out[2 * IP_ADDR_STRLEN + 300];
	char a[IP_ADDR_STRLEN], b[IP_ADDR_STRLEN];
	struct ipam_range r;

	errbuf[0] = '\0';
	if (ipam_range_parse(s, &r, errbuf, sizeof(errbuf)) != 0) {
		assert_true(errbuf[0] != '\0');
		snprintf(out, sizeof(out), "ERR: %s", errbuf);
		return out;
	}
	assert_int_equal(r.first.family, r.last.family);
	assert_true(ip_addr_cmp(&r.first, &r.last) <= 0);
	snprintf(out, sizeof(out), "%s-%s", ip_addr_str(&r.first, a), ip_addr_str(&r.last, b));
	return out;
}

static bool is_err(const char *s)
{
	return strncmp(parsed(s), "ERR: ", 5) == 0;
}

static void test_parse_v4_ranges(void **st)
{
	(void)st;
	assert_string_equal(parsed("192.168.1.200-192.168.1.250"), "192.168.1.200-192.168.1.250");
	assert_string_equal(parsed("10.0.0.7-10.0.0.7"), "10.0.0.7-10.0.0.7");
	assert_string_equal(parsed("192.0.2.7"), "192.0.2.7-192.0.2.7");
	assert_string_equal(parsed("2001:db8::7"), "2001:db8::7-2001:db8::7");
	assert_string_equal(parsed("2001:DB8::1-2001:db8::1:0"), "2001:db8::1-2001:db8::1:0");
	assert_string_equal(parsed("192.168.1.9-192.168.1.1"),
			    "ERR: first address 192.168.1.9 is after the last 192.168.1.1");
	assert_string_equal(parsed("2001:db8::2-2001:db8::1"),
			    "ERR: first address 2001:db8::2 is after the last 2001:db8::1");
}

static void test_parse_whitespace(void **st)
{
	(void)st;
	assert_string_equal(parsed("  192.168.1.200 - 192.168.1.250\t\n"),
			    "192.168.1.200-192.168.1.250");
	assert_string_equal(parsed(" 10.0.0.0 / 30 "), "10.0.0.1-10.0.0.2");
	assert_string_equal(parsed(" 192.0.2.1 "), "192.0.2.1-192.0.2.1");
	assert_string_equal(parsed(""), "ERR: empty range");
	assert_string_equal(parsed(" \t "), "ERR: empty range");
	assert_string_equal(parsed(NULL), "ERR: empty range");
	assert_true(is_err("192.168.1.200 192.168.1.250"));
	assert_true(is_err("10.0.0.1 0"));
	assert_true(is_err("10. 0.0.1"));
}

static void test_parse_families_and_garbage(void **st)
{
	(void)st;
	assert_string_equal(parsed("192.0.2.1-2001:db8::1"),
			    "ERR: 192.0.2.1 and 2001:db8::1 are not of the same family");
	assert_string_equal(parsed("2001:db8::1-192.0.2.1"),
			    "ERR: 2001:db8::1 and 192.0.2.1 are not of the same family");
	assert_string_equal(parsed("banana"), "ERR: \"banana\" is not an IPv4 or IPv6 address");
	assert_string_equal(parsed("10.0.0.256-10.0.0.1"),
			    "ERR: \"10.0.0.256\" is not an IPv4 or IPv6 address");
	assert_string_equal(parsed("10.0.0.1-"), "ERR: an address is missing");
	assert_string_equal(parsed("-10.0.0.1"), "ERR: an address is missing");
	assert_string_equal(parsed("-"), "ERR: an address is missing");
	assert_true(is_err("10.0.0.1-10.0.0.2-10.0.0.3"));
	assert_true(is_err("example.com"));
	assert_true(is_err("fe80::1%eth0"));
	assert_true(is_err("10.0.0.1,10.0.0.2"));
	assert_true(is_err("0x0a000001"));
	assert_true(is_err("10.0.0.0/8-10.0.0.1"));
	assert_true(is_err("10.0.0.1-10.0.0.0/8"));
	assert_true(is_err("::ffff:1.2.3.4.5"));
	/* a very long token is cut short in the message, not copied whole */
	{
		char big[400];

		memset(big, '1', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		assert_true(is_err(big));
		assert_true(strlen(errbuf) < 120);
		assert_non_null(strstr(errbuf, "..."));
	}
}

static void test_parse_cidr_v4(void **st)
{
	(void)st;
	assert_string_equal(parsed("10.0.0.0/24"), "10.0.0.1-10.0.0.254");
	assert_string_equal(parsed("10.0.0.0/30"), "10.0.0.1-10.0.0.2");
	/* RFC 3021 point-to-point /31: both addresses usable */
	assert_string_equal(parsed("10.0.0.0/31"), "10.0.0.0-10.0.0.1");
	assert_string_equal(parsed("10.0.0.4/32"), "10.0.0.4-10.0.0.4");
	assert_string_equal(parsed("10.96.0.0/16"), "10.96.0.1-10.96.255.254");
	assert_string_equal(parsed("0.0.0.0/0"), "0.0.0.1-255.255.255.254");
	assert_string_equal(parsed("10.0.0.5/24"),
			    "ERR: 10.0.0.5/24 has host bits set (the network is 10.0.0.0/24)");
	assert_string_equal(parsed("10.0.0.1/31"),
			    "ERR: 10.0.0.1/31 has host bits set (the network is 10.0.0.0/31)");
	assert_string_equal(parsed("10.0.0.0/33"), "ERR: prefix length \"33\" must be 0..32");
	assert_string_equal(parsed("10.0.0.0/"), "ERR: the prefix length after '/' is missing");
	assert_true(is_err("10.0.0.0/-1"));
	assert_true(is_err("10.0.0.0/+8"));
	assert_true(is_err("10.0.0.0/24/"));
	assert_true(is_err("10.0.0.0/2 4"));
	assert_true(is_err("10.0.0.0/99999999999999999999999"));
	assert_true(is_err("/24"));
	assert_true(is_err("10.0.0/24"));
}

static void test_parse_cidr_v6(void **st)
{
	(void)st;
	assert_string_equal(parsed("2001:db8::/120"), "2001:db8::1-2001:db8::ff");
	assert_string_equal(parsed("2001:db8:5::/64"),
			    "2001:db8:5::1-2001:db8:5:0:ffff:ffff:ffff:ffff");
	assert_string_equal(parsed("2001:db8::/126"), "2001:db8::1-2001:db8::3");
	/* RFC 6164 point-to-point /127: no anycast address to leave out */
	assert_string_equal(parsed("2001:db8::/127"), "2001:db8::-2001:db8::1");
	assert_string_equal(parsed("2001:db8::9/128"), "2001:db8::9-2001:db8::9");
	assert_string_equal(parsed("::/0"), "::1-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(parsed("2001:db8::1:0/100"), "ERR: 2001:db8::1:0/100 has host bits "
			    "set (the network is 2001:db8::/100)");
	assert_string_equal(parsed("2001:db8::/129"), "ERR: prefix length \"129\" must be 0..128");
}

static void test_parse_small_err_buffer(void **st)
{
	struct ipam_range r;
	char tiny[8];

	(void)st;
	memset(tiny, 'x', sizeof(tiny));
	assert_int_equal(ipam_range_parse("192.168.1.9-192.168.1.1", &r, tiny, sizeof(tiny)),
			 -EINVAL);
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_int_equal(ipam_range_parse("nope", &r, NULL, 0), -EINVAL);
}

static struct ipam_range range(const char *s)
{
	struct ipam_range r;

	assert_int_equal(ipam_range_parse(s, &r, errbuf, sizeof(errbuf)), 0);
	return r;
}

static void test_overlap(void **st)
{
	struct ipam_range a = range("10.0.0.0/24"), b = range("10.0.0.254-10.0.1.10"),
			  c = range("10.0.0.255-10.0.1.10"), d = range("2001:db8::/120"),
			  e = range("::a00:1-::a00:ff");

	(void)st;
	assert_true(ipam_ranges_overlap(&a, &b));
	assert_true(ipam_ranges_overlap(&b, &a));
	assert_false(ipam_ranges_overlap(&a, &c));
	assert_false(ipam_ranges_overlap(&a, &d));
	/* the same bits in another family are another address */
	assert_false(ipam_ranges_overlap(&a, &e));
	assert_true(ipam_ranges_overlap(&d, &d));
}

/* A source over the given range strings. */
static struct vip_source *source(const char *const *specs, size_t n)
{
	struct ipam_range r[8];
	struct vip_source *src;

	assert_true(n <= 8);
	for (size_t i = 0; i < n; i++)
		r[i] = range(specs[i]);
	src = ipam_new(r, n);
	assert_non_null(src);
	return src;
}

static struct vip_source *source1(const char *spec)
{
	return source(&spec, 1);
}

/* Allocates with family and returns the text of the address, or "E<errno>". */
static const char *alloc(struct vip_source *src, int family)
{
	static char out[IP_ADDR_STRLEN];
	struct ip_addr a;
	int r = src->ops->allocate(src, "owner", family, &a);

	if (r) {
		snprintf(out, sizeof(out), "E%d", -r);
		return out;
	}
	return ip_addr_str(&a, out);
}

static struct ip_addr addr(const char *s)
{
	struct ip_addr a;

	assert_int_equal(ip_addr_parse(s, &a), 0);
	return a;
}

static char enospc[16], eafnosupport[16];

static void test_allocate_order_and_exhaustion(void **st)
{
	struct vip_source *src = source1("10.0.0.1-10.0.0.3");
	struct ip_addr a = addr("10.0.0.2");
	uint64_t used, total;

	(void)st;
	assert_string_equal(src->ops->name, "ipam");
	assert_string_equal(alloc(src, 0), "10.0.0.1");
	assert_string_equal(alloc(src, AF_INET), "10.0.0.2");
	assert_string_equal(alloc(src, 0), "10.0.0.3");
	assert_string_equal(alloc(src, 0), enospc);
	assert_string_equal(alloc(src, AF_INET), enospc);
	src->ops->usage(src, &used, &total);
	assert_int_equal(used, 3);
	assert_int_equal(total, 3);
	/* the lowest released address comes back first */
	assert_int_equal(src->ops->release(src, &a), 0);
	assert_int_equal(src->ops->release(src, &a), -ENOENT);
	a = addr("10.0.0.3");
	assert_int_equal(src->ops->release(src, &a), 0);
	a = addr("10.0.0.1");
	assert_int_equal(src->ops->release(src, &a), 0);
	assert_string_equal(alloc(src, 0), "10.0.0.1");
	assert_string_equal(alloc(src, 0), "10.0.0.2");
	assert_string_equal(alloc(src, 0), "10.0.0.3");
	assert_string_equal(alloc(src, 0), enospc);
	src->ops->free(src);
}

static void test_allocate_across_ranges_and_families(void **st)
{
	static const char *const specs[] = {
		"2001:db8::/126", "192.0.2.10-192.0.2.11", "198.51.100.0/31",
	};
	struct vip_source *src = source(specs, 3);
	struct vip_source *v4only;

	(void)st;
	/* family 0: configuration order, so the IPv6 range first */
	assert_string_equal(alloc(src, 0), "2001:db8::1");
	assert_string_equal(alloc(src, AF_INET), "192.0.2.10");
	assert_string_equal(alloc(src, AF_INET6), "2001:db8::2");
	assert_string_equal(alloc(src, AF_INET), "192.0.2.11");
	/* first IPv4 range full: the next one */
	assert_string_equal(alloc(src, AF_INET), "198.51.100.0");
	assert_string_equal(alloc(src, AF_INET), "198.51.100.1");
	assert_string_equal(alloc(src, AF_INET), enospc);
	assert_string_equal(alloc(src, 0), "2001:db8::3");
	assert_string_equal(alloc(src, AF_INET6), enospc);
	assert_string_equal(alloc(src, 0), enospc);
	assert_string_equal(alloc(src, 12345), eafnosupport);
	src->ops->free(src);

	v4only = source1("192.0.2.0/24");
	assert_string_equal(alloc(v4only, AF_INET6), eafnosupport);
	assert_string_equal(alloc(v4only, 0), "192.0.2.1");
	v4only->ops->free(v4only);

	src = ipam_new(NULL, 0);
	assert_non_null(src);
	assert_string_equal(alloc(src, 0), eafnosupport);
	src->ops->free(src);
}

static void test_reserve_release_contains(void **st)
{
	static const char *const specs[] = { "10.0.0.0/29", "2001:db8::/120" };
	struct vip_source *src = source(specs, 2);
	struct ip_addr a = addr("10.0.0.1"), out = addr("10.0.0.7"), v6 = addr("2001:db8::80");
	struct ip_addr unset;
	uint64_t used, total;

	(void)st;
	memset(&unset, 0, sizeof(unset));
	assert_true(src->ops->contains(src, &a));
	assert_true(src->ops->contains(src, &v6));
	/* broadcast of the /29 and the IPv6 anycast address are outside */
	assert_false(src->ops->contains(src, &out));
	out = addr("2001:db8::");
	assert_false(src->ops->contains(src, &out));
	/* the same bits in the other family are not in the range */
	out = addr("::a00:1");
	assert_false(src->ops->contains(src, &out));
	assert_false(src->ops->contains(src, &unset));

	assert_int_equal(src->ops->reserve(src, "x", &a), 0);
	assert_int_equal(src->ops->reserve(src, "y", &a), -EEXIST);
	assert_int_equal(src->ops->reserve(src, "y", &out), -ERANGE);
	assert_int_equal(src->ops->reserve(src, "y", &unset), -ERANGE);
	out = addr("10.0.0.3");
	assert_int_equal(src->ops->reserve(src, "z", &out), 0);
	/* allocation steps over reserved addresses */
	assert_string_equal(alloc(src, AF_INET), "10.0.0.2");
	assert_string_equal(alloc(src, AF_INET), "10.0.0.4");
	assert_int_equal(src->ops->reserve(src, "v6", &v6), 0);
	assert_string_equal(alloc(src, AF_INET6), "2001:db8::1");
	src->ops->usage(src, &used, &total);
	assert_int_equal(used, 6);
	assert_int_equal(total, 6 + 255);
	assert_int_equal(src->ops->release(src, &v6), 0);
	assert_int_equal(src->ops->release(src, &v6), -ENOENT);
	assert_int_equal(src->ops->release(src, &unset), -ENOENT);
	out = addr("192.0.2.1");
	assert_int_equal(src->ops->release(src, &out), -ENOENT);
	src->ops->usage(src, &used, &total);
	assert_int_equal(used, 5);
	src->ops->free(src);
}

static void test_ipam_new_copies_ranges(void **st)
{
	struct ipam_range r[1] = { range("10.0.0.1-10.0.0.2") };
	struct vip_source *src = ipam_new(r, 1);

	(void)st;
	r[0] = range("192.0.2.1");
	assert_string_equal(alloc(src, 0), "10.0.0.1");
	src->ops->free(src);
}

static void test_big_v6_ranges(void **st)
{
	static const char *const two[] = { "2001:db8:1::/64", "2001:db8:2::/64" };
	struct vip_source *src = source1("2001:db8:5::/64");
	char want[IP_ADDR_STRLEN];
	struct ip_addr a;
	uint64_t used, total;

	(void)st;
	src->ops->usage(src, &used, &total);
	assert_int_equal(used, 0);
	/* 2^64 - 1 addresses: exactly the largest count there is */
	assert_true(total == UINT64_MAX);
	for (unsigned i = 1; i <= 50000; i++) {
		snprintf(want, sizeof(want), "2001:db8:5::%x", i);
		assert_string_equal(alloc(src, 0), want);
	}
	a = addr("2001:db8:5::1234");
	assert_int_equal(src->ops->release(src, &a), 0);
	a = addr("2001:db8:5::77");
	assert_int_equal(src->ops->release(src, &a), 0);
	assert_string_equal(alloc(src, 0), "2001:db8:5::77");
	assert_string_equal(alloc(src, 0), "2001:db8:5::1234");
	assert_string_equal(alloc(src, 0), "2001:db8:5::c351");
	a = addr("2001:db8:5:0:ffff:ffff:ffff:ffff");
	assert_int_equal(src->ops->reserve(src, "top", &a), 0);
	a = addr("2001:db8:5::c352");
	assert_int_equal(src->ops->reserve(src, "next", &a), 0);
	assert_string_equal(alloc(src, 0), "2001:db8:5::c353");
	src->ops->usage(src, &used, &total);
	assert_int_equal(used, 50004);
	src->ops->free(src);

	src = source(two, 2);
	src->ops->usage(src, &used, &total);
	assert_true(total == UINT64_MAX);
	src->ops->free(src);
	src = source1("::/0");
	src->ops->usage(src, &used, &total);
	assert_true(total == UINT64_MAX);
	assert_string_equal(alloc(src, 0), "::1");
	src->ops->free(src);
}

static void test_range_edges(void **st)
{
	struct vip_source *src = source1("255.255.255.254-255.255.255.255");

	(void)st;
	assert_string_equal(alloc(src, 0), "255.255.255.254");
	assert_string_equal(alloc(src, 0), "255.255.255.255");
	assert_string_equal(alloc(src, 0), enospc);
	src->ops->free(src);

	src = source1("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe-"
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(alloc(src, 0), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	assert_string_equal(alloc(src, 0), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	assert_string_equal(alloc(src, 0), enospc);
	src->ops->free(src);

	src = source1("10.0.0.254-10.0.1.1");
	assert_string_equal(alloc(src, 0), "10.0.0.254");
	assert_string_equal(alloc(src, 0), "10.0.0.255");
	assert_string_equal(alloc(src, 0), "10.0.1.0");
	assert_string_equal(alloc(src, 0), "10.0.1.1");
	assert_string_equal(alloc(src, 0), enospc);
	src->ops->free(src);

	/* carry from the low 64 bits into the high ones */
	src = source1("2001:db8::ffff:ffff:ffff:ffff-2001:db8:0:1::1");
	assert_string_equal(alloc(src, 0), "2001:db8::ffff:ffff:ffff:ffff");
	assert_string_equal(alloc(src, 0), "2001:db8:0:1::");
	assert_string_equal(alloc(src, 0), "2001:db8:0:1::1");
	assert_string_equal(alloc(src, 0), enospc);
	src->ops->free(src);
}

enum { N4A = 14, N4B = 5, N6 = 15, NSLOTS = N4A + N4B + N6 };

/* The i-th address of the ranges of test_never_twice_random, in allocation order. */
static struct ip_addr slot_addr(int i)
{
	char txt[IP_ADDR_STRLEN];

	if (i < N4A)
		snprintf(txt, sizeof(txt), "10.1.0.%d", i + 1);
	else if (i < N4A + N4B)
		snprintf(txt, sizeof(txt), "10.2.0.%d", i - N4A + 5);
	else
		snprintf(txt, sizeof(txt), "2001:db8::%x", i - N4A - N4B + 1);
	return addr(txt);
}

/* Random allocate/reserve/release against a plain array: never one address twice. */
static void test_never_twice_random(void **st)
{
	static const char *const specs[] = { "10.1.0.0/28", "10.2.0.5-10.2.0.9", "2001:db8::/124" };
	struct vip_source *src = source(specs, 3);
	bool held[NSLOTS];
	unsigned seed = 12345, full = 0;

	(void)st;
	memset(held, 0, sizeof(held));
	for (int step = 0; step < 20000; step++) {
		struct ip_addr a, want_addr;
		int op, i, r;

		seed = seed * 1103515245u + 12345u;
		op = (int)((seed >> 16) % 3);
		i = (int)((seed >> 4) % NSLOTS);
		a = slot_addr(i);
		if (op == 0) {
			int family = (seed >> 12) & 1 ? AF_INET : AF_INET6;
			int lo = family == AF_INET ? 0 : N4A + N4B;
			int hi = family == AF_INET ? N4A + N4B : NSLOTS;
			int want = lo;

			while (want < hi && held[want])
				want++;
			r = src->ops->allocate(src, "o", family, &a);
			if (want == hi) {
				assert_int_equal(r, -ENOSPC);
				full++;
				continue;
			}
			assert_int_equal(r, 0);
			want_addr = slot_addr(want);
			assert_true(ip_addr_equal(&a, &want_addr));
			held[want] = true;
		} else if (op == 1) {
			r = src->ops->reserve(src, "o", &a);
			assert_int_equal(r, held[i] ? -EEXIST : 0);
			held[i] = true;
		} else {
			r = src->ops->release(src, &a);
			assert_int_equal(r, held[i] ? 0 : -ENOENT);
			held[i] = false;
		}
	}
	/* the walk did reach full ranges */
	assert_true(full > 0);
	src->ops->free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4_ranges),
		cmocka_unit_test(test_parse_whitespace),
		cmocka_unit_test(test_parse_families_and_garbage),
		cmocka_unit_test(test_parse_cidr_v4),
		cmocka_unit_test(test_parse_cidr_v6),
		cmocka_unit_test(test_parse_small_err_buffer),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_allocate_order_and_exhaustion),
		cmocka_unit_test(test_allocate_across_ranges_and_families),
		cmocka_unit_test(test_reserve_release_contains),
		cmocka_unit_test(test_ipam_new_copies_ranges),
		cmocka_unit_test(test_big_v6_ranges),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_never_twice_random),
	};

	snprintf(enospc, sizeof(enospc), "E%d", ENOSPC);
	snprintf(eafnosupport, sizeof(eafnosupport), "E%d", EAFNOSUPPORT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
