#include "bird.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "addrs.h"
#include "bird_reply.h"
#include "log.h"

/* A restarted BIRD is back within a second or two; a stopped one is retried calmly. */
#define BIRD_BACKOFF_MIN_S 0.1
#define BIRD_BACKOFF_MAX_S 5.0
#define BIRD_MSG_MAX 512

/* Reply codes (BIRD's doc/reply_codes). */
#define BIRD_WELCOME 1
#define BIRD_RECONFIGURED 3
#define BIRD_RECONFIG_IN_PROGRESS 4
#define BIRD_RECONFIG_QUEUED 5
#define BIRD_FIRST_ERROR 8000

/* RFC 8326 GRACEFUL_SHUTDOWN, 65535:0, in BIRD's pair syntax. */
#define BIRD_GRACEFUL_ATTRS " { bgp_community.add((65535, 0)); }"

static const char configure_cmd[] = "configure\n";

enum bird_state {
	BIRD_DOWN,     /* no socket; the timer runs the reconnect backoff */
	BIRD_GREETING, /* connected, waiting for 0001 */
	BIRD_IDLE,     /* ready for a command */
	BIRD_BUSY,     /* a configure is in flight */
};

/* Sorted by ip_addr_cmp, no duplicates. */
struct vip_set {
	struct ip_addr *v;
	size_t n;
};

struct bird_an {
	struct announcer base;
	struct ev_loop *loop;
	char *socket_path;
	char *path[2]; /* route files: IPv4, IPv6 */
	double timeout_s;
	double graceful_s;
	struct addrs *addrs; /* VIPs as addresses on addr_iface, or NULL */

	enum bird_state state;
	int fd;
	ev_io io;
	ev_timer timer; /* reconnect backoff (DOWN) or the reply deadline (GREETING, BUSY) */
	ev_timer kick;	/* zero delay: the syncs of one loop pass make one configure */
	double backoff;
	bool outage_logged; /* retries of a logged outage stay quiet */
	struct bird_reader rd;
	char msg[BIRD_MSG_MAX]; /* BIRD's error text in the reply under way */

	struct vip_set want;	/* the last sync */
	struct vip_set written; /* what the files hold, when files_known */
	bool files_known;
	bool dirty;	   /* want is not in the files yet: the next flush writes it */
	int write_err;	   /* the last write of the files: 0 or -errno */
	struct vip_set sent; /* what the files held when the configure in flight went */
	struct vip_set live; /* what the last configure BIRD accepted read */
	bool pending;	     /* BIRD has not been asked to read the files as they are */
	bool synced;	     /* a sync arrived: the files hold vipd's view, worth pushing */
	int bird_err;	     /* the last configure: 0, -EIO rejected, -ETIMEDOUT, -ECONNRESET */
	struct bird_stats stats;
	double configure_t0; /* when the configure in flight was sent */
};

static const struct announcer_ops bird_ops;

static void bird_connect(struct bird_an *b);
static void bird_flush(struct bird_an *b);

/* --- VIP sets --------------------------------------------------------------------------- */

static int set_assign(struct vip_set *s, const struct ip_addr *v, size_t n)
{
	struct ip_addr *copy = NULL;
	size_t w = 0;

	if (n) {
		copy = malloc(n * sizeof(*copy));
		if (!copy)
			return -ENOMEM;
		memcpy(copy, v, n * sizeof(*copy));
		w = ip_addr_sort_unique(copy, n);
	}
	free(s->v);
	s->v = copy;
	s->n = w;
	return 0;
}

static bool set_equal(const struct vip_set *a, const struct vip_set *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!ip_addr_equal(&a->v[i], &b->v[i]))
			return false;
	return true;
}

static void set_clear(struct vip_set *s)
{
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

/* --- route files ------------------------------------------------------------------------- */

int bird_routes_format(const struct ip_addr *vips, size_t n, int family, bool graceful,
		       char **out, size_t *len)
{
	static const char head[] =
		"# Written by vipd: the VIPs it announces. Replaced on every change; do not edit.\n";
	size_t cap = sizeof(head) + 1, used;
	char *text;

	for (size_t i = 0; i < n; i++)
		if (vips[i].family == family)
			cap += IP_ADDR_STRLEN + sizeof("route /128 blackhole;\n") +
			       (graceful ? sizeof(BIRD_GRACEFUL_ATTRS) : 0);
	text = malloc(cap);
	if (!text)
		return -ENOMEM;
	memcpy(text, head, sizeof(head));
	used = sizeof(head) - 1;
	for (size_t i = 0; i < n; i++) {
		char a[IP_ADDR_STRLEN];

		if (vips[i].family != family)
			continue;
		used += (size_t)snprintf(text + used, cap - used, "route %s/%d blackhole%s;\n",
					 ip_addr_str(&vips[i], a), family == AF_INET ? 32 : 128,
					 graceful ? BIRD_GRACEFUL_ATTRS : "");
	}
	*out = text;
	*len = used;
	return 0;
}

static int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd, err = 0;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd))
		err = -errno;
	close(fd);
	return err;
}

int bird_file_replace(const char *path, const char *text, size_t len)
{
	char *tmp;
	int fd, err = 0;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	/* The umask must not hide the file from BIRD's own user. */
	if (fchmod(fd, 0644))
		err = -errno;
	for (size_t off = 0; !err && off < len;) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno != EINTR)
			err = -errno;
		else if (w > 0)
			off += (size_t)w;
	}
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	else
		err = fsync_parent(path);
	free(tmp);
	return err;
}

/* Writes the files for set; graceful tags every route with GRACEFUL_SHUTDOWN. */
static int write_files(struct bird_an *b, const struct vip_set *set, bool graceful)
{
	static const int fams[2] = { AF_INET, AF_INET6 };
	int err = 0;

	for (int i = 0; i < 2 && !err; i++) {
		char *text;
		size_t len;

		err = bird_routes_format(set->v, set->n, fams[i], graceful, &text, &len);
		if (err)
			break;
		err = bird_file_replace(b->path[i], text, len);
		free(text);
		if (err)
			log_error("msg=\"cannot write BIRD route file\" path=%s err=%d (%s)", b->path[i],
				  err, strerror(-err));
	}
	if (err) {
		b->files_known = false;
		return err;
	}
	if (set != &b->written) {
		struct vip_set copy = { NULL, 0 };

		if (set_assign(&copy, set->v, set->n)) {
			b->files_known = false;
			return -ENOMEM;
		}
		set_clear(&b->written);
		b->written = copy;
	}
	b->files_known = true;
	b->stats.file_writes++;
	return 0;
}

/* Creates dir and its parents (0755) where missing. */
static int mkdir_p(const char *dir)
{
	char *p = strdup(dir);
	int err = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = p; !err; s++) {
		char c = *s;

		if (s == p || (c != '/' && c != '\0'))
			continue;
		*s = '\0';
		if (mkdir(p, 0755) == 0) {
			if (chmod(p, 0755))
				err = -errno;
		} else if (errno != EEXIST) {
			err = -errno;
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
	return err;
}

/* --- addresses --------------------------------------------------------------------------- */

/*
 * The VIPs go on lo before their routes reach BIRD and leave only after BIRD confirmed
 * the withdrawal, so traffic the network still sends during either change is accepted.
 */
static int place_addrs(struct bird_an *b)
{
	struct ip_addr *u;
	size_t n;
	int err;

	if (!b->addrs)
		return 0;
	u = malloc((b->want.n + b->live.n + 1) * sizeof(*u));
	if (!u)
		return -ENOMEM;
	if (b->want.n)
		memcpy(u, b->want.v, b->want.n * sizeof(*u));
	n = b->want.n;
	if (b->live.n)
		memcpy(u + n, b->live.v, b->live.n * sizeof(*u));
	n += b->live.n;
	err = addrs_sync(b->addrs, u, n);
	free(u);
	return err;
}

/* --- the control socket ------------------------------------------------------------------ */

/* BIRD's text, fit for a quoted log value. */
static void msg_append(char *msg, size_t size, const char *text, size_t len)
{
	size_t used = strlen(msg);

	if (used && used + 3 < size) {
		memcpy(msg + used, " | ", 3);
		used += 3;
	}
	for (size_t i = 0; i < len && used + 1 < size; i++) {
		unsigned char c = (unsigned char)text[i];

		msg[used++] = c < 0x20 || c == 0x7f ? '?' : c == '"' ? '\'' : (char)c;
	}
	msg[used] = '\0';
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void configure_done(struct bird_an *b, bool ok)
{
	if (ok)
		b->stats.configure_ok++;
	else
		b->stats.configure_failed++;
	b->stats.last_configure = ok;
	b->stats.last_configure_s = now_mono() - b->configure_t0;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A unix socket connects at once or fails (EAGAIN: backlog full); it never pends. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static void arm_timer(struct bird_an *b, double after)
{
	ev_timer_stop(b->loop, &b->timer);
	ev_timer_set(&b->timer, after, 0.);
	ev_timer_start(b->loop, &b->timer);
}

static void schedule_reconnect(struct bird_an *b)
{
	arm_timer(b, b->backoff);
	b->backoff *= 2;
	if (b->backoff > BIRD_BACKOFF_MAX_S)
		b->backoff = BIRD_BACKOFF_MAX_S;
}

/* The session is over: BIRD went away, broke the protocol or did not answer. */
static void bird_drop(struct bird_an *b, const char *why, int err)
{
	if (b->state == BIRD_BUSY) {
		configure_done(b, false);
		b->bird_err = err == -ETIMEDOUT ? err : -ECONNRESET;
	}
	ev_io_stop(b->loop, &b->io);
	close(b->fd);
	b->fd = -1;
	b->state = BIRD_DOWN;
	b->stats.connected = false;
	/* Whatever BIRD runs next, have it read the files again once it is back. */
	if (b->synced)
		b->pending = true;
	bird_flush(b);
	if (!b->outage_logged)
		log_warn("msg=\"lost the BIRD control socket; reconnecting\" socket=%s reason=\"%s\" "
			 "err=%d (%s)", b->socket_path, why, err, strerror(-err));
	b->outage_logged = true;
	schedule_reconnect(b);
}

static void bird_ready(struct bird_an *b, const struct bird_line *l)
{
	char version[64] = "";

	msg_append(version, sizeof(version), l->text, l->len);
	b->state = BIRD_IDLE;
	b->stats.connects++;
	b->stats.connected = true;
	b->backoff = BIRD_BACKOFF_MIN_S;
	b->outage_logged = false;
	ev_timer_stop(b->loop, &b->timer);
	log_info("msg=\"connected to BIRD\" socket=%s greeting=\"%s\"", b->socket_path, version);
	bird_flush(b);
}

static void bird_configured(struct bird_an *b, int code)
{
	int err;

	ev_timer_stop(b->loop, &b->timer);
	b->state = BIRD_IDLE;
	if (code == BIRD_RECONFIGURED || code == BIRD_RECONFIG_IN_PROGRESS ||
	    code == BIRD_RECONFIG_QUEUED) {
		size_t n6 = 0;

		for (size_t i = 0; i < b->sent.n; i++)
			n6 += b->sent.v[i].family == AF_INET6;
		configure_done(b, true);
		if (b->bird_err)
			log_info("msg=\"BIRD accepts its configuration again\"");
		b->bird_err = 0;
		set_clear(&b->live);
		b->live = b->sent;
		b->sent = (struct vip_set){ NULL, 0 };
		log_info("msg=\"routes handed to BIRD\" ipv4=%zu ipv6=%zu code=%04d", b->live.n - n6, n6,
			 code);
		/* Withdrawn VIPs leave lo now that BIRD no longer draws their traffic. */
		err = place_addrs(b);
		if (err)
			log_warn("msg=\"cannot update the VIP addresses\" err=%d (%s)", err,
				 strerror(-err));
	} else {
		configure_done(b, false);
		b->bird_err = -EIO;
		log_error("msg=\"BIRD rejected its configuration and keeps running the previous one; "
			  "fix bird.conf (or what it includes)\" code=%04d bird=\"%s\"", code,
			  b->msg[0] ? b->msg : "(no message)");
	}
	bird_flush(b);
}

static void bird_send_configure(struct bird_an *b)
{
	ssize_t w = send(b->fd, configure_cmd, sizeof(configure_cmd) - 1, MSG_NOSIGNAL);

	if (w != (ssize_t)sizeof(configure_cmd) - 1) {
		bird_drop(b, "cannot send configure", w < 0 ? -errno : -EAGAIN);
		return;
	}
	b->pending = false;
	if (set_assign(&b->sent, b->written.v, b->written.n))
		set_clear(&b->sent);
	b->state = BIRD_BUSY;
	b->msg[0] = '\0';
	b->stats.configures++;
	b->configure_t0 = now_mono();
	arm_timer(b, b->timeout_s);
	log_debug("msg=\"BIRD configure sent\" routes=%zu", b->written.n);
}

/*
 * Brings BIRD up to the wanted set as far as the session allows: the files are written
 * unless a configure is in flight (its reply flushes again, so a burst of syncs costs one
 * write and one configure), and BIRD is asked to read them when it is free.
 */
static void bird_flush(struct bird_an *b)
{
	if (b->dirty && b->state != BIRD_BUSY) {
		b->write_err = write_files(b, &b->want, false);
		if (!b->write_err) {
			b->dirty = false;
			b->pending = true;
		}
	}
	if (b->pending && b->state == BIRD_IDLE)
		bird_send_configure(b);
}

/* 0 to go on reading, 1 when the session was dropped. */
static int bird_on_line(struct bird_an *b, const struct bird_line *l)
{
	if (l->kind == BIRD_LINE_ASYNC) {
		char text[BIRD_MSG_MAX] = "";

		msg_append(text, sizeof(text), l->text, l->len);
		log_debug("msg=\"BIRD says\" text=\"%s\"", text);
		return 0;
	}
	if (l->code >= BIRD_FIRST_ERROR)
		msg_append(b->msg, sizeof(b->msg), l->text, l->len);
	if (l->kind == BIRD_LINE_MORE)
		return 0;
	switch (b->state) {
	case BIRD_GREETING:
		if (l->code != BIRD_WELCOME) {
			bird_drop(b, "no greeting", -EPROTO);
			return 1;
		}
		bird_ready(b, l);
		return b->state == BIRD_DOWN;
	case BIRD_BUSY:
		bird_configured(b, l->code);
		return b->state == BIRD_DOWN;
	default:
		log_debug("msg=\"BIRD reply nobody asked for\" code=%04d", l->code);
		return 0;
	}
}

static void bird_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct bird_an *b = w->data;

	(void)loop;
	(void)revents;
	for (;;) {
		struct bird_line l;
		size_t room;
		char *p = bird_reader_space(&b->rd, &room);
		ssize_t r = read(b->fd, p, room);
		int rc;

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			bird_drop(b, r ? "read failed" : "BIRD closed the socket",
				  r ? -errno : -ECONNRESET);
			return;
		}
		bird_reader_commit(&b->rd, (size_t)r);
		while ((rc = bird_reader_next(&b->rd, &l)) != 0) {
			if (rc < 0) {
				bird_drop(b, "malformed reply", rc);
				return;
			}
			if (bird_on_line(b, &l))
				return;
		}
	}
}

static void bird_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct bird_an *b = w->data;

	(void)loop;
	(void)revents;
	if (b->state == BIRD_DOWN)
		bird_connect(b);
	else
		bird_drop(b, b->state == BIRD_BUSY ? "no answer to configure" : "no greeting",
			  -ETIMEDOUT);
}

static void bird_on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	bird_flush(w->data);
}

static void bird_connect(struct bird_an *b)
{
	int fd = unix_connect(b->socket_path);

	if (fd < 0) {
		if (!b->outage_logged)
			log_warn("msg=\"cannot reach BIRD; retrying\" socket=%s err=%d (%s)",
				 b->socket_path, fd, strerror(-fd));
		else
			log_debug("msg=\"BIRD still unreachable\" socket=%s err=%d", b->socket_path,
				  fd);
		b->outage_logged = true;
		schedule_reconnect(b);
		return;
	}
	b->fd = fd;
	b->state = BIRD_GREETING;
	bird_reader_init(&b->rd);
	b->msg[0] = '\0';
	ev_io_set(&b->io, fd, EV_READ);
	ev_io_start(b->loop, &b->io);
	arm_timer(b, b->timeout_s);
}

/* --- the synchronous path, for withdraw_all while the loop is stopped --------------------- */

/* Reads one reply; its final code, or -errno. */
static int read_reply_blocking(int fd, struct bird_reader *rd, double deadline, char *msg,
			       size_t msglen)
{
	for (;;) {
		struct bird_line l;
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		double left;
		size_t room;
		ssize_t r;
		int rc;
		char *p;

		while ((rc = bird_reader_next(rd, &l)) != 0) {
			if (rc < 0)
				return rc;
			if (l.kind != BIRD_LINE_ASYNC && l.code >= BIRD_FIRST_ERROR)
				msg_append(msg, msglen, l.text, l.len);
			if (l.kind == BIRD_LINE_LAST)
				return l.code;
		}
		left = deadline - now_mono();
		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc <= 0)
			continue;
		p = bird_reader_space(rd, &room);
		r = read(fd, p, room);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		bird_reader_commit(rd, (size_t)r);
	}
}

/* One configure on a fresh connection; 0 when BIRD took it, else -errno (logged). */
static int configure_blocking(struct bird_an *b)
{
	double deadline = now_mono() + b->timeout_s;
	char msg[BIRD_MSG_MAX] = "";
	int fd = unix_connect(b->socket_path), code;

	if (fd < 0) {
		log_warn("msg=\"cannot reach BIRD to withdraw the routes; BIRD will find the files "
			 "empty when it next reads them\" socket=%s err=%d (%s)",
			 b->socket_path, fd, strerror(-fd));
		return fd;
	}
	b->configure_t0 = now_mono();
	bird_reader_init(&b->rd);
	code = read_reply_blocking(fd, &b->rd, deadline, msg, sizeof(msg));
	if (code == BIRD_WELCOME) {
		b->stats.configures++;
		code = send(fd, configure_cmd, sizeof(configure_cmd) - 1, MSG_NOSIGNAL) ==
				       (ssize_t)sizeof(configure_cmd) - 1
			       ? read_reply_blocking(fd, &b->rd, deadline, msg, sizeof(msg))
			       : -errno;
	} else if (code >= 0) {
		code = -EPROTO;
	}
	close(fd);
	if (code == BIRD_RECONFIGURED || code == BIRD_RECONFIG_IN_PROGRESS ||
	    code == BIRD_RECONFIG_QUEUED) {
		configure_done(b, true);
		return 0;
	}
	configure_done(b, false);
	if (code < 0)
		log_error("msg=\"BIRD did not take the configure\" err=%d (%s)", code, strerror(-code));
	else
		log_error("msg=\"BIRD rejected its configuration\" code=%04d bird=\"%s\"", code,
			  msg[0] ? msg : "(no message)");
	return code < 0 ? code : -EIO;
}

static void sleep_s(double s)
{
	double deadline = now_mono() + s;
	double left;

	while ((left = deadline - now_mono()) > 0) {
		struct timespec ts = { .tv_sec = (time_t)left,
				       .tv_nsec = (long)((left - (double)(time_t)left) * 1e9) };

		nanosleep(&ts, NULL);
	}
}

/* --- announcer ops ----------------------------------------------------------------------- */

static int bird_sync(struct announcer *an, const struct ip_addr *vips, size_t n)
{
	struct bird_an *b = (struct bird_an *)an;
	int err;

	err = set_assign(&b->want, vips, n);
	if (err)
		return err;
	b->synced = true;
	/* Addresses first: the node must accept a VIP's traffic before the route draws it. */
	err = place_addrs(b);
	b->dirty = !b->files_known || !set_equal(&b->want, &b->written);
	/* The files are right but BIRD has not taken them: ask again. */
	if (!b->dirty && b->bird_err && b->state == BIRD_IDLE)
		b->pending = true;
	/* Not now: every sync of this loop pass folds into one write and one configure. */
	if ((b->dirty || b->pending) && !ev_is_active(&b->kick))
		ev_timer_start(b->loop, &b->kick);
	if (err)
		return err;
	if (b->write_err)
		return b->write_err;
	if (b->state == BIRD_DOWN)
		return -ENOTCONN;
	return b->bird_err;
}

static void bird_withdraw_all(struct announcer *an)
{
	struct bird_an *b = (struct bird_an *)an;
	struct vip_set none = { NULL, 0 };
	/* Routes a previous run left in the files, or BIRD has not dropped yet, count too. */
	bool had_routes = !b->files_known || b->written.n || b->live.n || b->pending;
	/* A BIRD that was not there a moment ago gets no graceful period to wait out. */
	bool reachable = b->state != BIRD_DOWN;

	ev_timer_stop(b->loop, &b->kick);
	ev_timer_stop(b->loop, &b->timer);
	if (b->fd >= 0) {
		ev_io_stop(b->loop, &b->io);
		close(b->fd);
		b->fd = -1;
	}
	b->state = BIRD_DOWN;
	b->stats.connected = false;
	if (reachable && b->graceful_s > 0 && b->files_known && b->written.n > 0 &&
	    write_files(b, &b->written, true) == 0 && configure_blocking(b) == 0) {
		log_info("msg=\"routes carry GRACEFUL_SHUTDOWN; waiting before withdrawing them\" "
			 "seconds=%.1f routes=%zu", b->graceful_s, b->written.n);
		sleep_s(b->graceful_s);
	}
	if (write_files(b, &none, false) == 0 && had_routes && configure_blocking(b) == 0)
		log_info("msg=\"routes withdrawn from BIRD\"");
	set_clear(&b->want);
	set_clear(&b->live);
	if (b->addrs)
		addrs_sync(b->addrs, NULL, 0);
}

static void bird_free(struct announcer *an)
{
	struct bird_an *b = (struct bird_an *)an;

	ev_timer_stop(b->loop, &b->kick);
	ev_timer_stop(b->loop, &b->timer);
	if (b->fd >= 0) {
		ev_io_stop(b->loop, &b->io);
		close(b->fd);
	}
	set_clear(&b->want);
	set_clear(&b->written);
	set_clear(&b->sent);
	set_clear(&b->live);
	if (b->addrs)
		addrs_free(b->addrs);
	free(b->socket_path);
	free(b->path[0]);
	free(b->path[1]);
	free(b);
}

static const struct announcer_ops bird_ops = {
	.name = "bird",
	.sync = bird_sync,
	.withdraw_all = bird_withdraw_all,
	.free = bird_free,
};

void bird_announcer_reconfigure(struct announcer *an)
{
	struct bird_an *b = (struct bird_an *)an;

	b->pending = true;
	if (!ev_is_active(&b->kick))
		ev_timer_start(b->loop, &b->kick);
}

void bird_announcer_stats(const struct announcer *an, struct bird_stats *out)
{
	const struct bird_an *b = (const struct bird_an *)an;

	*out = b->stats;
	out->in_sync = b->synced && b->state == BIRD_IDLE && !b->dirty && !b->pending &&
		       !b->bird_err;
}

int bird_announcer_new(struct ev_loop *loop, const struct bird_options *o,
		       struct announcer **out)
{
	const char *dir = o->routes_dir ? o->routes_dir : BIRD_DEFAULT_ROUTES_DIR;
	struct sockaddr_un sun;
	struct bird_an *b;
	int err;

	*out = NULL;
	if (!o->socket_path || strlen(o->socket_path) >= sizeof(sun.sun_path)) {
		log_error("msg=\"BIRD control socket path missing or too long\"");
		return -ENAMETOOLONG;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base.ops = &bird_ops;
	b->loop = loop;
	b->fd = -1;
	b->stats.last_configure = -1;
	b->timeout_s = o->timeout_s > 0 ? o->timeout_s : BIRD_DEFAULT_TIMEOUT_S;
	b->graceful_s = o->graceful_s > 0 ? o->graceful_s : 0;
	b->backoff = BIRD_BACKOFF_MIN_S;
	b->socket_path = strdup(o->socket_path);
	if (asprintf(&b->path[0], "%s/" BIRD_ROUTES4_FILE, dir) < 0)
		b->path[0] = NULL;
	if (asprintf(&b->path[1], "%s/" BIRD_ROUTES6_FILE, dir) < 0)
		b->path[1] = NULL;
	if (!b->socket_path || !b->path[0] || !b->path[1] || !*dir) {
		bird_free(&b->base);
		return !*dir ? -EINVAL : -ENOMEM;
	}
	if (o->addr_iface) {
		unsigned ifindex = if_nametoindex(o->addr_iface);

		b->addrs = ifindex ? addrs_new(loop, (int)ifindex) : NULL;
		if (!b->addrs) {
			err = !ifindex ? -ENODEV : errno ? -errno : -ENOMEM;
			log_error("msg=\"cannot manage the VIP addresses\" iface=%s err=%d (%s)",
				  o->addr_iface, err, strerror(-err));
			bird_free(&b->base);
			return err;
		}
	}
	err = mkdir_p(dir);
	/* BIRD must always find the files to parse; an existing file keeps the routes of the
	 * previous run until the first sync rewrites it, so a restart does not flap them. */
	for (int i = 0; i < 2 && !err; i++) {
		char *text;
		size_t len;

		if (access(b->path[i], F_OK) == 0)
			continue;
		err = bird_routes_format(NULL, 0, i ? AF_INET6 : AF_INET, false, &text, &len);
		if (!err) {
			err = bird_file_replace(b->path[i], text, len);
			free(text);
		}
	}
	if (err) {
		log_error("msg=\"cannot create the BIRD route files\" dir=%s err=%d (%s)", dir, err,
			  strerror(-err));
		bird_free(&b->base);
		return err;
	}
	bird_reader_init(&b->rd);
	ev_io_init(&b->io, bird_on_io, -1, EV_READ);
	b->io.data = b;
	ev_timer_init(&b->timer, bird_on_timer, 0., 0.);
	b->timer.data = b;
	ev_timer_init(&b->kick, bird_on_kick, 0., 0.);
	b->kick.data = b;
	bird_connect(b);
	*out = &b->base;
	return 0;
}
