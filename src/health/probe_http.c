/*
 * HTTP and HTTPS probes: GET the path, expect one of the listed statuses (200 if none)
 * and, if set, a substring in the body. HTTPS goes through OpenSSL on the same
 * non-blocking socket; with tls_verify the certificate must chain to the system store
 * and match the Host name (or the backend address).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "health/probe.h"

enum { PH_CONNECT, PH_HANDSHAKE, PH_SEND, PH_RECV };

int probe_http_prepare(struct hc_target *t)
{
	const char *path = t->cfg.http_path ? t->cfg.http_path : "/";
	uint16_t dflt = t->cfg.type == HC_HTTPS ? 443 : 80;
	char host[300];
	int n;

	/* Host header: the configured name, else the address (IPv6 in brackets). */
	if (t->cfg.host)
		n = snprintf(host, sizeof(host), "%s", t->cfg.host);
	else if (t->ip.family == AF_INET6)
		n = snprintf(host, sizeof(host), "[%s]", t->tls_name);
	else
		n = snprintf(host, sizeof(host), "%s", t->tls_name);
	if (n < 0 || (size_t)n >= sizeof(host) - 7)
		return -EINVAL;
	if (t->port != dflt)
		snprintf(host + n, sizeof(host) - (size_t)n, ":%u", t->port);
	n = asprintf(&t->http_req,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vipd-health\r\n"
		     "Accept: */*\r\nConnection: close\r\n\r\n", path, host);
	if (n < 0) {
		t->http_req = NULL;
		return -ENOMEM;
	}
	t->http_req_len = (size_t)n;
	return 0;
}

static bool status_expected(const struct health_check *c, int status)
{
	if (!c->n_expected_status)
		return status == 200;
	for (size_t i = 0; i < c->n_expected_status; i++)
		if (c->expected_status[i] == status)
			return true;
	return false;
}

static void tls_fail(struct hc_target *t, int ssl_err)
{
	char reason[HEALTH_REASON_MAX];
	long v = SSL_get_verify_result(t->ssl);
	unsigned long e = ERR_peek_last_error();

	if (v != X509_V_OK)
		snprintf(reason, sizeof(reason), "TLS error: %s", X509_verify_cert_error_string(v));
	else if (e)
		snprintf(reason, sizeof(reason), "TLS error: %s",
			 ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unknown");
	else if (ssl_err == SSL_ERROR_SYSCALL && errno)
		snprintf(reason, sizeof(reason), "TLS error: %s", probe_errno_reason(errno));
	else
		snprintf(reason, sizeof(reason), "TLS error: connection closed");
	ERR_clear_error();
	probe_finish(t, false, reason);
}

/* Waits for what OpenSSL asked for; false if the error is final (probe finished). */
static bool tls_again(struct hc_target *t, int rc)
{
	int err = SSL_get_error(t->ssl, rc);

	if (err == SSL_ERROR_WANT_READ) {
		probe_want(t, EV_READ);
		return true;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		probe_want(t, EV_WRITE);
		return true;
	}
	tls_fail(t, err);
	return false;
}

static int tls_setup(struct hc_target *t)
{
	SSL_CTX *ctx = probe_ssl_ctx(t);
	struct ip_addr literal;
	bool is_ip;

	if (!ctx || !(t->ssl = SSL_new(ctx)))
		return -ENOMEM;
	SSL_set_fd(t->ssl, t->fd);
	is_ip = ip_addr_parse(t->tls_name, &literal) == 0;
	if (!is_ip)
		SSL_set_tlsext_host_name(t->ssl, t->tls_name);
	if (t->cfg.tls_verify) {
		SSL_set_verify(t->ssl, SSL_VERIFY_PEER, NULL);
		if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->tls_name)
			  : !SSL_set1_host(t->ssl, t->tls_name))
			return -ENOMEM;
	} else {
		SSL_set_verify(t->ssl, SSL_VERIFY_NONE, NULL);
	}
	return 0;
}

/* The response so far decides the probe, or not yet (false). */
static bool judge(struct hc_target *t, int rc, bool eof)
{
	struct http_resp *r = t->resp;
	char reason[32];

	if (eof && !r->head_done) {
		/* Nothing at all is a server that hangs up; a partial head is garbage. */
		probe_finish(t, false, r->status || r->line_len ? "bad response" : "closed");
		return true;
	}
	if (rc < 0) {
		probe_finish(t, false, "bad response");
		return true;
	}
	if (!r->head_done)
		return false;
	if (!status_expected(&t->cfg, r->status)) {
		snprintf(reason, sizeof(reason), "status %d", r->status);
		probe_finish(t, false, reason);
		return true;
	}
	if (r->found) {
		probe_finish(t, true, "ok");
		return true;
	}
	if (rc == HTTP_DONE || eof) {
		probe_finish(t, false, "body mismatch");
		return true;
	}
	return false;
}

static void http_step(struct hc_target *t)
{
	char buf[4096];
	int n;

	for (;;) {
		switch (t->phase) {
		case PH_HANDSHAKE:
			ERR_clear_error();
			n = SSL_connect(t->ssl);
			if (n != 1) {
				tls_again(t, n);
				return;
			}
			t->phase = PH_SEND;
			break;
		case PH_SEND:
			if (t->ssl) {
				ERR_clear_error();
				n = SSL_write(t->ssl, t->http_req + t->sent,
					      (int)(t->http_req_len - t->sent));
				if (n <= 0) {
					tls_again(t, n);
					return;
				}
			} else {
				n = (int)send(t->fd, t->http_req + t->sent, t->http_req_len - t->sent,
					      MSG_NOSIGNAL);
				if (n < 0) {
					if (errno == EAGAIN || errno == EINTR)
						probe_want(t, EV_WRITE);
					else
						probe_finish(t, false, probe_errno_reason(errno));
					return;
				}
			}
			t->sent += (size_t)n;
			if (t->sent == t->http_req_len)
				t->phase = PH_RECV;
			break;
		case PH_RECV:
			if (t->ssl) {
				ERR_clear_error();
				n = SSL_read(t->ssl, buf, sizeof(buf));
				if (n <= 0) {
					int err = SSL_get_error(t->ssl, n);

					if (err == SSL_ERROR_ZERO_RETURN) {
						judge(t, http_resp_eof(t->resp), true);
						return;
					}
					tls_again(t, n);
					return;
				}
			} else {
				n = (int)recv(t->fd, buf, sizeof(buf), 0);
				if (n < 0) {
					if (errno == EAGAIN || errno == EINTR)
						probe_want(t, EV_READ);
					else
						probe_finish(t, false, probe_errno_reason(errno));
					return;
				}
				if (n == 0) {
					judge(t, http_resp_eof(t->resp), true);
					return;
				}
			}
			if (judge(t, http_resp_feed(t->resp, buf, (size_t)n), false))
				return;
			break;
		default:
			return;
		}
	}
}

static void http_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hc_target *t = probe_container_of(w, struct hc_target, io);

	(void)loop;
	(void)revents;
	if (t->phase == PH_CONNECT) {
		int rc = probe_connected(t);

		if (rc < 0) {
			probe_finish(t, false, probe_errno_reason(-rc));
			return;
		}
		if (t->cfg.type == HC_HTTPS) {
			if (tls_setup(t) < 0) {
				probe_finish(t, false, "TLS error: setup");
				return;
			}
			t->phase = PH_HANDSHAKE;
		} else {
			t->phase = PH_SEND;
		}
	}
	http_step(t);
}

int probe_http_start(struct hc_target *t)
{
	t->resp = malloc(sizeof(*t->resp));
	if (!t->resp)
		return -ENOMEM;
	if (http_resp_init(t->resp, t->cfg.expect_body) < 0)
		return -EINVAL;
	t->phase = PH_CONNECT;
	return probe_connect(t, SOCK_STREAM, http_io_cb, EV_WRITE);
}
