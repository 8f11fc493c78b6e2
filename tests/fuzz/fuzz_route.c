/*
 * route_parse on arbitrary bytes as if the kernel had sent them: never reads out of bounds,
 * and what it accepts names an output interface and addresses of the asked family.
 */
#include <linux/netlink.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* recv() fills an aligned buffer; an exact-size heap copy keeps ASan's bounds tight. */
	void *buf = aligned_alloc(NLMSG_ALIGNTO, size ? (size + 3) & ~(size_t)3 : 4);
	struct route_info ri;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (int fam = AF_INET; fam <= AF_INET6; fam += AF_INET6 - AF_INET) {
		if (route_parse(buf, size, fam, &ri) == 0) {
			if (ri.oif <= 0 || (ri.src.family && ri.src.family != fam) ||
			    (ri.via.family && ri.via.family != fam))
				abort();
		}
	}
	free(buf);
	return 0;
}
