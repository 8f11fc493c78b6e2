/* Asynchronous HTTP client: libcurl's multi interface on libev; see http.h. */
#include "vipd_config.h"

#include "http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <ev.h>

#include "../src/log.h"

/* A socket libcurl asked us to watch; hung on it with curl_multi_assign. */
struct http_sock {
	ev_io io;
	struct http_client *c;
	struct http_sock *prev, *next;
};

struct http_call {
	struct http_client *c;
	struct http_call *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	http_done_fn cb;
	void *arg;
	enum http_method method;
	char *body;
	size_t body_len, body_cap, max;
	int write_err;                  /* why on_body refused data: -EMSGSIZE or -ENOMEM */
	long retry_after;
	uint64_t started_ms;
	char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
	struct ev_loop *loop;
	CURLM *multi;
	ev_timer timer;
	struct http_call *calls;
	/* Kept so that sockets libcurl still has open when the multi handle goes away are
	 * not left in the loop. */
	struct http_sock *socks;
	bool dispatching;               /* callbacks are being called */
	bool dying;                     /* http_client_free was called from one of them */
};

static const char *const method_names[] = {
	[HTTP_GET] = "GET", [HTTP_POST] = "POST", [HTTP_PUT] = "PUT",
	[HTTP_PATCH] = "PATCH", [HTTP_DELETE] = "DELETE",
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool rest_is_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return *p == '\0';
}

long http_retry_after_parse(const char *value, time_t now)
{
	/* strptime reads names in the C locale, which the daemon never changes. */
	static const char *const date_formats[] = {
		"%a, %d %b %Y %H:%M:%S GMT",    /* IMF-fixdate */
		"%A, %d-%b-%y %H:%M:%S GMT",    /* RFC 850 */
		"%a %b %e %H:%M:%S %Y",         /* asctime */
	};
	const char *p = value;

	while (is_ows(*p))
		p++;
	if (*p >= '0' && *p <= '9') {
		long long v = 0;

		for (; *p >= '0' && *p <= '9'; p++) {
			v = v * 10 + (*p - '0');
			if (v > INT32_MAX)
				v = INT32_MAX;
		}
		return rest_is_ows(p) ? (long)v : -1;
	}
	for (size_t i = 0; i < sizeof(date_formats) / sizeof(date_formats[0]); i++) {
		struct tm tm = { 0 };
		const char *end = strptime(p, date_formats[i], &tm);
		time_t t;

		if (!end || !rest_is_ows(end))
			continue;
		t = timegm(&tm);
		if (t <= now)
			return 0;
		return t - now > INT32_MAX ? INT32_MAX : (long)(t - now);
	}
	return -1;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	static const char name[] = "Retry-After:";
	struct http_call *call = arg;
	size_t len = size * n;

	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		/* A new response (after a 1xx): only the last one's headers count. */
		call->retry_after = -1;
	} else if (len > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0) {
		char v[64];
		size_t vlen = len - (sizeof(name) - 1);

		while (vlen && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
			len--;
			vlen--;
		}
		if (vlen >= sizeof(v)) {
			call->retry_after = -1;
		} else {
			memcpy(v, line + sizeof(name) - 1, vlen);
			v[vlen] = '\0';
			call->retry_after = http_retry_after_parse(v, time(NULL));
		}
	}
	return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct http_call *call = arg;
	size_t len = size * n;

	if (len > call->max - call->body_len) {
		call->write_err = -EMSGSIZE;
		return 0;
	}
	if (call->body_len + len + 1 > call->body_cap) {
		size_t cap = call->body_cap ? call->body_cap : 4096;
		char *p;

		while (cap < call->body_len + len + 1)
			cap *= 2;
		if (cap > call->max + 1)
			cap = call->max + 1;
		p = realloc(call->body, cap);
		if (!p) {
			call->write_err = -ENOMEM;
			return 0;
		}
		call->body = p;
		call->body_cap = cap;
	}
	memcpy(call->body + call->body_len, data, len);
	call->body_len += len;
	call->body[call->body_len] = '\0';
	return len;
}

static int curl_err(const struct http_call *call, CURLcode rc)
{
	long os_errno = 0;

	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_FILESIZE_EXCEEDED:
		return -EMSGSIZE;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR:
		return call->write_err ? call->write_err : -EIO;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(call->easy, CURLINFO_OS_ERRNO, &os_errno);
		switch (os_errno) {
		case ECONNREFUSED:
		case EHOSTUNREACH:
		case ENETUNREACH:
		case ETIMEDOUT:
			return -(int)os_errno;
		default:
			return -EIO;
		}
	default:
		return -EIO;
	}
}

static const char *call_url(const struct http_call *call)
{
	char *url = NULL;

	curl_easy_getinfo(call->easy, CURLINFO_EFFECTIVE_URL, &url);
	return url ? url : "?";
}

static void call_unlink(struct http_call *call)
{
	if (call->prev)
		call->prev->next = call->next;
	else
		call->c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
}

/* Also for one never added to the multi handle: easy may be NULL. */
static void call_free(struct http_call *call)
{
	curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->body);
	free(call);
}

static void finish(struct http_call *call, CURLcode rc)
{
	struct http_response r = { .retry_after = -1 };

	curl_multi_remove_handle(call->c->multi, call->easy);
	call_unlink(call);
	r.err = curl_err(call, rc);
	if (r.err == 0) {
		curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &r.status);
		r.retry_after = call->retry_after;
		r.body = call->body;
		r.body_len = call->body_len;
	} else if (r.err == -EMSGSIZE) {
		snprintf(r.errmsg, sizeof(r.errmsg), "response larger than %zu bytes", call->max);
	} else {
		snprintf(r.errmsg, sizeof(r.errmsg), "%s",
			 call->errbuf[0] ? call->errbuf : curl_easy_strerror(rc));
	}
	if (!r.body)
		r.body = "";
	r.elapsed_ms = (uint32_t)(mono_ms() - call->started_ms);
	log_debug("msg=\"http request done\" method=%s url=%s status=%ld err=%d error=\"%s\" "
		  "elapsed_ms=%u", method_names[call->method], call_url(call), r.status, r.err,
		  r.errmsg, r.elapsed_ms);
	call->cb(call->arg, &r);
	call_free(call);
}

static void client_destroy(struct http_client *c)
{
	/* Closes the connections kept for reuse, which may call on_socket. */
	curl_multi_cleanup(c->multi);
	while (c->socks) {
		struct http_sock *s = c->socks;

		c->socks = s->next;
		ev_io_stop(c->loop, &s->io);
		free(s);
	}
	ev_timer_stop(c->loop, &c->timer);
	free(c);
	curl_global_cleanup();
}

/* Calls the callbacks of the requests libcurl has finished. */
static void dispatch(struct http_client *c)
{
	CURLMsg *m;
	int left;

	c->dispatching = true;
	while (!c->dying && (m = curl_multi_info_read(c->multi, &left))) {
		void *call = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &call);
		finish(call, m->data.result);
	}
	c->dispatching = false;
	if (c->dying)
		client_destroy(c);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http_client *c = s->c;
	int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) |
		     (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
	int running;

	(void)loop;
	/* May free s. */
	curl_multi_socket_action(c->multi, w->fd, action, &running);
	dispatch(c);
}

static void on_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct http_client *c = w->data;
	int running;

	(void)loop;
	(void)revents;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	dispatch(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *cp, void *sp)
{
	struct http_client *c = cp;
	struct http_sock *s = sp;
	int events = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			ev_io_stop(c->loop, &s->io);
			if (s->prev)
				s->prev->next = s->next;
			else
				c->socks = s->next;
			if (s->next)
				s->next->prev = s->prev;
			free(s);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			/* Not watched, the transfer ends at its timeout: that is an error the
			 * caller handles anyway, unlike a multi handle whose transfers a -1
			 * here would all abort. */
			log_error("msg=\"http: out of memory watching a socket\" fd=%d", fd);
			return 0;
		}
		s->c = c;
		ev_init(&s->io, on_io);
		s->io.data = s;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		curl_multi_assign(c->multi, fd, s);
	}
	ev_io_stop(c->loop, &s->io);
	ev_io_set(&s->io, fd, events);
	ev_io_start(c->loop, &s->io);
	return 0;
}

static int on_timer_change(CURLM *multi, long ms, void *cp)
{
	struct http_client *c = cp;

	(void)multi;
	ev_timer_stop(c->loop, &c->timer);
	if (ms >= 0) {
		ev_timer_set(&c->timer, ms / 1000., 0.);
		ev_timer_start(c->loop, &c->timer);
	}
	return 0;
}

struct http_client *http_client_new(struct ev_loop *loop)
{
	struct http_client *c;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->multi = curl_multi_init())) {
		free(c);
		curl_global_cleanup();
		return NULL;
	}
	c->loop = loop;
	ev_init(&c->timer, on_timeout);
	c->timer.data = c;
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	return c;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	while (c->calls)
		http_cancel(c->calls);
	if (c->dispatching)
		c->dying = true;
	else
		client_destroy(c);
}

void http_cancel(struct http_call *call)
{
	curl_multi_remove_handle(call->c->multi, call->easy);
	call_unlink(call);
	log_debug("msg=\"http request cancelled\" method=%s url=%s elapsed_ms=%u",
		  method_names[call->method], call_url(call),
		  (uint32_t)(mono_ms() - call->started_ms));
	call_free(call);
}

/* The options of a request; false when libcurl is out of memory. */
static bool call_setup(struct http_call *call, const struct http_request *req)
{
	CURL *e = call->easy;
	bool has_body = req->body || req->method == HTTP_POST || req->method == HTTP_PUT ||
			req->method == HTTP_PATCH;

	for (const char *const *h = req->headers; h && *h; h++) {
		struct curl_slist *l = curl_slist_append(call->headers, *h);

		if (!l)
			return false;
		call->headers = l;
	}
	/* libcurl would hold a body over 1 MiB back for a second, waiting for a 100
	 * Continue that API servers do not send. Headers the caller gave come first and so
	 * win. */
	{
		struct curl_slist *l = curl_slist_append(call->headers, "Expect:");

		if (!l)
			return false;
		call->headers = l;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, call);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
			 (long)(req->timeout_ms ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS));
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(req->connect_timeout_ms ? req->connect_timeout_ms
							: HTTP_DEFAULT_CONNECT_TIMEOUT_MS));
	/* Refused early when the server announces the length; on_body enforces it anyway. */
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max);
	if (req->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	/* Only options that copy a string can fail (ENOMEM). */
	if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "vipd/" PACKAGE_VERSION) != CURLE_OK)
		return false;
	/* A body makes it a POST; another method is then only a different verb. */
	if (req->method != HTTP_GET && req->method != HTTP_POST &&
	    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_names[req->method]) != CURLE_OK)
		return false;
	if (req->fresh_connection)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	if (has_body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		if (curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "") != CURLE_OK)
			return false;
	}
	return !req->ca_file || curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file) == CURLE_OK;
}

int http_send(struct http_client *c, const struct http_request *req, http_done_fn cb, void *arg,
	      struct http_call **out)
{
	struct http_call *call;

	if (!req->url || (strncasecmp(req->url, "http://", 7) != 0 &&
			  strncasecmp(req->url, "https://", 8) != 0) ||
	    (unsigned int)req->method > HTTP_DELETE || (req->method == HTTP_GET && req->body))
		return -EINVAL;
	call = calloc(1, sizeof(*call));
	if (!call)
		return -ENOMEM;
	call->c = c;
	call->cb = cb;
	call->arg = arg;
	call->method = req->method;
	call->max = req->max_response ? req->max_response : HTTP_DEFAULT_MAX_RESPONSE;
	call->retry_after = -1;
	call->started_ms = mono_ms();
	call->easy = curl_easy_init();
	if (!call->easy || !call_setup(call, req) ||
	    curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
		call_free(call);
		return -ENOMEM;
	}
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	log_debug("msg=\"http request\" method=%s url=%s", method_names[req->method], req->url);
	if (out)
		*out = call;
	return 0;
}
