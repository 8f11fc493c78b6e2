/*
 * HTTP responses as arbitrary bytes, cut into arbitrary reads: the parser never reads or
 * writes out of bounds, and the result does not depend on how the bytes were cut.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "health/http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(struct http_resp *r, const uint8_t *p, size_t n, size_t step, const char *expect)
{
	int rc = HTTP_MORE;

	http_resp_init(r, expect);
	for (size_t off = 0; off < n && rc == HTTP_MORE; off += step)
		rc = http_resp_feed(r, p + off, n - off < step ? n - off : step);
	if (rc == HTTP_MORE)
		rc = http_resp_eof(r);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_resp a, b;
	char expect[9];
	size_t step, elen;
	int ra, rb;

	if (size < 2)
		return 0;
	/* byte 0: read size; byte 1: length of the expected substring taken from the end */
	step = data[0] % 64 + 1;
	elen = data[1] % 9;
	data += 2;
	size -= 2;
	if (elen > size)
		elen = size;
	memcpy(expect, data + size - elen, elen);
	expect[elen] = 0;
	ra = run(&a, data, size, step, expect);
	rb = run(&b, data, size, size ? size : 1, expect);
	if (ra != rb || a.status != b.status || a.found != b.found || a.body_len != b.body_len)
		abort();
	return 0;
}
