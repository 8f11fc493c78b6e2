/* TCP probe: the backend is healthy when a connect completes. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health/probe.h"

int probe_connect(struct hc_target *t, int type, void (*cb)(struct ev_loop *, ev_io *, int),
		  int events)
{
	int fd = socket(t->sa.ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (type == SOCK_STREAM) {
		/* Close with a reset: thousands of probes a second must not leave TIME_WAIT
		 * sockets behind on either side, nor wear out the ephemeral ports. */
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	if (connect(fd, (struct sockaddr *)&t->sa, t->salen) < 0 && errno != EINPROGRESS) {
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

static void tcp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hc_target *t = probe_container_of(w, struct hc_target, io);
	int rc = connect_result(t->fd);

	(void)loop;
	(void)revents;
	probe_finish(t, rc == 0, rc ? probe_errno_reason(-rc) : "ok");
}

int probe_tcp_start(struct hc_target *t)
{
	return probe_connect(t, SOCK_STREAM, tcp_io_cb, EV_WRITE);
}
