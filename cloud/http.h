/*
 * Asynchronous HTTP(S) client on the daemon's libev loop, for cloud APIs.
 *
 * libcurl's multi interface does the protocol work; its sockets are watched by ev_io
 * and its one timeout by an ev_timer (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION),
 * so no network wait blocks the loop. Connections are kept and reused between requests
 * to the same host. Name lookups go through libcurl's resolver (a thread of its own in
 * Debian's build), never the loop. One CPU cost does run on it: the first HTTPS
 * request parses the CA file (the system bundle: about 0.1 s), which libcurl then keeps
 * for a day.
 *
 * Callbacks run from the loop, never from inside http_send. A request's callback is
 * called exactly once unless the request is cancelled, by http_cancel or
 * http_client_free: a cancelled request's callback is never called.
 *
 * Secrets (an X-Auth-Token header) are never logged: only the method, URL, status, error
 * and elapsed time are, at debug level.
 */
#ifndef VIPD_CLOUD_HTTP_H
#define VIPD_CLOUD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct ev_loop;
struct http_client;
struct http_call;

#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_MAX_RESPONSE (1024 * 1024)
#define HTTP_ERRMSG_MAX 256

enum http_method { HTTP_GET, HTTP_POST, HTTP_PUT, HTTP_PATCH, HTTP_DELETE };

struct http_request {
	enum http_method method;
	const char *url;                /* http:// or https:// only */
	/* NULL-terminated "Name: value" strings, or NULL. A POST without a Content-Type
	 * header is sent as application/x-www-form-urlencoded (libcurl's default). */
	const char *const *headers;
	/* Copied by http_send. Must be NULL for a GET; a POST, PUT or PATCH without one sends
	 * an empty body (Content-Length: 0). */
	const char *body;
	size_t body_len;
	uint32_t timeout_ms;            /* whole request; 0: HTTP_DEFAULT_TIMEOUT_MS */
	uint32_t connect_timeout_ms;    /* 0: HTTP_DEFAULT_CONNECT_TIMEOUT_MS */
	size_t max_response;            /* body bytes; 0: HTTP_DEFAULT_MAX_RESPONSE */
	const char *ca_file;            /* PEM trust anchors; NULL: the system's */
	bool insecure;                  /* no certificate or host name check (tests) */
	/*
	 * Not on a kept connection. libcurl silently sends a request again when a reused
	 * connection closes before any answer: harmless for a GET, a second action for a POST
	 * the server did act on (a second reservation). On a fresh connection it does not.
	 */
	bool fresh_connection;
};

struct http_response {
	/*
	 * 0 when a response was received, whatever its status; else -ETIMEDOUT (either
	 * timeout), -ECONNREFUSED, -EHOSTUNREACH or -ENETUNREACH (connect failed),
	 * -EMSGSIZE (body larger than max_response), -ENOMEM, or -EIO (anything else: name
	 * lookup, TLS, protocol, reset), with libcurl's words in errmsg.
	 */
	int err;
	char errmsg[HTTP_ERRMSG_MAX];   /* "" when err is 0 */
	long status;                    /* 0 when err is not 0 */
	const char *body;               /* NUL-terminated (never NULL); valid during the callback */
	size_t body_len;
	long retry_after;               /* seconds, from Retry-After; -1 when absent or invalid */
	uint32_t elapsed_ms;            /* from http_send to completion */
};

/*
 * Called once when the request completes; the call handle is gone by then (the
 * callback may send new requests and cancel others, and may free the client).
 */
typedef void (*http_done_fn)(void *arg, const struct http_response *resp);

/* NULL on failure (ENOMEM, or libcurl could not initialise). */
struct http_client *http_client_new(struct ev_loop *loop);
/* Cancels every request in flight (no callback is called) and closes connections. */
void http_client_free(struct http_client *c);

/*
 * Starts a request. 0, with *out (if out is not NULL) set to a handle valid until the
 * callback is called or the request is cancelled; or -EINVAL (bad request: no URL, a
 * body on a GET, a URL scheme other than http or https) or -ENOMEM, and then the
 * callback is never called.
 */
int http_send(struct http_client *c, const struct http_request *req, http_done_fn cb, void *arg,
	      struct http_call **out);
/* Abandons a request in flight: its callback is not called. */
void http_cancel(struct http_call *call);

/*
 * A Retry-After value (RFC 9110 10.2.3): delta-seconds, or an HTTP-date (IMF-fixdate,
 * RFC 850 or asctime form) taken relative to `now`, a date in the past being 0. Seconds
 * (at most INT32_MAX), or -1 if the value is neither. Pure.
 */
long http_retry_after_parse(const char *value, time_t now);

#endif
