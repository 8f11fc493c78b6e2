/* IP addresses as vipd keeps them: one type for IPv4 and IPv6. */
#ifndef VIPD_ADDR_H
#define VIPD_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define IP_ADDR_STRLEN INET6_ADDRSTRLEN

struct ip_addr {
	int family; /* AF_INET, AF_INET6, or 0 for "unset" */
	union {
		struct in_addr v4;
		struct in6_addr v6;
		uint8_t bytes[16];
	};
};

/* Parses a literal IPv4 or IPv6 address (no names, no prefix). 0 or -EINVAL. */
int ip_addr_parse(const char *s, struct ip_addr *out);
/* Writes the canonical text form into buf (IP_ADDR_STRLEN bytes); returns buf. */
const char *ip_addr_str(const struct ip_addr *a, char *buf);
bool ip_addr_is_set(const struct ip_addr *a);
bool ip_addr_equal(const struct ip_addr *a, const struct ip_addr *b);
/* Total order: IPv4 before IPv6, then by address bytes. */
int ip_addr_cmp(const struct ip_addr *a, const struct ip_addr *b);
/* Sorts a in ip_addr_cmp order and drops unset and repeated addresses; returns how many
 * are left at the front. */
size_t ip_addr_sort_unique(struct ip_addr *a, size_t n);
/* Whether a is in set[0..n), as ip_addr_sort_unique left it. */
bool ip_addr_in_sorted(const struct ip_addr *set, size_t n, const struct ip_addr *a);
/* Address length in bytes for the family: 4 or 16. */
size_t ip_addr_len(const struct ip_addr *a);

#endif
