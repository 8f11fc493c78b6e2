/*
 * cloud/metal_state's parser on arbitrary bytes: what it refuses says why (naming the line)
 * without a control character; what it accepts formats to text that parses back to the same
 * entries, with no load balancer, id or address twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/metal_state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct metal_state_entry *e = NULL, *e2 = NULL;
	size_t n = 0, n2 = 0, len;
	char err[256] = "", *text;
	int r = metal_state_parse((const char *)data, size, &e, &n, err, sizeof(err));

	if (r) {
		if (e || n || !err[0] || strncmp(err, "line ", 5) != 0)
			abort();
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		return 0;
	}
	if (err[0] || (n && !e))
		abort();
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(e[i].id, e[j].id) == 0 ||
			    (e[i].lb[0] && strcmp(e[i].lb, e[j].lb) == 0) ||
			    ip_addr_equal(&e[i].addr, &e[j].addr))
				abort();
	if (metal_state_format(e, n, &text, &len)) {
		free(e);
		return 0;
	}
	if (strlen(text) != len || metal_state_parse(text, len, &e2, &n2, err, sizeof(err)) ||
	    n2 != n || (n && memcmp(e, e2, n * sizeof(*e)) != 0))
		abort();
	free(text);
	free(e);
	free(e2);
	return 0;
}
