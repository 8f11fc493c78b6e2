/*
 * UDP probe: send the payload, wait for a reply (holding udp_expect if set). A closed
 * port answers with ICMP port unreachable, which a connected socket reports as
 * ECONNREFUSED; silence ends in the deadline's "timeout".
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "health/probe.h"

static void udp_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct hc_target *t = probe_container_of(w, struct hc_target, io);
	char buf[2048];
	ssize_t n;

	(void)loop;
	(void)revents;
	n = recv(t->fd, buf, sizeof(buf), 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		probe_finish(t, false, probe_errno_reason(errno));
		return;
	}
	if (t->cfg.udp_expect && *t->cfg.udp_expect &&
	    !memmem(buf, (size_t)n, t->cfg.udp_expect, strlen(t->cfg.udp_expect))) {
		probe_finish(t, false, "reply mismatch");
		return;
	}
	probe_finish(t, true, "ok");
}

int probe_udp_start(struct hc_target *t)
{
	const char *p = t->cfg.udp_payload ? t->cfg.udp_payload : "";
	int rc = probe_connect(t, SOCK_DGRAM, udp_io_cb, EV_READ);

	if (rc < 0)
		return rc;
	if (send(t->fd, p, strlen(p), 0) < 0)
		return -errno; /* the caller's probe_finish closes the socket */
	return 0;
}
