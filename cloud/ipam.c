/*
 * Local IPAM. The used addresses are one sorted array, not a bitmap per range,
 * so a /64 costs no more than a /28: memory grows with the addresses handed out,
 * and the lowest free address of a range is found by bisection over the used
 * addresses that fall in it.
 */
#include "ipam.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/util.h"

/* Addresses as unsigned integers (IPv4 in the low 32 bits), so ranges can be counted. */
struct u128 {
	uint64_t hi, lo;
};

/* A used address; ordered by family (IPv4 first), then numerically, like ip_addr_cmp. */
struct ipam_key {
	int family;
	struct u128 v;
};

struct ipam {
	struct vip_source src; /* first: the source pointer is the ipam pointer */
	struct ipam_range *ranges;
	size_t n_ranges;
	struct ipam_key *used; /* sorted, no duplicates */
	size_t n_used, cap_used;
};

static struct u128 u128_of_addr(const struct ip_addr *a)
{
	struct u128 v = { 0, 0 };
	size_t len = ip_addr_len(a);

	for (size_t i = 0; i < len; i++) {
		v.hi = (v.hi << 8) | (v.lo >> 56);
		v.lo = (v.lo << 8) | a->bytes[i];
	}
	return v;
}

static void u128_to_addr(struct u128 v, int family, struct ip_addr *out)
{
	memset(out, 0, sizeof(*out));
	out->family = family;
	for (size_t i = ip_addr_len(out); i-- > 0;) {
		out->bytes[i] = (uint8_t)v.lo;
		v.lo = (v.lo >> 8) | (v.hi << 56);
		v.hi >>= 8;
	}
}

static int u128_cmp(struct u128 a, struct u128 b)
{
	if (a.hi != b.hi)
		return a.hi < b.hi ? -1 : 1;
	if (a.lo != b.lo)
		return a.lo < b.lo ? -1 : 1;
	return 0;
}

static struct u128 u128_add64(struct u128 a, uint64_t n)
{
	struct u128 r = { a.hi, a.lo + n };

	if (r.lo < a.lo)
		r.hi++;
	return r;
}

static struct u128 u128_sub(struct u128 a, struct u128 b)
{
	struct u128 r = { a.hi - b.hi, a.lo - b.lo };

	if (a.lo < b.lo)
		r.hi--;
	return r;
}

static struct u128 u128_and(struct u128 a, struct u128 b)
{
	return (struct u128){ a.hi & b.hi, a.lo & b.lo };
}

static struct u128 u128_or(struct u128 a, struct u128 b)
{
	return (struct u128){ a.hi | b.hi, a.lo | b.lo };
}

static struct u128 u128_not(struct u128 a)
{
	return (struct u128){ ~a.hi, ~a.lo };
}

static bool u128_is_zero(struct u128 a)
{
	return !a.hi && !a.lo;
}

/* The lowest `bits` bits set (0..128). */
static struct u128 u128_low_mask(unsigned bits)
{
	if (bits >= 128)
		return (struct u128){ UINT64_MAX, UINT64_MAX };
	if (bits > 64)
		return (struct u128){ (UINT64_C(1) << (bits - 64)) - 1, UINT64_MAX };
	if (bits == 64)
		return (struct u128){ 0, UINT64_MAX };
	return (struct u128){ 0, bits == 0 ? 0 : (UINT64_C(1) << bits) - 1 };
}

static int family_rank(int family)
{
	return family == AF_INET ? 0 : 1;
}

static int key_cmp(const struct ipam_key *a, const struct ipam_key *b)
{
	if (a->family != b->family)
		return family_rank(a->family) - family_rank(b->family);
	return u128_cmp(a->v, b->v);
}

static struct ipam_key key_of(const struct ip_addr *a)
{
	return (struct ipam_key){ a->family, u128_of_addr(a) };
}


/* Longest token worth looking at: an IPv6 address with an embedded IPv4 tail. */
#define TOKEN_MAX (INET6_ADDRSTRLEN - 1)

static bool is_space(char c)
{
	return isspace((unsigned char)c);
}

/* Trims [*p, *p + *n) of surrounding white space. */
static void trim(const char **p, size_t *n)
{
	while (*n && is_space(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n && is_space((*p)[*n - 1]))
		(*n)--;
}

static int parse_addr_token(const char *p, size_t n, struct ip_addr *out, char *err, size_t errlen)
{
	char buf[TOKEN_MAX + 1];

	trim(&p, &n);
	if (!n) {
		errbuf_printf(err, errlen, "an address is missing");
		return -EINVAL;
	}
	if (n <= TOKEN_MAX) {
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (ip_addr_parse(buf, out) == 0)
			return 0;
	}
	errbuf_printf(err, errlen, "\"%.*s%s\" is not an IPv4 or IPv6 address",
		 (int)(n > 64 ? 64 : n), p, n > 64 ? "..." : "");
	return -EINVAL;
}

static int parse_cidr(const char *p, size_t n, const char *slash, struct ipam_range *out,
		      char *err, size_t errlen)
{
	const char *lp = slash + 1;
	size_t ln = n - (size_t)(lp - p), width;
	struct u128 v, host;
	struct ip_addr a;
	unsigned plen = 0;

	if (parse_addr_token(p, (size_t)(slash - p), &a, err, errlen))
		return -EINVAL;
	width = ip_addr_len(&a) * 8;
	trim(&lp, &ln);
	for (size_t i = 0; i < ln && plen <= width; i++) {
		if (lp[i] < '0' || lp[i] > '9') {
			plen = UINT32_MAX;
			break;
		}
		plen = plen * 10 + (unsigned)(lp[i] - '0');
	}
	if (!ln) {
		errbuf_printf(err, errlen, "the prefix length after '/' is missing");
		return -EINVAL;
	}
	if (plen > width) {
		errbuf_printf(err, errlen, "prefix length \"%.*s\" must be 0..%zu",
			 (int)(ln > 16 ? 16 : ln), lp, width);
		return -EINVAL;
	}
	v = u128_of_addr(&a);
	host = u128_low_mask((unsigned)width - plen);
	if (!u128_is_zero(u128_and(v, host))) {
		struct ip_addr net;
		char abuf[IP_ADDR_STRLEN], nbuf[IP_ADDR_STRLEN];

		u128_to_addr(u128_and(v, u128_not(host)), a.family, &net);
		errbuf_printf(err, errlen, "%s/%u has host bits set (the network is %s/%u)",
			 ip_addr_str(&a, abuf), plen, ip_addr_str(&net, nbuf), plen);
		return -EINVAL;
	}
	u128_to_addr(v, a.family, &out->first);
	u128_to_addr(u128_or(v, host), a.family, &out->last);
	/*
	 * IPv4 network and broadcast addresses, and the IPv6 subnet-router anycast
	 * address, answer for the whole subnet: never a VIP. /31 (RFC 3021), /127
	 * (RFC 6164) and host routes have no such addresses.
	 */
	if (width - plen >= 2) {
		u128_to_addr(u128_add64(v, 1), a.family, &out->first);
		if (a.family == AF_INET)
			u128_to_addr(u128_sub(u128_or(v, host), (struct u128){ 0, 1 }), a.family,
				     &out->last);
	}
	return 0;
}

int ipam_range_parse(const char *s, struct ipam_range *out, char *err, size_t errlen)
{
	const char *p = s, *sep;
	size_t n = s ? strlen(s) : 0;
	struct ipam_range r;
	char a[IP_ADDR_STRLEN], b[IP_ADDR_STRLEN];

	memset(&r, 0, sizeof(r));
	trim(&p, &n);
	if (!n) {
		errbuf_printf(err, errlen, "empty range");
		return -EINVAL;
	}
	if ((sep = memchr(p, '/', n))) {
		if (parse_cidr(p, n, sep, &r, err, errlen))
			return -EINVAL;
	} else if ((sep = memchr(p, '-', n))) {
		/* No address literal holds '-', so the first one splits the range. */
		if (parse_addr_token(p, (size_t)(sep - p), &r.first, err, errlen) ||
		    parse_addr_token(sep + 1, n - (size_t)(sep + 1 - p), &r.last, err, errlen))
			return -EINVAL;
		if (r.first.family != r.last.family) {
			errbuf_printf(err, errlen, "%s and %s are not of the same family",
				 ip_addr_str(&r.first, a), ip_addr_str(&r.last, b));
			return -EINVAL;
		}
		if (ip_addr_cmp(&r.first, &r.last) > 0) {
			errbuf_printf(err, errlen, "first address %s is after the last %s",
				 ip_addr_str(&r.first, a), ip_addr_str(&r.last, b));
			return -EINVAL;
		}
	} else {
		if (parse_addr_token(p, n, &r.first, err, errlen))
			return -EINVAL;
		r.last = r.first;
	}
	*out = r;
	return 0;
}

int ipam_ranges_overlap(const struct ipam_range *a, const struct ipam_range *b)
{
	return a->first.family == b->first.family && ip_addr_cmp(&a->first, &b->last) <= 0 &&
	       ip_addr_cmp(&b->first, &a->last) <= 0;
}

static struct ipam *ipam_of(struct vip_source *src)
{
	return (struct ipam *)src;
}

static const struct ipam *ipam_of_const(const struct vip_source *src)
{
	return (const struct ipam *)src;
}

static bool range_contains(const struct ipam_range *r, const struct ip_addr *a)
{
	return r->first.family == a->family && ip_addr_cmp(&r->first, a) <= 0 &&
	       ip_addr_cmp(a, &r->last) <= 0;
}

/* Index of the first used address not below k (above k if past). */
static size_t used_bound(const struct ipam *ip, const struct ipam_key *k, bool past)
{
	size_t lo = 0, hi = ip->n_used;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = key_cmp(&ip->used[mid], k);

		if (c < 0 || (past && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int used_insert(struct ipam *ip, size_t at, const struct ipam_key *k)
{
	if (ip->n_used == ip->cap_used) {
		size_t cap = ip->cap_used ? ip->cap_used * 2 : 64;
		struct ipam_key *n = realloc(ip->used, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ip->used = n;
		ip->cap_used = cap;
	}
	memmove(&ip->used[at + 1], &ip->used[at], (ip->n_used - at) * sizeof(*ip->used));
	ip->used[at] = *k;
	ip->n_used++;
	return 0;
}

/*
 * Lowest free address of r into *out and where it goes in the used array; false
 * when r is full. The used addresses in r are distinct and sorted, so the k-th of
 * them equals first + k exactly up to the first gap: bisect for that gap.
 */
static bool range_first_free(const struct ipam *ip, const struct ipam_range *r,
			     struct ipam_key *out, size_t *at)
{
	struct ipam_key first = key_of(&r->first), last = key_of(&r->last);
	size_t base = used_bound(ip, &first, false), end = used_bound(ip, &last, true);
	size_t lo = base, hi = end;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u128_cmp(ip->used[mid].v, u128_add64(first.v, mid - base)) == 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == end && end > base &&
	    u128_cmp(u128_add64(first.v, end - base - 1), last.v) == 0)
		return false;
	out->family = first.family;
	out->v = u128_add64(first.v, lo - base);
	*at = lo;
	return true;
}

static int ipam_allocate(struct vip_source *src, const char *owner, int family,
			 struct ip_addr *out)
{
	struct ipam *ip = ipam_of(src);
	bool have_family = false;

	(void)owner;
	if (family != 0 && family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	for (size_t i = 0; i < ip->n_ranges; i++) {
		const struct ipam_range *r = &ip->ranges[i];
		struct ipam_key k;
		size_t at;
		int err;

		if (family && r->first.family != family)
			continue;
		have_family = true;
		if (!range_first_free(ip, r, &k, &at))
			continue;
		err = used_insert(ip, at, &k);
		if (err)
			return err;
		u128_to_addr(k.v, k.family, out);
		return 0;
	}
	return have_family ? -ENOSPC : -EAFNOSUPPORT;
}

static int ipam_contains(const struct vip_source *src, const struct ip_addr *addr)
{
	const struct ipam *ip = ipam_of_const(src);

	for (size_t i = 0; i < ip->n_ranges; i++)
		if (range_contains(&ip->ranges[i], addr))
			return 1;
	return 0;
}

static int ipam_reserve(struct vip_source *src, const char *owner, const struct ip_addr *addr)
{
	struct ipam *ip = ipam_of(src);
	struct ipam_key k;
	size_t at;

	(void)owner;
	if (!ipam_contains(src, addr))
		return -ERANGE;
	k = key_of(addr);
	at = used_bound(ip, &k, false);
	if (at < ip->n_used && key_cmp(&ip->used[at], &k) == 0)
		return -EEXIST;
	return used_insert(ip, at, &k);
}

static int ipam_release(struct vip_source *src, const struct ip_addr *addr)
{
	struct ipam *ip = ipam_of(src);
	struct ipam_key k;
	size_t at;

	if (!ip_addr_is_set(addr))
		return -ENOENT;
	k = key_of(addr);
	at = used_bound(ip, &k, false);
	if (at == ip->n_used || key_cmp(&ip->used[at], &k) != 0)
		return -ENOENT;
	memmove(&ip->used[at], &ip->used[at + 1], (ip->n_used - at - 1) * sizeof(*ip->used));
	ip->n_used--;
	return 0;
}

static void ipam_usage(const struct vip_source *src, uint64_t *used, uint64_t *total)
{
	const struct ipam *ip = ipam_of_const(src);
	uint64_t t = 0;

	for (size_t i = 0; i < ip->n_ranges; i++) {
		struct u128 span = u128_sub(u128_of_addr(&ip->ranges[i].last),
					    u128_of_addr(&ip->ranges[i].first));

		/* span + 1 addresses; anything past 2^64 - 1 reads as "very many" */
		if (span.hi || span.lo == UINT64_MAX || t > UINT64_MAX - span.lo - 1) {
			t = UINT64_MAX;
			break;
		}
		t += span.lo + 1;
	}
	*used = ip->n_used;
	*total = t;
}

static void ipam_free(struct vip_source *src)
{
	struct ipam *ip = ipam_of(src);

	if (!ip)
		return;
	free(ip->ranges);
	free(ip->used);
	free(ip);
}

static const struct vip_source_ops ipam_ops = {
	.name = "ipam",
	.allocate = ipam_allocate,
	.reserve = ipam_reserve,
	.release = ipam_release,
	.contains = ipam_contains,
	.usage = ipam_usage,
	.free = ipam_free,
};

struct vip_source *ipam_new(const struct ipam_range *ranges, size_t n)
{
	struct ipam *ip = calloc(1, sizeof(*ip));

	if (!ip)
		return NULL;
	ip->src.ops = &ipam_ops;
	if (n) {
		ip->ranges = calloc(n, sizeof(*ip->ranges));
		if (!ip->ranges) {
			free(ip);
			return NULL;
		}
		memcpy(ip->ranges, ranges, n * sizeof(*ranges));
		ip->n_ranges = n;
	}
	return &ip->src;
}
