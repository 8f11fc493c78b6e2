/*
 * The BGP announcer on a libev loop, driven one command a line on stdin, for
 * tests/integration/bgp.py (which runs it in a namespace next to a real BIRD):
 *
 *   sync [ADDR...]            sync with exactly these VIPs        -> "synced rc=N"
 *   gen N4 N6                 sync with N4 VIPs from 10.240.0.0 and N6 from fd00:240::
 *                                                                  -> "synced rc=N"
 *   burst K ADDR...           K syncs in one loop pass, the i-th with the first i % n + 1
 *                             addresses, the last with all of them -> "synced rc=N"
 *   stats                     -> "stats connects=.. configures=.. ok=.. failed=.. writes=..
 *                                 connected=0|1 in_sync=0|1"
 *   wait SECONDS              until BIRD confirmed the current files -> "in_sync 0|1 ms=.."
 *   withdraw                  withdraw_all, as on SIGTERM          -> "withdrawn ms=.."
 *   quit (or end of input)
 *
 *   bird_driver --socket PATH --routes DIR [--timeout S] [--graceful S] [--lo] [--debug]
 * --lo puts the VIPs on lo through the address manager.
 */
#include <arpa/inet.h>
#include <ev.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "announce/bird.h"
#include "log.h"

#define MAX_VIPS 70000

struct driver {
	struct ev_loop *loop;
	struct announcer *an;
	ev_io in;
	ev_timer wait;
	ev_tstamp wait_start, wait_until;
	char line[1 << 20];
	size_t len;
	struct ip_addr *vips;
};

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static size_t parse_addrs(char *args, struct ip_addr *out)
{
	size_t n = 0;

	for (char *t = strtok(args, " "); t && n < MAX_VIPS; t = strtok(NULL, " "))
		if (ip_addr_parse(t, &out[n]) == 0)
			n++;
	return n;
}

static size_t gen(struct ip_addr *out, unsigned n4, unsigned n6)
{
	size_t n = 0;

	for (unsigned i = 0; i < n4 && n < MAX_VIPS; i++, n++) {
		out[n].family = AF_INET;
		out[n].v4.s_addr = htonl(0x0af00000u + i + 1); /* 10.240.0.1 ... */
	}
	for (unsigned i = 0; i < n6 && n < MAX_VIPS; i++, n++) {
		memset(&out[n], 0, sizeof(out[n]));
		out[n].family = AF_INET6;
		inet_pton(AF_INET6, "fd00:240::", &out[n].v6);
		out[n].v6.s6_addr[14] = (uint8_t)((i + 1) >> 8);
		out[n].v6.s6_addr[15] = (uint8_t)(i + 1);
	}
	return n;
}

static bool in_sync(struct driver *d)
{
	struct bird_stats st;

	bird_announcer_stats(d->an, &st);
	return st.in_sync;
}

static void run_lines(struct driver *d);

static void wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct driver *d = w->data;
	bool ok = in_sync(d);

	(void)revents;
	if (!ok && ev_now(loop) < d->wait_until)
		return;
	ev_timer_stop(loop, w);
	reply("in_sync %d ms=%.0f", ok, (ev_now(loop) - d->wait_start) * 1000);
	run_lines(d);
}

static void command(struct driver *d, char *cmd)
{
	char *args = strchr(cmd, ' ');
	size_t n;
	int err;

	if (args)
		*args++ = '\0';
	else
		args = cmd + strlen(cmd);
	if (!strcmp(cmd, "sync")) {
		n = parse_addrs(args, d->vips);
		reply("synced rc=%d", d->an->ops->sync(d->an, d->vips, n));
	} else if (!strcmp(cmd, "gen")) {
		unsigned n4 = 0, n6 = 0;

		sscanf(args, "%u %u", &n4, &n6);
		n = gen(d->vips, n4, n6);
		reply("synced rc=%d", d->an->ops->sync(d->an, d->vips, n));
	} else if (!strcmp(cmd, "burst")) {
		unsigned k = (unsigned)strtoul(args, &args, 10);
		int rc = 0;

		n = parse_addrs(args, d->vips);
		for (unsigned i = 0; n && i + 1 < k; i++) {
			int r = d->an->ops->sync(d->an, d->vips, i % n + 1);

			if (r)
				rc = r;
		}
		err = d->an->ops->sync(d->an, d->vips, n);
		reply("synced rc=%d", err ? err : rc);
	} else if (!strcmp(cmd, "stats")) {
		struct bird_stats st;

		bird_announcer_stats(d->an, &st);
		reply("stats connects=%lu configures=%lu ok=%lu failed=%lu writes=%lu connected=%d "
		      "in_sync=%d",
		      st.connects, st.configures, st.configure_ok, st.configure_failed,
		      st.file_writes, st.connected, st.in_sync);
	} else if (!strcmp(cmd, "wait")) {
		/* Commands after this one wait for its answer, so replies stay in order. */
		d->wait_start = ev_now(d->loop);
		d->wait_until = d->wait_start + atof(args);
		ev_timer_set(&d->wait, 0., 0.005);
		ev_timer_start(d->loop, &d->wait);
	} else if (!strcmp(cmd, "withdraw")) {
		ev_tstamp t0 = ev_time();

		d->an->ops->withdraw_all(d->an);
		reply("withdrawn ms=%.0f", (ev_time() - t0) * 1000);
	} else if (!strcmp(cmd, "quit")) {
		ev_break(d->loop, EVBREAK_ALL);
	} else {
		reply("error unknown command %s", cmd);
	}
}

/* Runs the complete lines held; stops early while a "wait" is under way. */
static void run_lines(struct driver *d)
{
	char *nl;

	while (!ev_is_active(&d->wait) && (nl = memchr(d->line, '\n', d->len)) != NULL) {
		size_t used = (size_t)(nl - d->line) + 1;

		*nl = '\0';
		command(d, d->line);
		memmove(d->line, d->line + used, d->len - used);
		d->len -= used;
	}
	if (ev_is_active(&d->wait))
		ev_io_stop(d->loop, &d->in);
	else
		ev_io_start(d->loop, &d->in);
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct driver *d = w->data;
	ssize_t r;

	(void)revents;
	r = read(0, d->line + d->len, sizeof(d->line) - 1 - d->len);
	if (r <= 0) {
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	d->len += (size_t)r;
	run_lines(d);
	if (d->len == sizeof(d->line) - 1)
		d->len = 0; /* a line too long for any command */
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' }, { "routes", required_argument, NULL, 'r' },
		{ "timeout", required_argument, NULL, 't' }, { "graceful", required_argument, NULL, 'g' },
		{ "lo", no_argument, NULL, 'l' },	     { "debug", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	static struct driver d;
	struct bird_options o = { 0 };
	int c, err;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's': o.socket_path = optarg; break;
		case 'r': o.routes_dir = optarg; break;
		case 't': o.timeout_s = atof(optarg); break;
		case 'g': o.graceful_s = atof(optarg); break;
		case 'l': o.addr_iface = "lo"; break;
		case 'd': log_set_level(LOG_LVL_DEBUG); break;
		default: return 2;
		}
	}
	d.vips = calloc(MAX_VIPS, sizeof(*d.vips));
	d.loop = ev_default_loop(EVFLAG_AUTO);
	if (!d.vips || !d.loop)
		return 1;
	err = bird_announcer_new(d.loop, &o, &d.an);
	if (err) {
		fprintf(stderr, "bird_driver: %s\n", strerror(-err));
		return 1;
	}
	ev_io_init(&d.in, stdin_cb, 0, EV_READ);
	d.in.data = &d;
	ev_io_start(d.loop, &d.in);
	ev_timer_init(&d.wait, wait_cb, 0., 0.005);
	d.wait.data = &d;
	reply("ready");
	ev_run(d.loop, 0);
	d.an->ops->free(d.an);
	free(d.vips);
	ev_loop_destroy(d.loop);
	return 0;
}
