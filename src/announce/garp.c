#include "announce/garp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/ethernet.h>
#include <net/if_arp.h>
#include <netinet/icmp6.h>
#include <netinet/ip6.h>
#include <string.h>

#define ARP_LEN 28
#define ICMP6_NA_LEN 24 /* type, code, checksum, flags, target */
#define ND_OPT_LEN 8

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void eth_header(uint8_t *p, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	memcpy(p, dst, 6);
	memcpy(p + 6, src, 6);
	put16(p + 12, type);
}

int garp_arp_build(uint8_t *buf, size_t len, const uint8_t mac[6], struct in_addr vip, int op)
{
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t *a = buf + ETH_HLEN;

	if (op != ARPOP_REQUEST && op != ARPOP_REPLY)
		return -EINVAL;
	if (len < GARP_ARP_FRAME_LEN)
		return -ENOSPC;
	memset(buf, 0, GARP_ARP_FRAME_LEN);
	eth_header(buf, bcast, mac, ETHERTYPE_ARP);
	put16(a, ARPHRD_ETHER);
	put16(a + 2, ETHERTYPE_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, (uint16_t)op);
	memcpy(a + 8, mac, 6);
	memcpy(a + 14, &vip, 4);
	if (op == ARPOP_REPLY)
		memcpy(a + 18, mac, 6);
	memcpy(a + 24, &vip, 4);
	return GARP_ARP_FRAME_LEN;
}

/* The Internet checksum's running sum over data (RFC 1071), not yet folded. */
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (n)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

int garp_na_build(uint8_t *buf, size_t len, const uint8_t mac[6], const struct in6_addr *target)
{
	static const uint8_t allnodes_mac[6] = { 0x33, 0x33, 0, 0, 0, 1 };
	static const uint8_t allnodes[16] = { 0xff, 0x02, [15] = 1 };
	const uint16_t plen = ICMP6_NA_LEN + ND_OPT_LEN;
	uint8_t *ip = buf + ETH_HLEN, *icmp = ip + sizeof(struct ip6_hdr);
	uint8_t pseudo[40] = { 0 };
	uint32_t sum;

	if (len < GARP_NA_FRAME_LEN)
		return -ENOSPC;
	memset(buf, 0, GARP_NA_FRAME_LEN);
	eth_header(buf, allnodes_mac, mac, ETHERTYPE_IPV6);
	ip[0] = 0x60;
	put16(ip + 4, plen);
	ip[6] = IPPROTO_ICMPV6;
	ip[7] = 255; /* receivers drop ND messages that crossed a router */
	memcpy(ip + 8, target, 16);
	memcpy(ip + 24, allnodes, 16);
	icmp[0] = ND_NEIGHBOR_ADVERT;
	icmp[4] = 0x20; /* override; not router, not solicited */
	memcpy(icmp + 8, target, 16);
	icmp[24] = ND_OPT_TARGET_LINKADDR;
	icmp[25] = 1; /* length in units of 8 bytes */
	memcpy(icmp + 26, mac, 6);

	/* Pseudo-header: source, destination, upper-layer length, next header. */
	memcpy(pseudo, ip + 8, 32);
	put16(pseudo + 34, plen);
	pseudo[39] = IPPROTO_ICMPV6;
	sum = csum_add(0, pseudo, sizeof(pseudo));
	sum = csum_add(sum, icmp, plen);
	put16(icmp + 2, csum_fold(sum));
	return GARP_NA_FRAME_LEN;
}
