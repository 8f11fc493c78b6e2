/*
 * The API's HTTP transport: libmicrohttpd without threads of its own, driven
 * from the libev loop through MHD's epoll fd, so only the loop's thread ever
 * touches the model.
 */
#include "api.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <malloc.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../log.h"
#include "../settings.h"
#include "../util.h"

#define API_CONN_LIMIT 1024
#define API_CONN_TIMEOUT_S 30
/* After answers this large, give the freed heap back: a daemon that listed 10,000 load
 * balancers once should not hold that memory for the rest of its life. */
#define API_TRIM_AFTER (1024 * 1024)

struct api_server {
	struct MHD_Daemon *mhd;
	struct ev_loop *loop;
	ev_io io;
	ev_timer timer;
	struct api_ctx *ctx;
	char *token;
};

/* Per-request state: the body as it arrives. */
struct api_upload {
	char *buf;
	size_t len, cap;
	size_t resp_len;
	bool too_big;
};

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_warn("msg=\"http: %s\"", msg);
}

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, char *body,
			     const char *content_type)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		body = strdup("{\"error\":\"out of memory\"}");
	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				content_type ? content_type : "application/json");
	if (status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Compares without an early exit so the time taken does not reveal the token. */
static bool token_ok(const char *want, const char *header)
{
	static const char prefix[] = "Bearer ";
	size_t wl = strlen(want), hl;
	unsigned char diff = 0;

	if (!header || strncmp(header, prefix, sizeof(prefix) - 1) != 0)
		return false;
	header += sizeof(prefix) - 1;
	hl = strlen(header);
	for (size_t i = 0; i < wl; i++)
		diff |= (unsigned char)(want[i] ^ (i < hl ? header[i] : 0));
	return diff == 0 && hl == wl;
}

static int upload_append(struct api_upload *u, const char *data, size_t n)
{
	if (u->too_big || u->len + n > API_MAX_BODY) {
		u->too_big = true;
		return 0;
	}
	if (buf_reserve(&u->buf, &u->cap, u->len + n + 1, 1024))
		return -ENOMEM;
	memcpy(u->buf + u->len, data, n);
	u->len += n;
	u->buf[u->len] = '\0';
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_upload *u = *con_cls;
	struct api_request req;
	struct api_response resp;

	(void)version;
	if (!u) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);

		u = calloc(1, sizeof(*u));
		if (!u)
			return MHD_NO;
		*con_cls = u;
		if (s->token && !(strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0) &&
		    !token_ok(s->token, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								    MHD_HTTP_HEADER_AUTHORIZATION)))
			return queue(c, 401, strdup("{\"error\":\"authorization: missing or wrong "
						    "bearer token\"}"), NULL);
		if (cl && strtoull(cl, NULL, 10) > API_MAX_BODY)
			u->too_big = true;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (upload_append(u, upload_data, *upload_data_size))
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (u->too_big) {
		char *b = NULL;

		if (asprintf(&b, "{\"error\":\"body: larger than %d bytes\"}", API_MAX_BODY) < 0)
			b = NULL;
		return queue(c, 413, b, NULL);
	}
	req.method = method;
	req.path = url;
	req.body = u->buf;
	req.body_len = u->len;
	api_handle(s->ctx, &req, &resp);
	log_debug("msg=\"api\" method=%s path=%s status=%u", method, url, resp.status);
	u->resp_len = resp.body ? strlen(resp.body) : 0;
	return queue(c, resp.status, resp.body, resp.content_type);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_upload *u = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (u) {
		bool trim = u->resp_len > API_TRIM_AFTER || u->cap > API_TRIM_AFTER;

		free(u->buf);
		free(u);
		if (trim)
			malloc_trim(0);
		*con_cls = NULL;
	}
}

static void server_run(struct api_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;

	MHD_run(s->mhd);
	ev_timer_stop(s->loop, &s->timer);
	if (MHD_get_timeout(s->mhd, &ms) == MHD_YES) {
		ev_timer_set(&s->timer, (double)ms / 1000.0, 0.);
		ev_timer_start(s->loop, &s->timer);
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	server_run(w->data);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	server_run(w->data);
}

static int listen_socket(const char *listen_addr, int *out)
{
	char host[256], port_s[8];
	struct addrinfo hints, *res = NULL, *ai;
	uint16_t port;
	int fd = -1, err = -EINVAL, one = 1;

	if (listen_addr_parse(listen_addr, host, sizeof(host), &port)) {
		log_error("msg=\"cannot listen\" addr=%s err=\"not HOST:PORT\"", listen_addr);
		return -EINVAL;
	}
	snprintf(port_s, sizeof(port_s), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host[0] ? host : NULL, port_s, &hints, &res)) {
		log_error("msg=\"cannot listen\" addr=%s err=\"cannot resolve %s\"", listen_addr,
			  host);
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 512) == 0)
			break;
		err = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		log_error("msg=\"cannot listen\" addr=%s err=\"%s\"", listen_addr, strerror(-err));
		return err;
	}
	*out = fd;
	return 0;
}

int api_server_start(struct ev_loop *loop, const char *listen_addr, const char *token,
		     struct api_ctx *ctx, struct api_server **out)
{
	struct api_server *s = calloc(1, sizeof(*s));
	const union MHD_DaemonInfo *info;
	int fd, r;

	if (!s)
		return -ENOMEM;
	r = listen_socket(listen_addr, &fd);
	if (r) {
		free(s);
		return r;
	}
	s->loop = loop;
	s->ctx = ctx;
	if (token && !(s->token = strdup(token))) {
		close(fd);
		free(s);
		return -ENOMEM;
	}
	/* The logger goes first so MHD's complaints about later options reach our log. */
	s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, s,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_CONN_LIMIT,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_CONN_TIMEOUT_S,
				  MHD_OPTION_END);
	if (!s->mhd) {
		log_error("msg=\"cannot start the HTTP server\" addr=%s", listen_addr);
		close(fd);
		free(s->token);
		free(s);
		return -EIO;
	}
	info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info) {
		log_error("msg=\"HTTP server has no epoll fd\"");
		api_server_stop(s);
		return -EIO;
	}
	ev_io_init(&s->io, on_io, info->epoll_fd, EV_READ);
	s->io.data = s;
	ev_io_start(loop, &s->io);
	ev_timer_init(&s->timer, on_timer, 0., 0.);
	s->timer.data = s;
	log_info("msg=\"API listening\" addr=%s auth=%s", listen_addr, token ? "bearer" : "none");
	*out = s;
	return 0;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	ev_io_stop(s->loop, &s->io);
	ev_timer_stop(s->loop, &s->timer);
	if (s->mhd)
		MHD_stop_daemon(s->mhd);
	free(s->token);
	free(s);
}
