/* HTTP/1.x response parser for health probes; see http_parse.h. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "health/http_parse.h"

int http_resp_init(struct http_resp *r, const char *expect)
{
	size_t n = expect ? strlen(expect) : 0, k = 0;

	if (n > HTTP_EXPECT_MAX)
		return -EINVAL;
	memset(r, 0, offsetof(struct http_resp, expect));
	r->phase = HTTP_PH_STATUS;
	r->expect_len = n;
	r->found = n == 0;
	if (n)
		memcpy(r->expect, expect, n);
	/* kmp[i]: length of the longest proper border of expect[0..i]. */
	if (n)
		r->kmp[0] = 0;
	for (size_t i = 1; i < n; i++) {
		while (k && expect[i] != expect[k])
			k = r->kmp[k - 1];
		if (expect[i] == expect[k])
			k++;
		r->kmp[i] = (uint16_t)k;
	}
	return 0;
}

static void body_bytes(struct http_resp *r, const char *p, size_t n)
{
	r->body_len += n;
	for (size_t i = 0; i < n && !r->found; i++) {
		while (r->matched && p[i] != r->expect[r->matched])
			r->matched = r->kmp[r->matched - 1];
		if (p[i] == r->expect[r->matched] && ++r->matched == r->expect_len)
			r->found = true;
	}
}

static int fail(struct http_resp *r)
{
	r->phase = HTTP_PH_ERROR;
	return -EBADMSG;
}

static int parse_status(struct http_resp *r, const char *l, size_t n)
{
	/* "HTTP/1.x SSS[ reason]" */
	if (n < 12 || memcmp(l, "HTTP/1.", 7) || l[7] < '0' || l[7] > '9' || l[8] != ' ')
		return fail(r);
	for (int i = 9; i < 12; i++)
		if (l[i] < '0' || l[i] > '9')
			return fail(r);
	if (n > 12 && l[12] != ' ')
		return fail(r);
	r->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (r->status < 100)
		return fail(r);
	r->phase = HTTP_PH_HEADERS;
	return HTTP_MORE;
}

static bool token_eq(const char *s, size_t n, const char *tok)
{
	return strlen(tok) == n && !strncasecmp(s, tok, n);
}

static int parse_header(struct http_resp *r, const char *l, size_t n)
{
	const char *colon = memchr(l, ':', n), *v, *end = l + n;
	size_t name_len;

	if (l[0] == ' ' || l[0] == '\t')
		return HTTP_MORE; /* obsolete line folding: continues a header we do not use */
	if (!colon || colon == l)
		return fail(r);
	name_len = (size_t)(colon - l);
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (token_eq(l, name_len, "content-length")) {
		uint64_t len = 0;

		if (v == end)
			return fail(r);
		for (const char *p = v; p < end; p++) {
			if (*p < '0' || *p > '9' || len > (UINT64_MAX - 9) / 10)
				return fail(r);
			len = len * 10 + (uint64_t)(*p - '0');
		}
		/* Two different lengths make the framing ambiguous (request smuggling). */
		if (r->has_length && r->length != len)
			return fail(r);
		r->has_length = true;
		r->length = len;
	} else if (token_eq(l, name_len, "transfer-encoding")) {
		/* chunked is final when present (RFC 9112 6.1); other codings end by close. */
		const char *last = end;

		while (last > v && last[-1] != ',' && last[-1] != ' ' && last[-1] != '\t')
			last--;
		r->chunked = token_eq(last, (size_t)(end - last), "chunked");
	}
	return HTTP_MORE;
}

static int head_end(struct http_resp *r)
{
	if (r->status < 200) {
		/* An interim response: the real one follows. */
		r->status = 0;
		r->chunked = r->has_length = false;
		r->length = 0;
		r->phase = HTTP_PH_STATUS;
		return HTTP_MORE;
	}
	r->head_done = true;
	if (r->status == 204 || r->status == 304) {
		r->phase = HTTP_PH_DONE;
	} else if (r->chunked) {
		r->phase = HTTP_PH_CHUNK_SIZE;
	} else if (r->has_length) {
		r->left = r->length;
		r->phase = r->left ? HTTP_PH_BODY_LENGTH : HTTP_PH_DONE;
	} else {
		r->phase = HTTP_PH_BODY_CLOSE;
	}
	return r->phase == HTTP_PH_DONE ? HTTP_DONE : HTTP_MORE;
}

static int parse_chunk_size(struct http_resp *r, const char *l, size_t n)
{
	uint64_t size = 0;
	size_t i = 0;

	for (; i < n; i++) {
		int d;

		if (l[i] >= '0' && l[i] <= '9')
			d = l[i] - '0';
		else if ((l[i] | 0x20) >= 'a' && (l[i] | 0x20) <= 'f')
			d = (l[i] | 0x20) - 'a' + 10;
		else
			break;
		if (size >> 60)
			return fail(r);
		size = size << 4 | (uint64_t)d;
	}
	if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
		return fail(r);
	r->left = size;
	r->phase = size ? HTTP_PH_CHUNK_DATA : HTTP_PH_TRAILERS;
	return HTTP_MORE;
}

/* One complete line (without its CR LF) in a line-oriented phase. */
static int line_done(struct http_resp *r, const char *l, size_t n)
{
	switch (r->phase) {
	case HTTP_PH_STATUS:
		return parse_status(r, l, n);
	case HTTP_PH_HEADERS:
		return n ? parse_header(r, l, n) : head_end(r);
	case HTTP_PH_CHUNK_SIZE:
		return parse_chunk_size(r, l, n);
	case HTTP_PH_CHUNK_END:
		if (n)
			return fail(r);
		r->phase = HTTP_PH_CHUNK_SIZE;
		return HTTP_MORE;
	case HTTP_PH_TRAILERS:
		if (n)
			return HTTP_MORE;
		r->phase = HTTP_PH_DONE;
		return HTTP_DONE;
	default:
		return fail(r);
	}
}

int http_resp_feed(struct http_resp *r, const void *buf, size_t n)
{
	const char *p = buf, *end = p + n;

	while (p < end) {
		size_t take;
		int rc;

		switch (r->phase) {
		case HTTP_PH_DONE:
			return HTTP_DONE;
		case HTTP_PH_ERROR:
			return -EBADMSG;
		case HTTP_PH_BODY_CLOSE:
			body_bytes(r, p, (size_t)(end - p));
			return HTTP_MORE;
		case HTTP_PH_BODY_LENGTH:
		case HTTP_PH_CHUNK_DATA:
			take = (size_t)(end - p) < r->left ? (size_t)(end - p) : (size_t)r->left;
			body_bytes(r, p, take);
			p += take;
			r->left -= take;
			if (!r->left)
				r->phase = r->phase == HTTP_PH_CHUNK_DATA ? HTTP_PH_CHUNK_END
									  : HTTP_PH_DONE;
			continue;
		default:
			break;
		}
		/* Line-oriented phases: gather up to LF, then strip the CR. */
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (r->line_len + len >= HTTP_LINE_MAX)
			return fail(r);
		memcpy(r->line + r->line_len, p, len);
		r->line_len += len;
		if (!nl)
			return HTTP_MORE;
		p = nl + 1;
		len = r->line_len;
		r->line_len = 0;
		if (len && r->line[len - 1] == '\r')
			len--;
		rc = line_done(r, r->line, len);
		if (rc < 0)
			return rc;
	}
	if (r->phase == HTTP_PH_DONE)
		return HTTP_DONE;
	return r->phase == HTTP_PH_ERROR ? -EBADMSG : HTTP_MORE;
}

int http_resp_eof(struct http_resp *r)
{
	if (r->phase == HTTP_PH_BODY_CLOSE)
		r->phase = HTTP_PH_DONE;
	if (r->phase == HTTP_PH_DONE)
		return HTTP_DONE;
	return fail(r);
}
