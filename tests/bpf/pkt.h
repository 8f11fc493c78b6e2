/* Test packets: build Ethernet/IPv4/IPv6/TCP/UDP frames and check them from scratch. */
#ifndef VIPD_TEST_PKT_H
#define VIPD_TEST_PKT_H

#include <stddef.h>
#include <stdint.h>

struct pkt_spec {
	int family;	/* 4 or 6 */
	uint8_t proto;	/* IPPROTO_TCP, IPPROTO_UDP, or any other (payload follows IP) */
	uint8_t smac[6];
	uint8_t dmac[6];
	uint8_t src[16]; /* IPv4 in the first 4 bytes */
	uint8_t dst[16];
	uint16_t sport; /* host order */
	uint16_t dport;
	uint8_t ttl;
	uint8_t ip_opt_words; /* IPv4: IHL = 5 + this, options filled with NOP */
	uint16_t frag_off;    /* IPv4 flags + fragment offset, host order */
	int udp_no_csum;      /* IPv4 UDP: send checksum 0 */
	uint8_t tcp_flags;    /* 0: SYN */
	const uint8_t *payload;
	size_t payload_len;
};

/* A spec for family/proto from src:sport to dst:dport with TTL 64, DF, no payload. */
void pkt_spec_init(struct pkt_spec *s, int family, uint8_t proto, const char *src,
		   uint16_t sport, const char *dst, uint16_t dport);
void pkt_mac(uint8_t mac[6], const char *s);
void pkt_addr(int family, uint8_t out[16], const char *s);

/* Builds the frame into buf (cap bytes) with valid checksums; returns its length. */
size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap);

/* A frame's fields, where pkt_parse() found a complete IPv4/IPv6 TCP/UDP packet. */
struct pkt_view {
	int family;
	uint8_t proto;
	uint8_t smac[6];
	uint8_t dmac[6];
	uint8_t src[16];
	uint8_t dst[16];
	uint16_t sport; /* host order */
	uint16_t dport;
	uint8_t ttl;
	uint16_t l4_csum; /* as on the wire, host order */
	size_t l4_off;
	size_t ip_len;
};

/* 0 if buf holds an unfragmented IPv4/IPv6 TCP/UDP packet with consistent lengths, else -1. */
int pkt_parse(const uint8_t *buf, size_t len, struct pkt_view *v);
/* Checksums verified from scratch; both need pkt_parse() to succeed. 1 valid, 0 not. */
int pkt_ipv4_csum_ok(const uint8_t *buf, size_t len);
int pkt_l4_csum_ok(const uint8_t *buf, size_t len);

/* Prints both frames and the first difference to stderr; returns 1 if they are equal. */
int pkt_same(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len);

#endif
