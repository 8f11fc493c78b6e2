/*
 * TCP probe: the backend is healthy when a connect completes. Its sockets are pooled
 * (see struct tcp_pool in probe.h); HTTP and UDP probes open their own.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health/probe.h"

/* The pool grows to the most probes in flight at once; sockets that stayed idle over a
 * whole trim period were not needed and are closed. */
#define TCP_POOL_TRIM_S 2.
#define TCP_POOL_BATCH 64
#define TCP_POOL_ROUNDS 4

/* Close with a reset: thousands of probes a second must not leave TIME_WAIT sockets
 * behind on either side, nor wear out the ephemeral ports. */
static const struct linger abort_on_close = { .l_onoff = 1, .l_linger = 0 };

int probe_connect(struct hc_target *t, int type, void (*cb)(struct ev_loop *, ev_io *, int),
		  int events)
{
	int fd = socket(t->sa.sa.sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
	if (connect(fd, &t->sa.sa, t->salen) < 0 && errno != EINPROGRESS) {
		int err = errno;

		close(fd);
		return -err;
	}
	t->fd = fd;
	ev_io_init(&t->io, cb, fd, events);
	ev_io_start(probe_loop(t), &t->io);
	return 0;
}

/* 0 once connected, or the connect's -errno. */
static int connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

int probe_connected(struct hc_target *t)
{
	return connect_result(t->fd);
}

static int family_slot(int family)
{
	return family == AF_INET6;
}

static void sock_destroy(struct tcp_sock *s)
{
	close(s->fd); /* leaves the epoll set with it */
	free(s);
}

/* What the epoll set says of a connecting socket decides the probe, or not yet. */
static void tcp_event(struct hc_target *t, uint32_t events)
{
	int rc;

	if (events & (EPOLLERR | EPOLLHUP)) {
		rc = connect_result(t->fd);
		probe_finish(t, rc == 0, rc ? probe_errno_reason(-rc) : "ok");
	} else if (events & EPOLLOUT) {
		/* Writable and no error: the handshake is done, SO_ERROR has nothing to say. */
		probe_finish(t, true, "ok");
	}
}

static void pool_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tcp_pool *p = probe_container_of(w, struct tcp_pool, io);
	struct epoll_event ev[TCP_POOL_BATCH];
	bool finished = true;

	(void)loop;
	(void)revents;
	/*
	 * The mask is read when epoll_wait runs, so an event queued for a socket since
	 * handed to another probe describes that probe's connect. A finished probe's
	 * disconnect queues an event of its own (idle sockets report it, to no one):
	 * reading it here saves a loop iteration woken for nothing. What is left after
	 * a few rounds keeps the set readable for the next iteration.
	 */
	for (int round = 0; finished && round < TCP_POOL_ROUNDS; round++) {
		int n = epoll_wait(p->epfd, ev, TCP_POOL_BATCH, 0);

		finished = false;
		for (int i = 0; i < n; i++) {
			struct tcp_sock *s = ev[i].data.ptr;

			if (s->user) {
				tcp_event(s->user, ev[i].events);
				finished = true;
			}
		}
	}
}

static void pool_trim_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tcp_pool *p = probe_container_of(w, struct tcp_pool, trim);

	(void)loop;
	(void)revents;
	for (int i = 0; i < 2; i++) {
		for (; p->low[i] && p->idle[i]; p->low[i]--, p->n_idle[i]--) {
			struct tcp_sock *s = p->idle[i];

			p->idle[i] = s->next;
			sock_destroy(s);
		}
		p->low[i] = p->n_idle[i];
	}
}

static int pool_open(struct hc_target *t, struct tcp_pool *p)
{
	if (p->epfd >= 0)
		return 0;
	p->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (p->epfd < 0)
		return -errno;
	ev_io_init(&p->io, pool_io_cb, p->epfd, EV_READ);
	ev_io_start(probe_loop(t), &p->io);
	ev_timer_init(&p->trim, pool_trim_cb, TCP_POOL_TRIM_S, TCP_POOL_TRIM_S);
	ev_timer_start(probe_loop(t), &p->trim);
	return 0;
}

static struct tcp_sock *sock_new(struct tcp_pool *p, int family)
{
	struct tcp_sock *s = malloc(sizeof(*s));
	/* Edge-triggered: an idle socket (closed state, so EPOLLHUP) stays quiet. */
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.ptr = s };
	int err;

	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->user = NULL;
	s->next = NULL;
	s->fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		err = errno;
		free(s);
		errno = err;
		return NULL;
	}
	/* Should a disconnect fail, the socket is closed instead: with a reset too. */
	setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof(abort_on_close));
	if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		err = errno;
		sock_destroy(s);
		errno = err;
		return NULL;
	}
	return s;
}

void probe_tcp_release(struct hc_target *t)
{
	static const struct sockaddr unspec = { .sa_family = AF_UNSPEC };
	struct tcp_pool *p = probe_tcp_pool(t);
	struct tcp_sock *s = t->tsock;
	int slot = family_slot(t->sa.sa.sa_family);

	t->tsock = NULL;
	t->fd = -1;
	s->user = NULL;
	/*
	 * Disconnecting aborts the connection as a close with zero linger does (same
	 * reset, or nothing before the SYN-ACK) and frees the source port; the next
	 * connect takes a fresh one and clears the socket's pending error.
	 */
	if (connect(s->fd, &unspec, sizeof(unspec)) < 0) {
		sock_destroy(s);
		return;
	}
	s->next = p->idle[slot];
	p->idle[slot] = s;
	p->n_idle[slot]++;
}

int probe_tcp_start(struct hc_target *t)
{
	struct tcp_pool *p = probe_tcp_pool(t);
	int slot = family_slot(t->sa.sa.sa_family), rc = pool_open(t, p);
	struct tcp_sock *s;

	if (rc < 0)
		return rc;
	s = p->idle[slot];
	if (s) {
		p->idle[slot] = s->next;
		if (--p->n_idle[slot] < p->low[slot])
			p->low[slot] = p->n_idle[slot];
	} else {
		s = sock_new(p, t->sa.sa.sa_family);
		if (!s)
			return -errno;
	}
	s->user = t;
	t->tsock = s;
	t->fd = s->fd;
	if (connect(s->fd, &t->sa.sa, t->salen) < 0 && errno != EINPROGRESS)
		return -errno; /* the caller's probe_finish releases the socket */
	return 0;
}

void probe_tcp_pool_init(struct tcp_pool *p)
{
	p->epfd = -1;
	p->idle[0] = p->idle[1] = NULL;
	p->n_idle[0] = p->n_idle[1] = 0;
	p->low[0] = p->low[1] = 0;
}

/* After every probe has released its socket. */
void probe_tcp_pool_free(struct ev_loop *loop, struct tcp_pool *p)
{
	for (int i = 0; i < 2; i++) {
		while (p->idle[i]) {
			struct tcp_sock *s = p->idle[i];

			p->idle[i] = s->next;
			sock_destroy(s);
		}
		p->n_idle[i] = p->low[i] = 0;
	}
	if (p->epfd >= 0) {
		ev_io_stop(loop, &p->io);
		ev_timer_stop(loop, &p->trim);
		close(p->epfd);
		p->epfd = -1;
	}
}
