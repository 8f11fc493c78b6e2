/*
 * BGP mode: BIRD's reply parser against transcripts recorded from BIRD 2.0.12 (Debian 12),
 * the route files, and the announcer against a scripted BIRD on a unix socket (coalescing,
 * rejected configurations, timeouts, restarts, withdraw on shutdown).
 */
#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "announce/bird.h"
#include "announce/bird_reply.h"

/* --- recorded transcripts (bird 2.0.12, its control socket, byte for byte) --------------- */

static const char greeting[] = "0001 BIRD 2.0.12 ready.\n";
static const char conf_ok[] = "0002-Reading configuration from node.conf\n0003 Reconfigured\n";
static const char conf_in_progress[] =
	"0002-Reading configuration from node.conf\n0004 Reconfiguration in progress\n";
static const char conf_bad_include[] =
	"0002-Reading configuration from node.conf\n8002 node.conf:4:10 Unable to open included "
	"file /tmp/xbgp-s/nonexist.conf: No such file or directory\n";
static const char show_status[] = "1000-BIRD 2.0.12\n"
				  "1011-Router ID is 10.99.0.1\n"
				  " Hostname is vm\n"
				  " Current server time is 2026-11-23 09:25:12.703\n"
				  " Last reboot on 2026-11-23 09:24:53.636\n"
				  " Last reconfiguration on 2026-11-23 09:25:06.858\n"
				  "0013 Daemon is up and running\n";
static const char show_protocols[] =
	"2002-Name       Proto      Table      State  Since         Info\n"
	"1002-device1    Device     ---        up     09:24:53.636  \n"
	" vipd4      Static     master4    up     09:24:53.636  \n"
	" vipd6      Static     master6    up     09:24:53.636  \n"
	" up4        BGP        ---        up     09:24:57.863  Established   \n"
	"0000 \n";
static const char parse_error[] = "9001 syntax error, unexpected CF_SYM_UNDEFINED\n";
/* "echo all", then "disable up4": the log echo arrives after the reply, as "+text". */
static const char with_async[] = "0000 \n0009-up4: disabled\n0000 \n+Disabling protocol up4\n";

struct rec {
	enum bird_line_kind kind;
	int code;
	char text[128];
};

/* Feeds text in chunks of step bytes (0: all at once); records every line. */
static size_t parse_all(const char *text, size_t step, struct rec *out, size_t max, int *errs)
{
	struct bird_reader r;
	size_t len = strlen(text), off = 0, n = 0;

	bird_reader_init(&r);
	*errs = 0;
	while (off < len) {
		size_t chunk = step && len - off > step ? step : len - off;
		struct bird_line l;
		int rc;

		off += bird_reader_feed(&r, text + off, chunk);
		while ((rc = bird_reader_next(&r, &l)) != 0) {
			if (rc < 0) {
				(*errs)++;
				continue;
			}
			assert_true(n < max);
			memset(&out[n], 0, sizeof(out[n]));
			out[n].kind = l.kind;
			out[n].code = l.code;
			assert_true(l.len < sizeof(out[n].text));
			memcpy(out[n].text, l.text, l.len);
			out[n].text[l.len] = '\0';
			n++;
		}
	}
	return n;
}

static void test_greeting_and_configure(void **state)
{
	struct rec l[8];
	int errs;

	(void)state;
	assert_int_equal(parse_all(greeting, 0, l, 8, &errs), 1);
	assert_int_equal(errs, 0);
	assert_int_equal(l[0].kind, BIRD_LINE_LAST);
	assert_int_equal(l[0].code, 1);
	assert_string_equal(l[0].text, "BIRD 2.0.12 ready.");

	assert_int_equal(parse_all(conf_ok, 0, l, 8, &errs), 2);
	assert_int_equal(l[0].kind, BIRD_LINE_MORE);
	assert_int_equal(l[0].code, 2);
	assert_string_equal(l[0].text, "Reading configuration from node.conf");
	assert_int_equal(l[1].kind, BIRD_LINE_LAST);
	assert_int_equal(l[1].code, 3);

	assert_int_equal(parse_all(conf_in_progress, 0, l, 8, &errs), 2);
	assert_int_equal(l[1].code, 4);
	assert_int_equal(l[1].kind, BIRD_LINE_LAST);
}

static void test_errors(void **state)
{
	struct rec l[8];
	int errs;

	(void)state;
	assert_int_equal(parse_all(conf_bad_include, 0, l, 8, &errs), 2);
	assert_int_equal(errs, 0);
	assert_int_equal(l[1].kind, BIRD_LINE_LAST);
	assert_int_equal(l[1].code, 8002);
	assert_string_equal(l[1].text, "node.conf:4:10 Unable to open included file "
				       "/tmp/xbgp-s/nonexist.conf: No such file or directory");
	assert_int_equal(parse_all(parse_error, 0, l, 8, &errs), 1);
	assert_int_equal(l[0].code, 9001);
	assert_int_equal(l[0].kind, BIRD_LINE_LAST);
}

static void test_space_continuations(void **state)
{
	struct rec l[16];
	int errs;

	(void)state;
	assert_int_equal(parse_all(show_status, 0, l, 16, &errs), 7);
	assert_int_equal(errs, 0);
	assert_int_equal(l[0].code, 1000);
	assert_int_equal(l[1].code, 1011);
	for (int i = 2; i < 6; i++) {
		assert_int_equal(l[i].kind, BIRD_LINE_MORE);
		assert_int_equal(l[i].code, 1011); /* inherits the numbered line before */
	}
	assert_string_equal(l[2].text, "Hostname is vm");
	assert_int_equal(l[6].kind, BIRD_LINE_LAST);
	assert_int_equal(l[6].code, 13);

	assert_int_equal(parse_all(show_protocols, 0, l, 16, &errs), 6);
	assert_int_equal(l[0].code, 2002);
	assert_int_equal(l[2].code, 1002);
	assert_string_equal(l[2].text, "vipd4      Static     master4    up     09:24:53.636  ");
	assert_int_equal(l[5].kind, BIRD_LINE_LAST);
	assert_int_equal(l[5].code, 0);
	assert_string_equal(l[5].text, "");
}

static void test_async(void **state)
{
	struct rec l[8];
	int errs;

	(void)state;
	assert_int_equal(parse_all(with_async, 0, l, 8, &errs), 4);
	assert_int_equal(errs, 0);
	assert_int_equal(l[2].kind, BIRD_LINE_LAST);
	assert_int_equal(l[3].kind, BIRD_LINE_ASYNC);
	assert_int_equal(l[3].code, -1);
	assert_string_equal(l[3].text, "Disabling protocol up4");

	/* An async line inside a reply neither ends it nor breaks its continuations. */
	assert_int_equal(parse_all("1011-Router ID is 1.2.3.4\n+log line\n more\n0013 up\n", 0, l, 8,
				   &errs),
			 4);
	assert_int_equal(errs, 0);
	assert_int_equal(l[1].kind, BIRD_LINE_ASYNC);
	assert_int_equal(l[2].code, 1011);
	assert_int_equal(l[3].kind, BIRD_LINE_LAST);
}

/* Every split of the transcripts gives the same lines as reading them whole. */
static void test_partial_reads(void **state)
{
	const char *all[] = { greeting, conf_ok, conf_bad_include, show_status, show_protocols,
			      with_async };

	(void)state;
	for (size_t t = 0; t < sizeof(all) / sizeof(all[0]); t++) {
		struct rec whole[16], parts[16];
		int errs;
		size_t n = parse_all(all[t], 0, whole, 16, &errs);

		for (size_t step = 1; step <= 7; step++) {
			assert_int_equal(parse_all(all[t], step, parts, 16, &errs), n);
			assert_int_equal(errs, 0);
			assert_memory_equal(whole, parts, n * sizeof(whole[0]));
		}
	}
}

static void test_malformed(void **state)
{
	static const char *bad[] = {
		" continuation with no numbered line before\n",
		"12a4 digits only\n",
		"0001\n",
		"00013 five digits\n",
		"0001:colon\n",
		"\n",
	};
	struct rec l[4];
	int errs;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[128];

		/* The bad line is reported and skipped; the reader carries on. */
		snprintf(buf, sizeof(buf), "%s%s", bad[i], greeting);
		assert_int_equal(parse_all(buf, 0, l, 4, &errs), 1);
		assert_int_equal(errs, 1);
		assert_int_equal(l[0].code, 1);
	}
	/* A finished reply ends the continuation context. */
	assert_int_equal(parse_all("0000 done\n next\n", 0, l, 4, &errs), 1);
	assert_int_equal(errs, 1);
	/* An incomplete line is no line yet. */
	assert_int_equal(parse_all("0001 BIRD", 0, l, 4, &errs), 0);
	assert_int_equal(errs, 0);
}

static void test_long_line(void **state)
{
	struct bird_reader r;
	struct bird_line l;
	char chunk[1000];
	size_t room;
	int got_size_err = 0;

	(void)state;
	bird_reader_init(&r);
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "1000-", 5);
	/* 20 kB without a newline: dropped once the buffer is full, never stuck. */
	for (size_t fed = 0; fed < 20 * sizeof(chunk);) {
		int rc;

		fed += bird_reader_feed(&r, chunk, sizeof(chunk));
		while ((rc = bird_reader_next(&r, &l)) != 0) {
			assert_int_equal(rc, -EMSGSIZE);
			got_size_err++;
		}
		bird_reader_space(&r, &room);
		assert_true(room > 0);
	}
	assert_int_equal(got_size_err, 1);
	/* The rest of that line is skipped; the next line parses. */
	bird_reader_feed(&r, "tail\n0003 Reconfigured\n", 23);
	assert_int_equal(bird_reader_next(&r, &l), 1);
	assert_int_equal(l.code, 3);
	assert_int_equal(bird_reader_next(&r, &l), 0);
}

/* Many lines, far more than the buffer, through reads of odd sizes. */
static void test_big_reply(void **state)
{
	struct bird_reader r;
	struct bird_line l;
	char *text = malloc(2000 * 64);
	size_t len = 0, off = 0, lines = 0, step = 1;

	(void)state;
	assert_non_null(text);
	for (int i = 0; i < 2000; i++)
		len += (size_t)sprintf(text + len, "%s10.%d.%d.0/24 unreachable [static1]\n",
				       i == 0 ? "1007-" : " ", i / 256, i % 256);
	len += (size_t)sprintf(text + len, "0000 \n");
	bird_reader_init(&r);
	while (off < len) {
		size_t room;
		char *p = bird_reader_space(&r, &room);
		size_t n = step < room ? step : room;
		int rc;

		if (n > len - off)
			n = len - off;
		memcpy(p, text + off, n);
		bird_reader_commit(&r, n);
		off += n;
		step = step * 7 % 5003 + 1;
		while ((rc = bird_reader_next(&r, &l)) == 1) {
			lines++;
			assert_int_equal(l.code, lines <= 2000 ? 1007 : 0);
		}
		assert_int_equal(rc, 0);
	}
	assert_int_equal(lines, 2001);
	free(text);
}

/* --- route files ------------------------------------------------------------------------- */

static struct ip_addr A(const char *s)
{
	struct ip_addr a;

	assert_int_equal(ip_addr_parse(s, &a), 0);
	return a;
}

static void test_format(void **state)
{
	struct ip_addr v[] = { A("10.0.0.1"), A("fd00::1"), A("192.168.1.200"), A("2001:db8::5") };
	char *t;
	size_t len;

	(void)state;
	assert_int_equal(bird_routes_format(v, 4, AF_INET, false, &t, &len), 0);
	assert_int_equal(len, strlen(t));
	assert_non_null(strstr(t, "\nroute 10.0.0.1/32 blackhole;\nroute 192.168.1.200/32 blackhole;\n"));
	assert_null(strstr(t, "fd00"));
	assert_true(t[0] == '#');
	free(t);
	assert_int_equal(bird_routes_format(v, 4, AF_INET6, true, &t, &len), 0);
	assert_non_null(strstr(t, "\nroute fd00::1/128 blackhole { bgp_community.add((65535, 0)); };\n"
				  "route 2001:db8::5/128 blackhole { bgp_community.add((65535, 0)); };\n"));
	free(t);
	/* No VIPs: a comment only, which BIRD parses as nothing. */
	assert_int_equal(bird_routes_format(NULL, 0, AF_INET, false, &t, &len), 0);
	assert_null(strstr(t, "route"));
	assert_true(len > 0 && t[len - 1] == '\n');
	free(t);
}

static char *tmp_dir(void)
{
	char *d = strdup("/tmp/vipd-test-bird-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (!f)
		return NULL;
	buf = calloc(1, 1 << 20);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_file_replace(void **state)
{
	char *d = tmp_dir(), path[256], tmp[300], *got;
	struct stat st;
	mode_t old = umask(077);

	(void)state;
	snprintf(path, sizeof(path), "%s/r.conf", d);
	assert_int_equal(bird_file_replace(path, "one\n", 4), 0);
	assert_int_equal(bird_file_replace(path, "two\n", 4), 0);
	umask(old);
	got = slurp(path);
	assert_string_equal(got, "two\n");
	free(got);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644); /* readable by BIRD's user whatever the umask */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(access(tmp, F_OK), -1);
	snprintf(path, sizeof(path), "%s/missing/r.conf", d);
	assert_int_equal(bird_file_replace(path, "x", 1), -ENOENT);
	rm_rf(d);
	free(d);
}

/* --- the announcer against a scripted BIRD ----------------------------------------------- */

struct fake {
	struct ev_loop *loop;
	char path[108];
	int lfd, cfd;
	ev_io lio, cio;
	const char *greet;  /* sent on accept */
	const char *answer; /* to each configure; NULL: never answer */
	bool hold;	    /* queue answers until fake_release */
	int held;
	int configures; /* configure commands received */
	int accepts;
	char in[512];
	size_t inlen;
};

static void fake_send(struct fake *f, const char *s)
{
	assert_int_equal(write(f->cfd, s, strlen(s)), (ssize_t)strlen(s));
}

static void fake_close_client(struct fake *f)
{
	if (f->cfd < 0)
		return;
	ev_io_stop(f->loop, &f->cio);
	close(f->cfd);
	f->cfd = -1;
}

static void fake_on_client(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;
	ssize_t r;
	char *nl;

	(void)loop;
	(void)revents;
	r = read(f->cfd, f->in + f->inlen, sizeof(f->in) - f->inlen);
	if (r <= 0) {
		fake_close_client(f);
		return;
	}
	f->inlen += (size_t)r;
	while ((nl = memchr(f->in, '\n', f->inlen)) != NULL) {
		size_t used = (size_t)(nl - f->in) + 1;

		if (used == sizeof("configure") && !memcmp(f->in, "configure", used - 1)) {
			f->configures++;
			if (f->hold)
				f->held++;
			else if (f->answer)
				fake_send(f, f->answer);
		}
		memmove(f->in, f->in + used, f->inlen - used);
		f->inlen -= used;
	}
}

static void fake_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;
	int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);

	(void)revents;
	if (fd < 0)
		return;
	fake_close_client(f); /* one client at a time, like the announcer */
	f->cfd = fd;
	f->inlen = 0;
	f->accepts++;
	ev_io_init(&f->cio, fake_on_client, fd, EV_READ);
	f->cio.data = f;
	ev_io_start(loop, &f->cio);
	if (f->greet)
		fake_send(f, f->greet);
}

static void fake_listen(struct fake *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	unlink(f->path);
	strcpy(sun.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	ev_io_init(&f->lio, fake_on_accept, f->lfd, EV_READ);
	f->lio.data = f;
	ev_io_start(f->loop, &f->lio);
}

/* BIRD stops: its socket goes and every client is cut off. */
static void fake_stop(struct fake *f)
{
	fake_close_client(f);
	ev_io_stop(f->loop, &f->lio);
	close(f->lfd);
	f->lfd = -1;
	unlink(f->path);
}

static void fake_release(struct fake *f)
{
	for (; f->held > 0; f->held--)
		fake_send(f, f->answer);
	f->hold = false;
}

struct env {
	char *dir;
	struct ev_loop *loop;
	struct fake fake;
	struct announcer *an;
	char r4[256], r6[256];
};

static int env_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	e->dir = tmp_dir();
	e->loop = ev_loop_new(EVFLAG_AUTO);
	e->fake.loop = e->loop;
	e->fake.cfd = -1;
	e->fake.lfd = -1;
	e->fake.greet = greeting;
	e->fake.answer = conf_ok;
	snprintf(e->fake.path, sizeof(e->fake.path), "%s/bird.ctl", e->dir);
	snprintf(e->r4, sizeof(e->r4), "%s/routes/" BIRD_ROUTES4_FILE, e->dir);
	snprintf(e->r6, sizeof(e->r6), "%s/routes/" BIRD_ROUTES6_FILE, e->dir);
	*state = e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;

	if (e->an)
		e->an->ops->free(e->an);
	if (e->fake.lfd >= 0)
		fake_stop(&e->fake);
	ev_loop_destroy(e->loop);
	rm_rf(e->dir);
	free(e->dir);
	free(e);
	return 0;
}

static void env_start(struct env *e, double timeout_s, double graceful_s)
{
	char routes[256];
	struct bird_options o = { .socket_path = e->fake.path,
				  .routes_dir = routes,
				  .timeout_s = timeout_s,
				  .graceful_s = graceful_s };

	snprintf(routes, sizeof(routes), "%s/routes", e->dir);
	assert_int_equal(bird_announcer_new(e->loop, &o, &e->an), 0);
}

static struct bird_stats stats(struct env *e)
{
	struct bird_stats st;

	bird_announcer_stats(e->an, &st);
	return st;
}

/* Runs the loop until cond holds or seconds pass; returns cond. */
#define RUN_UNTIL(e, seconds, cond)                                              \
	({                                                                       \
		ev_tstamp _end = ev_time() + (seconds);                          \
		while (!(cond) && ev_time() < _end) {                            \
			ev_run((e)->loop, EVRUN_NOWAIT);                         \
			usleep(1000);                                            \
		}                                                                \
		(cond);                                                          \
	})

static void test_sync_configures(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1"), A("fd00::1") };
	char *t;

	fake_listen(&e->fake);
	env_start(e, 5, 0);
	/* The files exist before any sync, so BIRD always has something to parse. */
	assert_int_equal(access(e->r4, R_OK), 0);
	assert_int_equal(access(e->r6, R_OK), 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).connected));
	assert_int_equal(e->fake.configures, 0); /* nothing to say before the first sync */
	assert_int_equal(e->an->ops->sync(e->an, v, 2), 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).in_sync));
	assert_int_equal(e->fake.configures, 1);
	t = slurp(e->r4);
	assert_non_null(strstr(t, "route 10.0.0.1/32 blackhole;"));
	free(t);
	t = slurp(e->r6);
	assert_non_null(strstr(t, "route fd00::1/128 blackhole;"));
	free(t);
	/* The same set again (the periodic pass): no write, no configure. */
	assert_int_equal(e->an->ops->sync(e->an, v, 2), 0);
	RUN_UNTIL(e, 0.1, false);
	assert_int_equal(e->fake.configures, 1);
	assert_int_equal(stats(e).file_writes, 1);
	/* 0004 counts as success too. */
	e->fake.answer = conf_in_progress;
	assert_int_equal(e->an->ops->sync(e->an, v, 1), 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).configure_ok == 2 && stats(e).in_sync));
	t = slurp(e->r6);
	assert_null(strstr(t, "route"));
	free(t);
}

static void test_coalesce(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1"), A("10.0.0.2"), A("10.0.0.3"), A("10.0.0.4") };
	char *t;

	fake_listen(&e->fake);
	env_start(e, 5, 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).connected));
	/* Syncs in one loop pass: one configure. */
	for (size_t i = 1; i <= 4; i++)
		e->an->ops->sync(e->an, v, i);
	assert_true(RUN_UNTIL(e, 2, stats(e).in_sync));
	assert_int_equal(e->fake.configures, 1);
	assert_int_equal(stats(e).file_writes, 1);
	/* Syncs while a configure is in flight: one more write and configure after it. */
	e->fake.hold = true;
	e->an->ops->sync(e->an, v, 1);
	assert_true(RUN_UNTIL(e, 2, e->fake.configures == 2));
	for (size_t i = 2; i <= 4; i++) {
		e->an->ops->sync(e->an, v, i);
		RUN_UNTIL(e, 0.02, false);
	}
	e->an->ops->sync(e->an, v, 3);
	RUN_UNTIL(e, 0.05, false);
	assert_int_equal(e->fake.configures, 2);
	fake_release(&e->fake);
	assert_true(RUN_UNTIL(e, 2, stats(e).in_sync));
	assert_int_equal(e->fake.configures, 3);
	assert_int_equal(stats(e).file_writes, 3);
	t = slurp(e->r4);
	assert_non_null(strstr(t, "10.0.0.3/32"));
	assert_null(strstr(t, "10.0.0.4/32"));
	free(t);
}

static void test_rejected(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1") };

	fake_listen(&e->fake);
	e->fake.answer = conf_bad_include;
	env_start(e, 5, 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).connected));
	assert_int_equal(e->an->ops->sync(e->an, v, 1), 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).configure_failed == 1));
	assert_false(stats(e).in_sync);
	assert_true(stats(e).connected); /* a rejection is an answer, not a broken session */
	/* The next pass reports it and asks again, without rewriting the files. */
	assert_int_equal(e->an->ops->sync(e->an, v, 1), -EIO);
	e->fake.answer = conf_ok;
	assert_true(RUN_UNTIL(e, 2, stats(e).in_sync));
	assert_int_equal(e->fake.configures, 2);
	assert_int_equal(stats(e).file_writes, 1);
	assert_int_equal(e->an->ops->sync(e->an, v, 1), 0);
}

static void test_timeout_and_restart(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1") };
	int before;

	fake_listen(&e->fake);
	e->fake.answer = NULL; /* a BIRD that never answers */
	env_start(e, 0.2, 0);
	assert_true(RUN_UNTIL(e, 2, stats(e).connected));
	e->an->ops->sync(e->an, v, 1);
	/* Timed out, dropped, reconnected, asked again: not hung on the first. */
	assert_true(RUN_UNTIL(e, 3, e->fake.configures >= 2));
	assert_true(e->fake.accepts >= 2);
	assert_true(stats(e).configure_failed >= 1);
	e->fake.answer = conf_ok;
	assert_true(RUN_UNTIL(e, 3, stats(e).in_sync));

	/* BIRD restarts: the announcer comes back by itself and pushes the routes again. */
	before = e->fake.configures;

	fake_stop(&e->fake);
	assert_true(RUN_UNTIL(e, 2, !stats(e).connected));
	assert_int_equal(e->an->ops->sync(e->an, v, 1), -ENOTCONN);
	RUN_UNTIL(e, 0.3, false); /* a few failed reconnects */
	fake_listen(&e->fake);
	assert_true(RUN_UNTIL(e, 6, stats(e).in_sync));
	assert_int_equal(e->fake.configures, before + 1);
}

static void test_bird_down_at_start(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.7") };
	char *t;

	env_start(e, 1, 0); /* no BIRD yet: vipd starts anyway */
	assert_int_equal(e->an->ops->sync(e->an, v, 1), -ENOTCONN);
	assert_true(RUN_UNTIL(e, 1, stats(e).file_writes == 1));
	t = slurp(e->r4); /* the files hold the routes for when BIRD starts */
	assert_non_null(strstr(t, "10.0.0.7/32"));
	free(t);
	fake_listen(&e->fake);
	assert_true(RUN_UNTIL(e, 6, stats(e).in_sync));
	assert_int_equal(e->fake.configures, 1);
}

static void test_bad_greeting(void **state)
{
	struct env *e = *state;

	fake_listen(&e->fake);
	e->fake.greet = "hello\n";
	env_start(e, 1, 0);
	RUN_UNTIL(e, 0.5, false);
	assert_false(stats(e).connected);
	assert_true(e->fake.accepts >= 2); /* dropped and retried */
	e->fake.greet = greeting;
	assert_true(RUN_UNTIL(e, 6, stats(e).connected));
}

/* A blocking BIRD in a thread: withdraw_all runs with the loop stopped. */
struct thread_bird {
	int lfd;
	int configures;
	char files[2][4096]; /* the route files as BIRD would read them at each configure */
	const char *r4;
};

static void *thread_bird_main(void *arg)
{
	struct thread_bird *tb = arg;

	for (int i = 0; i < 2; i++) {
		int fd = accept(tb->lfd, NULL, NULL);
		char buf[64];
		char *t;

		if (fd < 0)
			break;
		assert_int_equal(write(fd, greeting, strlen(greeting)), (ssize_t)strlen(greeting));
		if (read(fd, buf, sizeof(buf)) == (ssize_t)sizeof("configure") &&
		    !memcmp(buf, "configure\n", 10)) {
			t = slurp(tb->r4);
			snprintf(tb->files[tb->configures++], sizeof(tb->files[0]), "%s", t);
			free(t);
			assert_int_equal(write(fd, conf_ok, strlen(conf_ok)), (ssize_t)strlen(conf_ok));
		}
		close(fd);
	}
	return NULL;
}

static void test_withdraw_all_graceful(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1") };
	struct thread_bird tb = { .r4 = e->r4 };
	pthread_t th;
	ev_tstamp t0;
	char *t;

	fake_listen(&e->fake);
	env_start(e, 2, 0.3);
	assert_true(RUN_UNTIL(e, 2, stats(e).connected));
	e->an->ops->sync(e->an, v, 1);
	assert_true(RUN_UNTIL(e, 2, stats(e).in_sync));
	/* Hand the socket to the thread: the loop will not run during withdraw_all. */
	ev_io_stop(e->loop, &e->fake.lio);
	fake_close_client(&e->fake);
	tb.lfd = e->fake.lfd;
	assert_int_equal(fcntl(tb.lfd, F_SETFL, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, thread_bird_main, &tb), 0);
	t0 = ev_time();
	e->an->ops->withdraw_all(e->an);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_true(ev_time() - t0 >= 0.3); /* the graceful period was waited out */
	assert_int_equal(tb.configures, 2);
	assert_non_null(strstr(tb.files[0], "10.0.0.1/32 blackhole { bgp_community.add((65535, 0)); }"));
	assert_null(strstr(tb.files[1], "route"));
	t = slurp(e->r4);
	assert_null(strstr(t, "route"));
	free(t);
}

static void test_withdraw_all_bird_gone(void **state)
{
	struct env *e = *state;
	struct ip_addr v[] = { A("10.0.0.1") };
	ev_tstamp t0;
	char *t;

	env_start(e, 0.5, 5);
	e->an->ops->sync(e->an, v, 1);
	t0 = ev_time();
	e->an->ops->withdraw_all(e->an);
	/* No BIRD: no graceful wait, no hang; the files are empty for BIRD's next start. */
	assert_true(ev_time() - t0 < 1);
	t = slurp(e->r4);
	assert_null(strstr(t, "route"));
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_greeting_and_configure),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_space_continuations),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_partial_reads),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_big_reply),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_file_replace),
		cmocka_unit_test_setup_teardown(test_sync_configures, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_coalesce, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_rejected, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_restart, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_bird_down_at_start, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_bad_greeting, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_withdraw_all_graceful, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_withdraw_all_bird_gone, env_setup, env_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
