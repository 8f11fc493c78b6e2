/*
 * An HTTP/1.x response, parsed as bytes arrive, for health probes. Pure: no I/O, no
 * allocation.
 *
 * The parser reads the status line and the headers, then the body framed by
 * Transfer-Encoding: chunked (which wins over Content-Length, RFC 9112 6.3),
 * Content-Length, or the end of the connection. Interim 1xx responses are skipped;
 * 204 and 304 have no body. Body bytes are not kept: they run through a KMP matcher
 * for the one substring a probe may expect, so a match that straddles reads or chunks
 * is still found and memory stays bounded whatever the peer sends.
 */
#ifndef VIPD_HTTP_PARSE_H
#define VIPD_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_LINE_MAX 8192   /* longest status, header, chunk-size or trailer line */
#define HTTP_EXPECT_MAX 256  /* longest expected body substring */

enum http_phase {
	HTTP_PH_STATUS, HTTP_PH_HEADERS, HTTP_PH_BODY_LENGTH, HTTP_PH_BODY_CLOSE,
	HTTP_PH_CHUNK_SIZE, HTTP_PH_CHUNK_DATA, HTTP_PH_CHUNK_END, HTTP_PH_TRAILERS,
	HTTP_PH_DONE, HTTP_PH_ERROR,
};

/* http_resp_feed / http_resp_eof results besides -EBADMSG. */
#define HTTP_MORE 0
#define HTTP_DONE 1

struct http_resp {
	enum http_phase phase;
	int status;             /* of the final (non-1xx) response once the head is done */
	bool head_done;
	bool chunked;
	bool has_length;
	uint64_t length;        /* Content-Length */
	uint64_t left;          /* body or chunk bytes still to come */
	uint64_t body_len;      /* body bytes seen */
	bool found;             /* the expected substring was in the body (true if none) */
	size_t expect_len;
	size_t matched;         /* KMP: expected bytes matched so far */
	size_t line_len;
	char expect[HTTP_EXPECT_MAX];
	uint16_t kmp[HTTP_EXPECT_MAX];
	char line[HTTP_LINE_MAX];
};

/* expect: body substring to look for, NULL or "" for none. 0 or -EINVAL if too long. */
int http_resp_init(struct http_resp *r, const char *expect);
/* Feeds n more bytes. HTTP_MORE, HTTP_DONE (bytes past the response are ignored) or
 * -EBADMSG; once done or failed, later calls return the same. */
int http_resp_feed(struct http_resp *r, const void *buf, size_t n);
/* The peer closed: HTTP_DONE if that ends a close-delimited body (or the response was
 * already complete), -EBADMSG if the response is cut short. */
int http_resp_eof(struct http_resp *r);

#endif
