/*
 * Test packets. Checksums here are computed the textbook way (RFC 1071, whole header and
 * pseudo-header), independently of the program's incremental updates.
 */
#include "pkt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static uint32_t pkt_sum(const uint8_t *p, size_t n, uint32_t s)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	return s;
}

static uint16_t pkt_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void pkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static uint16_t pkt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

void pkt_mac(uint8_t mac[6], const char *s)
{
	unsigned int b[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) != 6) {
		fprintf(stderr, "bad MAC %s\n", s);
		memset(mac, 0, 6);
		return;
	}
	for (i = 0; i < 6; i++)
		mac[i] = (uint8_t)b[i];
}

void pkt_addr(int family, uint8_t out[16], const char *s)
{
	memset(out, 0, 16);
	if (inet_pton(family == 4 ? AF_INET : AF_INET6, s, out) != 1)
		fprintf(stderr, "bad address %s\n", s);
}

void pkt_spec_init(struct pkt_spec *s, int family, uint8_t proto, const char *src,
		   uint16_t sport, const char *dst, uint16_t dport)
{
	memset(s, 0, sizeof(*s));
	s->family = family;
	s->proto = proto;
	pkt_mac(s->smac, "02:00:00:00:0c:02");
	pkt_mac(s->dmac, "02:00:00:00:0c:00");
	pkt_addr(family, s->src, src);
	pkt_addr(family, s->dst, dst);
	s->sport = sport;
	s->dport = dport;
	s->ttl = 64;
	s->frag_off = 0x4000;
}

/* Pseudo-header sum for an L4 segment of len bytes. */
static uint32_t pkt_pseudo(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			   size_t len)
{
	uint32_t s = 0;

	if (family == 4) {
		s = pkt_sum(src, 4, s);
		s = pkt_sum(dst, 4, s);
	} else {
		s = pkt_sum(src, 16, s);
		s = pkt_sum(dst, 16, s);
		s += (uint32_t)(len >> 16);
	}
	s += proto;
	s += (uint32_t)(len & 0xffff);
	return s;
}

size_t pkt_build(const struct pkt_spec *s, uint8_t *buf, size_t cap)
{
	size_t l3 = 14, hlen, l4len, total;
	uint8_t *ip = buf + l3, *l4;

	hlen = s->family == 4 ? 20 + 4u * s->ip_opt_words : 40;
	if (s->proto == IPPROTO_TCP)
		l4len = 20;
	else if (s->proto == IPPROTO_UDP)
		l4len = 8;
	else
		l4len = 0;
	total = l3 + hlen + l4len + s->payload_len;
	if (total > cap)
		return 0;
	memset(buf, 0, total);
	memcpy(buf, s->dmac, 6);
	memcpy(buf + 6, s->smac, 6);
	pkt_put16(buf + 12, s->family == 4 ? 0x0800 : 0x86dd);
	l4 = ip + hlen;
	if (s->payload_len)
		memcpy(l4 + l4len, s->payload, s->payload_len);

	if (l4len) {
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		if (s->proto == IPPROTO_TCP) {
			memcpy(l4 + 4, "\x11\x22\x33\x44\x00\x00\x00\x00", 8); /* seq, ack */
			l4[12] = 5 << 4;
			l4[13] = s->tcp_flags ? s->tcp_flags : 0x02;
			pkt_put16(l4 + 14, 64240);
		} else {
			pkt_put16(l4 + 4, (uint16_t)(l4len + s->payload_len));
		}
	}

	if (s->family == 4) {
		ip[0] = 0x40 | (uint8_t)(hlen / 4);
		pkt_put16(ip + 2, (uint16_t)(hlen + l4len + s->payload_len));
		pkt_put16(ip + 4, 0x1234);
		pkt_put16(ip + 6, s->frag_off);
		ip[8] = s->ttl;
		ip[9] = s->proto;
		memcpy(ip + 12, s->src, 4);
		memcpy(ip + 16, s->dst, 4);
		memset(ip + 20, 1, hlen - 20); /* NOP options */
		pkt_put16(ip + 10, (uint16_t)~pkt_fold(pkt_sum(ip, hlen, 0)));
	} else {
		ip[0] = 0x60;
		pkt_put16(ip + 4, (uint16_t)(l4len + s->payload_len));
		ip[6] = s->proto;
		ip[7] = s->ttl;
		memcpy(ip + 8, s->src, 16);
		memcpy(ip + 24, s->dst, 16);
	}

	if (l4len && !(s->proto == IPPROTO_UDP && s->family == 4 && s->udp_no_csum)) {
		size_t seg = l4len + s->payload_len;
		uint8_t *c = l4 + (s->proto == IPPROTO_TCP ? 16 : 6);
		uint32_t sum = pkt_pseudo(s->family, s->src, s->dst, s->proto, seg);
		uint16_t v = (uint16_t)~pkt_fold(pkt_sum(l4, seg, sum));

		if (s->proto == IPPROTO_UDP && v == 0)
			v = 0xffff;
		pkt_put16(c, v);
	}
	return total;
}

int pkt_parse(const uint8_t *buf, size_t len, struct pkt_view *v)
{
	const uint8_t *ip = buf + 14;
	size_t hlen, ip_len, need;

	memset(v, 0, sizeof(*v));
	if (len < 14)
		return -1;
	memcpy(v->dmac, buf, 6);
	memcpy(v->smac, buf + 6, 6);
	if (pkt_get16(buf + 12) == 0x0800) {
		if (len < 14 + 20 || ip[0] >> 4 != 4 || (ip[0] & 15) < 5)
			return -1;
		hlen = (ip[0] & 15) * 4u;
		ip_len = pkt_get16(ip + 2);
		if (pkt_get16(ip + 6) & 0x3fff)
			return -1;
		v->family = 4;
		v->proto = ip[9];
		v->ttl = ip[8];
		memcpy(v->src, ip + 12, 4);
		memcpy(v->dst, ip + 16, 4);
	} else if (pkt_get16(buf + 12) == 0x86dd) {
		if (len < 14 + 40 || ip[0] >> 4 != 6)
			return -1;
		hlen = 40;
		ip_len = 40u + pkt_get16(ip + 4);
		v->family = 6;
		v->proto = ip[6];
		v->ttl = ip[7];
		memcpy(v->src, ip + 8, 16);
		memcpy(v->dst, ip + 24, 16);
	} else {
		return -1;
	}
	if (v->proto == IPPROTO_TCP)
		need = 20;
	else if (v->proto == IPPROTO_UDP)
		need = 8;
	else
		return -1;
	if (ip_len < hlen + need || 14 + ip_len > len)
		return -1;
	v->l4_off = 14 + hlen;
	v->ip_len = ip_len;
	v->sport = pkt_get16(buf + v->l4_off);
	v->dport = pkt_get16(buf + v->l4_off + 2);
	v->l4_csum = pkt_get16(buf + v->l4_off + (v->proto == IPPROTO_TCP ? 16 : 6));
	return 0;
}

int pkt_ipv4_csum_ok(const uint8_t *buf, size_t len)
{
	struct pkt_view v;

	if (pkt_parse(buf, len, &v) || v.family != 4)
		return 0;
	return pkt_fold(pkt_sum(buf + 14, v.l4_off - 14, 0)) == 0xffff;
}

int pkt_l4_csum_ok(const uint8_t *buf, size_t len)
{
	struct pkt_view v;
	size_t seg;
	uint32_t sum;

	if (pkt_parse(buf, len, &v))
		return 0;
	if (v.proto == IPPROTO_UDP && v.l4_csum == 0)
		return v.family == 4; /* "no checksum" exists only over IPv4 */
	seg = 14 + v.ip_len - v.l4_off;
	sum = pkt_pseudo(v.family, v.src, v.dst, v.proto, seg);
	return pkt_fold(pkt_sum(buf + v.l4_off, seg, sum)) == 0xffff;
}

static void pkt_dump(const char *what, const uint8_t *p, size_t n)
{
	size_t i;

	fprintf(stderr, "%s (%zu bytes):", what, n);
	for (i = 0; i < n; i++)
		fprintf(stderr, "%s%02x", i % 16 ? " " : "\n  ", p[i]);
	fprintf(stderr, "\n");
}

int pkt_same(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
	size_t i;

	if (got_len == want_len && !memcmp(got, want, got_len))
		return 1;
	for (i = 0; i < got_len && i < want_len && got[i] == want[i]; i++)
		;
	fprintf(stderr, "packet differs at byte %zu\n", i);
	pkt_dump("got", got, got_len);
	pkt_dump("want", want, want_len);
	return 0;
}
