/* garp: the exact bytes of gratuitous ARP frames and unsolicited neighbour advertisements. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if_arp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "announce/garp.h"

static const uint8_t MAC[6] = { 0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc };

static void test_arp_request(void **state)
{
	static const uint8_t want[GARP_ARP_FRAME_LEN] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff,	/* broadcast */
		0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc,	/* from the adapter */
		0x08, 0x06,				/* ARP */
		0x00, 0x01, 0x08, 0x00, 6, 4,		/* Ethernet, IPv4 */
		0x00, 0x01,				/* request */
		0x02, 0x00, 0x00, 0xaa, 0xbb, 0xcc,	/* sender MAC */
		10, 233, 0, 100,			/* sender IP: the VIP */
		0, 0, 0, 0, 0, 0,			/* target MAC: unknown */
		10, 233, 0, 100,			/* target IP: the VIP too */
		/* zero padding to 60 bytes */
	};
	uint8_t buf[128];
	struct in_addr vip;

	(void)state;
	inet_pton(AF_INET, "10.233.0.100", &vip);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(garp_arp_build(buf, sizeof(buf), MAC, vip, ARPOP_REQUEST),
			 GARP_ARP_FRAME_LEN);
	assert_memory_equal(buf, want, GARP_ARP_FRAME_LEN);
	assert_int_equal(buf[GARP_ARP_FRAME_LEN], 0x5a); /* nothing written past the frame */
}

static void test_arp_reply(void **state)
{
	uint8_t buf[GARP_ARP_FRAME_LEN];
	struct in_addr vip;
	static const uint8_t zero[18];

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &vip);
	assert_int_equal(garp_arp_build(buf, sizeof(buf), MAC, vip, ARPOP_REPLY),
			 GARP_ARP_FRAME_LEN);
	assert_memory_equal(buf, "\xff\xff\xff\xff\xff\xff", 6);
	assert_memory_equal(buf + 6, MAC, 6);
	assert_memory_equal(buf + 12, "\x08\x06", 2);
	assert_memory_equal(buf + 20, "\x00\x02", 2); /* reply */
	assert_memory_equal(buf + 22, MAC, 6);
	assert_memory_equal(buf + 28, &vip, 4);
	/* Linux takes a reply as gratuitous only when target MAC == sender MAC. */
	assert_memory_equal(buf + 32, MAC, 6);
	assert_memory_equal(buf + 38, &vip, 4);
	assert_memory_equal(buf + 42, zero, sizeof(zero));
}

static void test_arp_bad_args(void **state)
{
	uint8_t buf[GARP_ARP_FRAME_LEN];
	struct in_addr vip = { 0 };

	(void)state;
	assert_int_equal(garp_arp_build(buf, sizeof(buf) - 1, MAC, vip, ARPOP_REQUEST), -ENOSPC);
	assert_int_equal(garp_arp_build(buf, sizeof(buf), MAC, vip, ARPOP_RREQUEST), -EINVAL);
}

/* Sum of the ICMPv6 message and its pseudo-header, as a receiver verifies it. */
static uint16_t icmp6_verify_sum(const uint8_t *frame)
{
	const uint8_t *ip = frame + 14, *icmp = ip + 40;
	unsigned plen = (unsigned)(ip[4] << 8 | ip[5]);
	uint32_t sum = 0;

	for (int i = 8; i < 40; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += plen;
	sum += ip[6];
	for (unsigned i = 0; i < plen; i += 2)
		sum += (uint32_t)(icmp[i] << 8 | (i + 1 < plen ? icmp[i + 1] : 0));
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void test_na(void **state)
{
	uint8_t buf[256];
	struct in6_addr t, allnodes;
	uint8_t *ip = buf + 14, *icmp = buf + 54;

	(void)state;
	inet_pton(AF_INET6, "fd00:a2b::100", &t);
	inet_pton(AF_INET6, "ff02::1", &allnodes);
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(garp_na_build(buf, sizeof(buf), MAC, &t), GARP_NA_FRAME_LEN);
	assert_int_equal(buf[GARP_NA_FRAME_LEN], 0x5a);
	assert_memory_equal(buf, "\x33\x33\x00\x00\x00\x01", 6); /* all-nodes multicast */
	assert_memory_equal(buf + 6, MAC, 6);
	assert_memory_equal(buf + 12, "\x86\xdd", 2);
	assert_memory_equal(ip, "\x60\x00\x00\x00", 4); /* version 6, no class or flow */
	assert_memory_equal(ip + 4, "\x00\x20", 2);	/* payload 32 bytes */
	assert_int_equal(ip[6], 58);			/* ICMPv6 */
	assert_int_equal(ip[7], 255);			/* hop limit ND requires */
	assert_memory_equal(ip + 8, &t, 16);		/* from the target itself */
	assert_memory_equal(ip + 24, &allnodes, 16);
	assert_int_equal(icmp[0], 136);			/* neighbour advertisement */
	assert_int_equal(icmp[1], 0);
	assert_memory_equal(icmp + 4, "\x20\x00\x00\x00", 4); /* O set; R and S clear */
	assert_memory_equal(icmp + 8, &t, 16);
	assert_memory_equal(icmp + 24, "\x02\x01", 2);	/* target link-layer address, 8 bytes */
	assert_memory_equal(icmp + 26, MAC, 6);
	/* The checksum is the one computed independently (Python) for these inputs ... */
	assert_memory_equal(icmp + 2, "\x87\xd1", 2);
	/* ... and what a receiver's check accepts. */
	assert_int_equal(icmp6_verify_sum(buf), 0xffff);
}

static void test_na_checksums_vary(void **state)
{
	uint8_t buf[GARP_NA_FRAME_LEN];
	struct in6_addr t;

	(void)state;
	memset(&t, 0, sizeof(t));
	/* Every byte of the target moves the sum; the check holds for each (incl. carries). */
	for (int i = 0; i < 16; i++) {
		for (int v = 0; v < 256; v += 51) {
			t.s6_addr[i] = (uint8_t)v;
			assert_int_equal(garp_na_build(buf, sizeof(buf), MAC, &t), GARP_NA_FRAME_LEN);
			assert_int_equal(icmp6_verify_sum(buf), 0xffff);
		}
	}
	assert_int_equal(garp_na_build(buf, sizeof(buf) - 1, MAC, &t), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp_request),
		cmocka_unit_test(test_arp_reply),
		cmocka_unit_test(test_arp_bad_args),
		cmocka_unit_test(test_na),
		cmocka_unit_test(test_na_checksums_vary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
