/* route_parse: the kernel's RTM_GETROUTE answers, well-formed and not. */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "nlattr.h"

#include "dataplane/route.h"

struct msg {
	char buf[512] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
};

static struct nlmsghdr *msg_start(struct msg *m, unsigned char type)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)m->buf;
	struct rtmsg *rt;

	memset(m, 0, sizeof(*m));
	nh->nlmsg_type = RTM_NEWROUTE;
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(*rt));
	rt = NLMSG_DATA(nh);
	rt->rtm_type = type;
	m->len = nh->nlmsg_len;
	return nh;
}

static void msg_attr(struct msg *m, unsigned short type, const void *data, size_t len)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)m->buf;

	assert_int_equal(nlattr_put(nh, sizeof(m->buf), type, data, len), 0);
	m->len = nh->nlmsg_len;
}

static void test_v4_via_gateway(void **state)
{
	struct msg m;
	struct route_info ri;
	struct in_addr src, gw;
	int oif = 7;
	char s[INET6_ADDRSTRLEN];

	(void)state;
	msg_start(&m, RTN_UNICAST);
	inet_pton(AF_INET, "10.0.0.5", &src);
	inet_pton(AF_INET, "10.0.0.1", &gw);
	msg_attr(&m, RTA_OIF, &oif, sizeof(oif));
	msg_attr(&m, RTA_PREFSRC, &src, sizeof(src));
	msg_attr(&m, RTA_GATEWAY, &gw, sizeof(gw));
	assert_int_equal(route_parse(m.buf, m.len, AF_INET, &ri), 0);
	assert_int_equal(ri.oif, 7);
	assert_false(ri.local);
	assert_string_equal(ip_addr_str(&ri.src, s), "10.0.0.5");
	assert_string_equal(ip_addr_str(&ri.via, s), "10.0.0.1");
}

static void test_v6_onlink_and_local(void **state)
{
	struct msg m;
	struct route_info ri;
	struct in6_addr src;
	int oif = 3;
	char s[INET6_ADDRSTRLEN];

	(void)state;
	msg_start(&m, RTN_LOCAL);
	inet_pton(AF_INET6, "fd00::1", &src);
	msg_attr(&m, RTA_OIF, &oif, sizeof(oif));
	msg_attr(&m, RTA_PREFSRC, &src, sizeof(src));
	assert_int_equal(route_parse(m.buf, m.len, AF_INET6, &ri), 0);
	assert_true(ri.local);
	assert_false(ip_addr_is_set(&ri.via));
	assert_string_equal(ip_addr_str(&ri.src, s), "fd00::1");
}

static void test_kernel_error(void **state)
{
	struct msg m;
	struct route_info ri;
	struct nlmsghdr *nh = (struct nlmsghdr *)m.buf;
	struct nlmsgerr *e;

	(void)state;
	memset(&m, 0, sizeof(m));
	nh->nlmsg_type = NLMSG_ERROR;
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(*e));
	e = NLMSG_DATA(nh);
	e->error = -ENETUNREACH;
	assert_int_equal(route_parse(m.buf, nh->nlmsg_len, AF_INET, &ri), -ENETUNREACH);
	e->error = 5; /* not an errno */
	assert_int_equal(route_parse(m.buf, nh->nlmsg_len, AF_INET, &ri), -EPROTO);
	/* cut before the error code */
	assert_int_equal(route_parse(m.buf, NLMSG_HDRLEN + 2, AF_INET, &ri), -EPROTO);
}

static void test_malformed(void **state)
{
	struct msg m;
	struct route_info ri;
	struct nlmsghdr *nh;
	int oif = 9;
	uint16_t short_addr = 1;

	(void)state;
	nh = msg_start(&m, RTN_UNICAST);
	msg_attr(&m, RTA_OIF, &oif, sizeof(oif));
	/* a source address too short for its family is ignored, not read past */
	msg_attr(&m, RTA_PREFSRC, &short_addr, sizeof(short_addr));
	assert_int_equal(route_parse(m.buf, m.len, AF_INET, &ri), 0);
	assert_false(ip_addr_is_set(&ri.src));
	/* the header claims more than was received */
	assert_int_equal(route_parse(m.buf, m.len - 4, AF_INET, &ri), -EPROTO);
	assert_int_equal(route_parse(m.buf, 3, AF_INET, &ri), -EPROTO);
	/* another message type */
	nh->nlmsg_type = RTM_NEWLINK;
	assert_int_equal(route_parse(m.buf, m.len, AF_INET, &ri), -EPROTO);
	/* no output interface */
	msg_start(&m, RTN_UNREACHABLE);
	assert_int_equal(route_parse(m.buf, m.len, AF_INET, &ri), -ENETUNREACH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_via_gateway),
		cmocka_unit_test(test_v6_onlink_and_local),
		cmocka_unit_test(test_kernel_error),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
