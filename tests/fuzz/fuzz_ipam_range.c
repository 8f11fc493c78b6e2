/*
 * ipam_range_parse on arbitrary text; what it accepts must be a well-formed
 * range that a source can hand out from and that overlaps itself.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/ipam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), err[128];
	struct ipam_range r;
	struct vip_source *src;
	struct ip_addr a;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';
	if (ipam_range_parse(s, &r, err, sizeof(err)) != 0) {
		if (!err[0])
			abort();
		free(s);
		return 0;
	}
	if (r.first.family != r.last.family || ip_addr_cmp(&r.first, &r.last) > 0 ||
	    !ipam_ranges_overlap(&r, &r))
		abort();
	src = ipam_new(&r, 1);
	if (src) {
		if (src->ops->allocate(src, "fuzz", 0, &a) != 0 || !ip_addr_equal(&a, &r.first) ||
		    !src->ops->contains(src, &r.last) ||
		    src->ops->reserve(src, "fuzz", &a) != -EEXIST)
			abort();
		src->ops->free(src);
	}
	free(s);
	return 0;
}
