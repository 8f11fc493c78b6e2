/* addrs: parsing the kernel's address messages, and what a sync changes. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "nlattr.h"

#include "announce/addrs.h"

struct msg {
	char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
};

static void msg_start(struct msg *m, unsigned short type, int family, int ifindex, int plen)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)m->buf;
	struct ifaddrmsg *ifa;

	memset(m, 0, sizeof(*m));
	nh->nlmsg_type = type;
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(*ifa));
	ifa = NLMSG_DATA(nh);
	ifa->ifa_family = (unsigned char)family;
	ifa->ifa_index = (unsigned)ifindex;
	ifa->ifa_prefixlen = (unsigned char)plen;
	m->len = nh->nlmsg_len;
}

static void msg_attr(struct msg *m, unsigned short type, const void *data, size_t len)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)m->buf;

	assert_int_equal(nlattr_put(nh, sizeof(m->buf), type, data, len), 0);
	m->len = nh->nlmsg_len;
}

static struct ip_addr ip(const char *s)
{
	struct ip_addr a;

	assert_int_equal(ip_addr_parse(s, &a), 0);
	return a;
}

static void test_parse_v4_marked(void **state)
{
	struct msg m;
	struct addrs_entry e;
	struct in_addr local, peer;
	uint8_t proto = ADDRS_PROTO;
	char s[IP_ADDR_STRLEN];

	(void)state;
	inet_pton(AF_INET, "10.0.0.5", &local);
	inet_pton(AF_INET, "10.0.0.9", &peer);
	msg_start(&m, RTM_NEWADDR, AF_INET, 4, 32);
	msg_attr(&m, IFA_ADDRESS, &peer, 4); /* a point-to-point peer: not ours */
	msg_attr(&m, IFA_LOCAL, &local, 4);
	msg_attr(&m, IFA_PROTO, &proto, 1);
	assert_int_equal(addrs_parse(m.buf, m.len, &e), 0);
	assert_int_equal(e.ifindex, 4);
	assert_int_equal(e.prefixlen, 32);
	assert_int_equal(e.proto, ADDRS_PROTO);
	assert_string_equal(ip_addr_str(&e.addr, s), "10.0.0.5");
}

static void test_parse_v6_unmarked(void **state)
{
	struct msg m;
	struct addrs_entry e;
	struct in6_addr a;
	uint32_t flags = IFA_F_NODAD;
	char s[IP_ADDR_STRLEN];

	(void)state;
	inet_pton(AF_INET6, "fd00::1", &a);
	msg_start(&m, RTM_DELADDR, AF_INET6, 9, 64);
	msg_attr(&m, IFA_FLAGS, &flags, sizeof(flags));
	msg_attr(&m, IFA_ADDRESS, &a, 16);
	assert_int_equal(addrs_parse(m.buf, m.len, &e), 0);
	assert_int_equal(e.ifindex, 9);
	assert_int_equal(e.prefixlen, 64);
	assert_int_equal(e.proto, 0);
	assert_string_equal(ip_addr_str(&e.addr, s), "fd00::1");
}

static void test_parse_bad(void **state)
{
	struct msg m;
	struct addrs_entry e;
	struct in_addr v4;
	struct nlmsghdr *nh = (struct nlmsghdr *)m.buf;

	(void)state;
	inet_pton(AF_INET, "10.0.0.5", &v4);
	msg_start(&m, RTM_NEWROUTE, AF_INET, 1, 32);
	assert_int_equal(addrs_parse(m.buf, m.len, &e), -ENOMSG);
	msg_start(&m, RTM_NEWADDR, AF_INET, 1, 32); /* no address at all */
	assert_int_equal(addrs_parse(m.buf, m.len, &e), -EPROTO);
	msg_start(&m, RTM_NEWADDR, AF_PACKET, 1, 32);
	msg_attr(&m, IFA_LOCAL, &v4, 4);
	assert_int_equal(addrs_parse(m.buf, m.len, &e), -EPROTO);
	msg_start(&m, RTM_NEWADDR, AF_INET6, 1, 128); /* an IPv4-sized IPv6 address */
	msg_attr(&m, IFA_ADDRESS, &v4, 4);
	assert_int_equal(addrs_parse(m.buf, m.len, &e), -EPROTO);
	msg_start(&m, RTM_NEWADDR, AF_INET, 1, 32);
	msg_attr(&m, IFA_LOCAL, &v4, 4);
	assert_int_equal(addrs_parse(m.buf, m.len - 1, &e), -EPROTO); /* truncated */
	assert_int_equal(addrs_parse(m.buf, 8, &e), -EPROTO);
	nh->nlmsg_len = NLMSG_LENGTH(2); /* header claims less than an ifaddrmsg */
	assert_int_equal(addrs_parse(m.buf, m.len, &e), -EPROTO);
}

static struct addrs_entry entry(const char *s, int plen, int proto)
{
	struct addrs_entry e = { .ifindex = 3, .addr = ip(s), .prefixlen = (uint8_t)plen,
				 .proto = (uint8_t)proto };

	return e;
}

static void test_plan(void **state)
{
	struct addrs_entry have[] = {
		entry("10.0.0.1", 24, 0),	  /* the node's own */
		entry("10.0.0.100", 32, ADDRS_PROTO), /* vipd's, still wanted */
		entry("10.0.0.101", 32, ADDRS_PROTO), /* vipd's, no longer wanted */
		entry("10.0.0.102", 32, 0),	  /* the operator's, also a VIP */
		entry("10.0.0.103", 32, 4),	  /* another program's mark */
		entry("fd00::100", 128, ADDRS_PROTO), /* vipd's, no longer wanted */
		entry("fd00::5", 64, 0),	  /* the operator's /64 that is also a VIP */
	};
	struct ip_addr want[] = { ip("10.0.0.100"), ip("10.0.0.102"), ip("10.0.0.104"),
				  ip("fd00::5"), ip("fd00::200") };
	struct addrs_plan p;
	char s[IP_ADDR_STRLEN];

	(void)state;
	assert_int_equal(addrs_plan(have, 7, want, 5, &p), 0);
	assert_int_equal(p.n_add, 2);
	assert_string_equal(ip_addr_str(&p.add[0], s), "10.0.0.104");
	assert_string_equal(ip_addr_str(&p.add[1], s), "fd00::200");
	assert_int_equal(p.n_del, 2);
	assert_string_equal(ip_addr_str(&p.del[0].addr, s), "10.0.0.101");
	assert_int_equal(p.del[0].prefixlen, 32);
	assert_string_equal(ip_addr_str(&p.del[1].addr, s), "fd00::100");
	assert_int_equal(p.del[1].prefixlen, 128);
	addrs_plan_free(&p);
}

static void test_plan_empty(void **state)
{
	struct addrs_entry have[] = { entry("10.0.0.100", 32, ADDRS_PROTO),
				      entry("10.0.0.1", 24, 0) };
	struct ip_addr want[] = { ip("10.0.0.100") };
	struct addrs_plan p;

	(void)state;
	/* Nothing wanted: vipd's go, the rest stays. */
	assert_int_equal(addrs_plan(have, 2, NULL, 0, &p), 0);
	assert_int_equal(p.n_add, 0);
	assert_int_equal(p.n_del, 1);
	addrs_plan_free(&p);
	/* Nothing there: everything is added. */
	assert_int_equal(addrs_plan(NULL, 0, want, 1, &p), 0);
	assert_int_equal(p.n_add, 1);
	assert_int_equal(p.n_del, 0);
	addrs_plan_free(&p);
	/* In place: nothing to do (a second sync changes nothing). */
	assert_int_equal(addrs_plan(have, 2, want, 1, &p), 0);
	assert_int_equal(p.n_add + p.n_del, 0);
	addrs_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_v4_marked),
		cmocka_unit_test(test_parse_v6_unmarked),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_plan_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
