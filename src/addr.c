#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ip_addr_parse(const char *s, struct ip_addr *out)
{
	struct ip_addr a;

	memset(&a, 0, sizeof(a));
	if (!s)
		return -EINVAL;
	if (inet_pton(AF_INET, s, &a.v4) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, &a.v6) == 1)
		a.family = AF_INET6;
	else
		return -EINVAL;
	*out = a;
	return 0;
}

const char *ip_addr_str(const struct ip_addr *a, char *buf)
{
	if (!a->family || !inet_ntop(a->family, a->bytes, buf, IP_ADDR_STRLEN))
		strcpy(buf, "");
	return buf;
}

bool ip_addr_is_set(const struct ip_addr *a)
{
	return a->family == AF_INET || a->family == AF_INET6;
}

size_t ip_addr_len(const struct ip_addr *a)
{
	return a->family == AF_INET6 ? 16 : 4;
}

bool ip_addr_equal(const struct ip_addr *a, const struct ip_addr *b)
{
	return ip_addr_cmp(a, b) == 0;
}

int ip_addr_cmp(const struct ip_addr *a, const struct ip_addr *b)
{
	if (a->family != b->family)
		return a->family == AF_INET ? -1 : (b->family == AF_INET ? 1 : a->family - b->family);
	return memcmp(a->bytes, b->bytes, ip_addr_len(a));
}

static int cmp_void(const void *a, const void *b)
{
	return ip_addr_cmp(a, b);
}

size_t ip_addr_sort_unique(struct ip_addr *a, size_t n)
{
	size_t w = 0;

	if (!n)
		return 0;
	qsort(a, n, sizeof(*a), cmp_void);
	for (size_t i = 0; i < n; i++)
		if (ip_addr_is_set(&a[i]) && (!w || !ip_addr_equal(&a[w - 1], &a[i])))
			a[w++] = a[i];
	return w;
}

bool ip_addr_in_sorted(const struct ip_addr *set, size_t n, const struct ip_addr *a)
{
	return n && bsearch(a, set, n, sizeof(*set), cmp_void);
}
