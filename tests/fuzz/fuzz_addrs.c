/*
 * addrs_parse on arbitrary bytes as if the kernel had sent them (RTM_NEWADDR / RTM_DELADDR):
 * never reads out of bounds, and what it accepts is an address of a known family with a
 * prefix length that fits it.
 */
#include <linux/netlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "announce/addrs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* recv() fills an aligned buffer; an exact-size heap copy keeps ASan's bounds tight. */
	void *buf = aligned_alloc(NLMSG_ALIGNTO, size ? (size + 3) & ~(size_t)3 : 4);
	struct addrs_entry e;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (addrs_parse(buf, size, &e) == 0) {
		if ((e.addr.family != AF_INET && e.addr.family != AF_INET6) ||
		    e.prefixlen > (e.addr.family == AF_INET ? 32 : 128))
			abort();
	}
	free(buf);
	return 0;
}
