#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lb_json.h"
#include "log.h"
#include "state.h"

static char root[64];  /* mkdtemp'd per test */
static char dir[128];  /* the state dir inside it, made by state_open */
static char errbuf[4096];

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *f)
{
	(void)sb, (void)type, (void)f;
	return remove(p);
}

static int setup(void **st)
{
	(void)st;
	strcpy(root, "/tmp/vipd-test-state-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	snprintf(dir, sizeof(dir), "%s/state", root);
	return 0;
}

static int teardown(void **st)
{
	(void)st;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static struct lb *make_lb(unsigned i, unsigned n_backends)
{
	struct lb *lb = lb_new();
	char name[64], ip[32];
	struct backend b;

	snprintf(name, sizeof(name), "lb-%u", i);
	lb_set_name(lb, name);
	snprintf(ip, sizeof(ip), "10.%u.%u.1", (i >> 8) & 0xff, i & 0xff);
	ip_addr_parse(ip, &lb->vip);
	lb->port = (uint16_t)(1 + i % 60000);
	lb->protocol = i % 2 ? LB_PROTO_UDP : LB_PROTO_TCP;
	lb->origin = i % 3 ? LB_ORIGIN_API : LB_ORIGIN_CONFIG;
	lb->hc.http_path = i % 4 ? NULL : strdup("/health");
	for (unsigned k = 0; k < n_backends; k++) {
		backend_init(&b);
		snprintf(ip, sizeof(ip), "192.168.%u.%u", k, i % 250 + 1);
		ip_addr_parse(ip, &b.ip);
		b.port = (uint16_t)(8000 + k);
		b.weight = k + 1;
		b.drained = k == 1;
		lb_add_backend(lb, &b);
	}
	return lb;
}

static bool lb_same(const struct lb *a, const struct lb *b)
{
	cJSON *x = lb_to_json(a, LB_VIEW_STATE), *y = lb_to_json(b, LB_VIEW_STATE);
	bool same = x && y && cJSON_Compare(x, y, true);

	cJSON_Delete(x);
	cJSON_Delete(y);
	return same;
}

static void assert_models_equal(const struct model *a, const struct model *b)
{
	assert_int_equal(model_count(a), model_count(b));
	for (size_t i = 0; i < model_count(a); i++)
		if (!lb_same(model_at(a, i), model_at(b, i)))
			fail_msg("load balancer %zu differs", i);
}

static char *read_file(const char *name, size_t *len)
{
	char p[256], *buf;
	struct stat sb;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDONLY);
	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	buf[sb.st_size] = '\0';
	close(fd);
	if (len)
		*len = (size_t)sb.st_size;
	return buf;
}

static void write_file(const char *name, const char *text, size_t len, int flags)
{
	char p[256];
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | flags, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void write_str(const char *name, const char *text, int flags)
{
	write_file(name, text, strlen(text), flags);
}

static off_t file_size(const char *name)
{
	char p[256];
	struct stat sb;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &sb) ? -1 : sb.st_size;
}

/* The one file in dir whose name starts with prefix, or "" when there is none. */
static const char *find_file(const char *prefix)
{
	static char found[256];
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	found[0] = '\0';
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			snprintf(found, sizeof(found), "%s", de->d_name);
			n++;
		}
	}
	closedir(d);
	assert_true(n <= 1);
	return found;
}

/* Captures what the logger writes to stderr while the call runs. */
static int log_fd = -1, saved_stderr = -1;

static void capture_start(void)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/log", root);
	fflush(stderr);
	log_fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	saved_stderr = dup(STDERR_FILENO);
	dup2(log_fd, STDERR_FILENO);
}

static char *capture_end(void)
{
	char *buf = calloc(1, 65536);

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	assert_true(pread(log_fd, buf, 65535, 0) >= 0);
	close(log_fd);
	return buf;
}

static struct state *open_ok(void)
{
	struct state *s = NULL;

	assert_int_equal(state_open(dir, &s), 0);
	assert_non_null(s);
	return s;
}

static void test_open_creates_private_dir(void **st)
{
	struct state *s;
	struct stat sb;

	(void)st;
	s = open_ok();
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0700);
	state_close(s);
	/* an existing dir is fine */
	s = open_ok();
	state_close(s);
}

static void test_open_errors(void **st)
{
	struct state *s = (struct state *)1;
	char p[256];
	char *log;

	(void)st;
	snprintf(p, sizeof(p), "%s/missing/state", root);
	capture_start();
	assert_int_equal(state_open(p, &s), -ENOENT);
	log = capture_end();
	assert_null(s);
	assert_non_null(strstr(log, "cannot create the state directory"));
	free(log);

	snprintf(p, sizeof(p), "%s/file", root);
	close(open(p, O_WRONLY | O_CREAT, 0600));
	capture_start();
	assert_int_equal(state_open(p, &s), -ENOTDIR);
	free(capture_end());
}

static void test_lock_conflict(void **st)
{
	struct state *a = open_ok(), *b = (struct state *)1;
	char *log;

	(void)st;
	capture_start();
	assert_int_equal(state_open(dir, &b), -EBUSY);
	log = capture_end();
	assert_null(b);
	assert_non_null(strstr(log, "level=error"));
	assert_non_null(strstr(log, "in use by another vipd"));
	assert_non_null(strstr(log, dir));
	free(log);

	/* another process, as a second vipd would be */
	{
		pid_t pid = fork();
		int status;

		assert_true(pid >= 0);
		if (pid == 0) {
			struct state *c = NULL;
			int fd = open("/dev/null", O_WRONLY);

			int r;

			dup2(fd, STDERR_FILENO);
			r = state_open(dir, &c);
			/* Closing the inherited copy keeps the parent's lock (flock follows the
			 * open file description) and leaves nothing for a leak checker. */
			state_close(a);
			_exit(r == -EBUSY ? 0 : 1);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	state_close(a);
	b = open_ok();
	state_close(b);
}

static void test_put_del_reload(void **st)
{
	struct model *m = model_new(), *back = model_new();
	struct state *s = open_ok();
	struct lb *a = make_lb(1, 2), *b = make_lb(2, 0), *c = make_lb(3, 1);
	char *journal;
	size_t lines = 0;

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(model_count(m), 0);
	/* a fresh load leaves a clean snapshot and an empty journal */
	assert_true(file_size("state.json") > 0);
	assert_int_equal(file_size("journal.jsonl"), 0);

	assert_int_equal(state_put_lb(s, a), 0);
	assert_int_equal(state_put_lb(s, b), 0);
	assert_int_equal(state_put_lb(s, c), 0);
	a->port = 9999;
	a->backends[0].drained = true;
	assert_int_equal(state_put_lb(s, a), 0);
	assert_int_equal(state_del_lb(s, b->uuid), 0);

	journal = read_file("journal.jsonl", NULL);
	for (char *p = journal; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 5);
	assert_memory_equal(journal, "{\"op\":\"put\",\"lb\":{\"uuid\":\"", 26);
	assert_non_null(strstr(journal, "\"origin\":"));
	assert_null(strstr(journal, "\"status\":"));
	assert_null(strstr(journal, "\"health\":"));
	{
		char want[128];

		snprintf(want, sizeof(want), "\n{\"op\":\"del\",\"uuid\":\"%s\"}\n", b->uuid);
		assert_non_null(strstr(journal, want));
	}
	free(journal);
	state_close(s);

	s = open_ok();
	assert_int_equal(state_load(s, back), 0);
	assert_int_equal(model_count(back), 2);
	assert_true(lb_same(model_at(back, 0), a));
	assert_true(lb_same(model_at(back, 1), c));
	assert_null(model_find(back, b->uuid));
	assert_int_equal(model_at(back, 0)->port, 9999);
	/* folded into the snapshot */
	assert_int_equal(file_size("journal.jsonl"), 0);
	state_close(s);

	lb_free(a);
	lb_free(b);
	lb_free(c);
	model_free(m);
	model_free(back);
}

static void test_snapshot_format(void **st)
{
	struct model *m = model_new();
	struct state *s = open_ok();
	char *text;
	cJSON *j;

	(void)st;
	model_add(m, make_lb(1, 1));
	model_add(m, make_lb(2, 0));
	assert_int_equal(state_compact(s, m), 0);
	text = read_file("state.json", NULL);
	j = cJSON_Parse(text);
	assert_non_null(j);
	assert_int_equal(cJSON_GetObjectItem(j, "version")->valueint, 1);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "loadbalancers")), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j,
		"loadbalancers"), 0), "name")->valuestring, "lb-1");
	cJSON_Delete(j);
	/* one load balancer per line */
	{
		static const char head[] = "{\"version\":1,\"loadbalancers\":[\n{\"uuid\":";

		assert_memory_equal(text, head, strlen(head));
	}
	assert_string_equal(text + strlen(text) - 4, "\n]}\n");
	free(text);
	/* no temp file left behind */
	assert_string_equal(find_file("state.json.tmp"), "");
	{
		struct stat sb;
		char p[256];

		snprintf(p, sizeof(p), "%s/state.json", dir);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}
	state_close(s);
	model_free(m);
}

static void test_torn_last_line(void **st)
{
	struct model *m = model_new(), *back = model_new();
	struct state *s = open_ok();
	struct lb *a = make_lb(1, 1), *b = make_lb(2, 1);
	size_t len;
	char *journal, *log;

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(state_put_lb(s, a), 0);
	assert_int_equal(state_put_lb(s, b), 0);
	state_close(s);
	/* the crash cut the last line short: keep only part of it */
	journal = read_file("journal.jsonl", &len);
	write_file("journal.jsonl", journal, len - 40, O_TRUNC);
	free(journal);

	s = open_ok();
	capture_start();
	assert_int_equal(state_load(s, back), 0);
	log = capture_end();
	assert_non_null(strstr(log, "level=warn"));
	assert_non_null(strstr(log, "torn last line"));
	assert_null(strstr(log, "level=error"));
	free(log);
	assert_int_equal(model_count(back), 1);
	assert_true(lb_same(model_at(back, 0), a));
	assert_string_equal(find_file("journal.jsonl.corrupt"), "");
	assert_int_equal(file_size("journal.jsonl"), 0);
	state_close(s);
	lb_free(a);
	lb_free(b);
	model_free(m);
	model_free(back);
}

/* A real kill -9 in the middle of work: everything acknowledged comes back. */
static void test_kill9(void **st)
{
	struct model *back = model_new();
	pid_t pid;
	int status;
	struct state *s;

	(void)st;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct model *m = model_new();
		struct state *c = NULL;

		if (state_open(dir, &c) || state_load(c, m))
			_exit(1);
		for (unsigned i = 0; i < 300; i++) {
			struct lb *lb = make_lb(i, 2);

			if (state_put_lb(c, lb) || model_add(m, lb))
				_exit(1);
			if (state_maybe_compact(c, m))
				_exit(1);
			if (i % 7 == 0 && state_del_lb(c, lb->uuid) == 0)
				lb_free(model_take(m, lb->uuid));
		}
		raise(SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	s = open_ok();
	assert_int_equal(state_load(s, back), 0);
	assert_int_equal(model_count(back), 300 - 43);
	for (unsigned i = 0, k = 0; i < 300; i++) {
		struct lb *want = make_lb(i, 2);

		if (i % 7) {
			struct lb *got = model_at(back, k++);

			assert_string_equal(got->name, want->name);
			assert_int_equal(got->n_backends, 2);
			assert_true(ip_addr_equal(&got->vip, &want->vip));
		}
		lb_free(want);
	}
	state_close(s);
	model_free(back);
}

static void test_corrupt_snapshot(void **st)
{
	struct model *m = model_new();
	struct state *s = open_ok();
	struct lb *a = make_lb(1, 1), *b = make_lb(2, 0);
	char *log, *moved, want[512], p_snap[256];
	const char *name;

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(state_put_lb(s, a), 0);
	state_close(s);
	write_str("state.json", "{\"version\":1,\"loadbalancers\":[{\"uuid\":", O_TRUNC);

	s = open_ok();
	capture_start();
	assert_int_equal(state_load(s, m), 0);
	log = capture_end();
	/* the journal's change survives */
	assert_int_equal(model_count(m), 1);
	assert_true(lb_same(model_at(m, 0), a));
	name = find_file("state.json.corrupt-");
	assert_string_not_equal(name, "");
	moved = read_file(name, NULL);
	assert_string_equal(moved, "{\"version\":1,\"loadbalancers\":[{\"uuid\":");
	free(moved);
	/* reported, naming both paths and why */
	snprintf(p_snap, sizeof(p_snap), "path=%s/state.json ", dir);
	snprintf(want, sizeof(want), "moved_to=%s/%s ", dir, name);
	assert_non_null(strstr(log, "level=error"));
	assert_non_null(strstr(log, "corrupt"));
	assert_non_null(strstr(log, p_snap));
	assert_non_null(strstr(log, want));
	assert_non_null(strstr(log, "JSON syntax error"));
	free(log);
	/* and a fresh snapshot was written from what was kept */
	state_close(s);
	model_free(m);
	m = model_new();
	s = open_ok();
	capture_start();
	assert_int_equal(state_load(s, m), 0);
	log = capture_end();
	assert_null(strstr(log, "level=error"));
	free(log);
	assert_int_equal(model_count(m), 1);

	/* a snapshot that parses but is not ours is moved aside too, never emptied silently */
	state_close(s);
	write_str("state.json", "{\"version\":2,\"loadbalancers\":[]}", O_TRUNC);
	s = open_ok();
	model_free(m);
	m = model_new();
	capture_start();
	assert_int_equal(state_load(s, m), 0);
	log = capture_end();
	assert_non_null(strstr(log, "version: must be 1"));
	free(log);
	{
		DIR *d = opendir(dir);
		struct dirent *de;
		int n = 0;

		while ((de = readdir(d)))
			n += strncmp(de->d_name, "state.json.corrupt-", 19) == 0;
		closedir(d);
		assert_int_equal(n, 2);
	}
	state_close(s);
	lb_free(a);
	lb_free(b);
	model_free(m);
}

static void test_bad_journal_line_in_middle(void **st)
{
	struct model *m = model_new();
	struct state *s = open_ok();
	struct lb *a = make_lb(1, 1), *b = make_lb(2, 0);
	char *log, *before, *moved;
	const char *name;
	size_t len;

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(state_put_lb(s, a), 0);
	write_str("journal.jsonl", "{\"op\":\"zap\"}\n", O_APPEND);
	assert_int_equal(state_put_lb(s, b), 0);
	state_close(s);
	before = read_file("journal.jsonl", &len);

	s = open_ok();
	capture_start();
	assert_int_equal(state_load(s, m), 0);
	log = capture_end();
	assert_int_equal(model_count(m), 1);
	assert_true(lb_same(model_at(m, 0), a));
	name = find_file("journal.jsonl.corrupt-");
	assert_string_not_equal(name, "");
	moved = read_file(name, NULL);
	assert_string_equal(moved, before);
	free(moved);
	free(before);
	assert_non_null(strstr(log, "level=error"));
	assert_non_null(strstr(log, "line=2"));
	assert_non_null(strstr(log, "op: must be"));
	assert_non_null(strstr(log, name));
	free(log);
	/* the new journal is empty and takes changes */
	assert_int_equal(file_size("journal.jsonl"), 0);
	assert_int_equal(state_put_lb(s, b), 0);
	state_close(s);
	model_free(m);
	m = model_new();
	s = open_ok();
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(model_count(m), 2);
	state_close(s);
	lb_free(a);
	lb_free(b);
	model_free(m);
}

static void test_thousand_round_trip(void **st)
{
	struct model *m = model_new(), *back = model_new();
	struct state *s = open_ok();

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	for (unsigned i = 0; i < 1000; i++) {
		struct lb *lb = make_lb(i, i % 5);

		assert_int_equal(state_put_lb(s, lb), 0);
		assert_int_equal(model_add(m, lb), 0);
	}
	/* straight from the journal */
	state_close(s);
	s = open_ok();
	assert_int_equal(state_load(s, back), 0);
	assert_models_equal(m, back);
	state_close(s);
	/* and from the snapshot that load wrote */
	assert_int_equal(file_size("journal.jsonl"), 0);
	model_free(back);
	back = model_new();
	s = open_ok();
	assert_int_equal(state_load(s, back), 0);
	assert_models_equal(m, back);
	state_close(s);
	model_free(m);
	model_free(back);
}

static void test_maybe_compact(void **st)
{
	struct model *m = model_new();
	struct state *s = open_ok();
	struct lb *lb = make_lb(1, 1);

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(model_add(m, lb), 0);
	for (unsigned i = 0; i < 1024; i++) {
		lb->port = (uint16_t)(i + 1);
		assert_int_equal(state_put_lb(s, lb), 0);
		assert_int_equal(state_maybe_compact(s, m), 0);
	}
	assert_true(file_size("journal.jsonl") > 0);
	lb->port = 4242;
	assert_int_equal(state_put_lb(s, lb), 0);
	assert_int_equal(state_maybe_compact(s, m), 0);
	assert_int_equal(file_size("journal.jsonl"), 0);
	state_close(s);
	model_free(m);
	m = model_new();
	s = open_ok();
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(model_at(m, 0)->port, 4242);
	state_close(s);
	model_free(m);
}

/* A write cut short (disk full) is cut off again, so the journal stays readable. */
static void test_failed_append_rolls_back(void **st)
{
	struct model *m = model_new();
	struct state *s = open_ok();
	struct lb *a = make_lb(1, 1), *b = make_lb(2, 3);
	struct rlimit old, lim;
	off_t size;
	char *log;

	(void)st;
	assert_int_equal(state_load(s, m), 0);
	assert_int_equal(state_put_lb(s, a), 0);
	size = file_size("journal.jsonl");
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)size + 20;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	capture_start();
	assert_true(state_put_lb(s, b) < 0);
	log = capture_end();
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_non_null(strstr(log, "cannot append to the state journal"));
	free(log);
	assert_int_equal(file_size("journal.jsonl"), size);
	assert_int_equal(state_put_lb(s, b), 0);
	state_close(s);
	model_free(m);
	m = model_new();
	s = open_ok();
	capture_start();
	assert_int_equal(state_load(s, m), 0);
	log = capture_end();
	assert_null(strstr(log, "level="));
	free(log);
	assert_int_equal(model_count(m), 2);
	state_close(s);
	lb_free(a);
	lb_free(b);
	model_free(m);
}

/* ---- the pure parsers ---- */

static void snapshot_fails(const char *text, const char *want)
{
	struct model *m = model_new();
	struct lb *keep = make_lb(99, 0);

	model_add(m, keep);
	if (state_parse_snapshot(text, strlen(text), m, errbuf, sizeof(errbuf)) != -EINVAL)
		fail_msg("accepted %s", text);
	if (strcmp(errbuf, want) != 0)
		fail_msg("for %s\n  got:  %s\n  want: %s", text, errbuf, want);
	/* nothing of a bad snapshot reaches the model */
	assert_int_equal(model_count(m), 1);
	assert_ptr_equal(model_at(m, 0), keep);
	model_free(m);
}

static void test_parse_snapshot(void **st)
{
	struct model *m = model_new();
	static const char ok[] =
		"{\"version\":1,\"loadbalancers\":[\n"
		"{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"a\",\"vip\":\"\","
		"\"eip\":\"\",\"port\":80,\"origin\":\"config\"},\n"
		"{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\",\"name\":\"b\","
			"\"port\":\"81\"}\n"
		"]}\n";

	(void)st;
	assert_int_equal(state_parse_snapshot(ok, strlen(ok), m, errbuf, sizeof(errbuf)), 0);
	assert_int_equal(model_count(m), 2);
	assert_int_equal(model_at(m, 0)->origin, LB_ORIGIN_CONFIG);
	assert_false(ip_addr_is_set(&model_at(m, 0)->vip));
	assert_int_equal(model_at(m, 1)->port, 81);
	model_free(m);

	snapshot_fails("", "line 1, column 1: JSON syntax error: unexpected end of the document");
	snapshot_fails("{\"version\":1,\n\"loadbalancers\":[}",
		       "line 2, column 18: JSON syntax error");
	snapshot_fails("[]", "the document must be a JSON object");
	snapshot_fails("{\"loadbalancers\":[]}", "version: must be 1");
	snapshot_fails("{\"version\":\"1\",\"loadbalancers\":[]}", "version: must be 1");
	snapshot_fails("{\"version\":1}", "loadbalancers: must be an array");
	snapshot_fails("{\"version\":1,\"loadbalancers\":[],\"extra\":1}", "unknown key \"extra\"");
	snapshot_fails("{\"version\":1,\"version\":1,\"loadbalancers\":[]}",
		       "duplicate key \"version\"");
	snapshot_fails("{\"version\":1,\"loadbalancers\":[{\"name\":\"a\",\"port\":80}]}",
		       "loadbalancers[0].uuid: required in the state file");
	snapshot_fails("{\"version\":1,\"loadbalancers\":[{\"uuid\":\"087fcb0f-8e07-4123-a32f-"
		       "e8e83a281023\",\"name\":\"a\",\"port\":80},{\"uuid\":\"087fcb0f-8e07-4123-"
		       "a32f-e8e83a281023\",\"name\":\"b\",\"port\":81}]}",
		       "loadbalancers[1].uuid: 087fcb0f-8e07-4123-a32f-e8e83a281023 is listed "
		       	"twice");
	snapshot_fails("{\"version\":1,\"loadbalancers\":[]} []",
		       "line 1, column 34: JSON syntax error: text after the end of the document");
}

static int apply(struct model *m, const char *line)
{
	return state_apply_journal_line(line, strlen(line), m, errbuf, sizeof(errbuf));
}

static void test_apply_journal_line(void **st)
{
	struct model *m = model_new();
	struct lb *first;
	static const char put_a[] =
		"{\"op\":\"put\",\"lb\":{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\","
		"\"name\":\"a\",\"port\":80}}";
	static const char put_a2[] =
		"{\"op\":\"put\",\"lb\":{\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\","
		"\"name\":\"a2\",\"port\":81}}";
	static const char put_b[] =
		"{\"op\":\"put\",\"lb\":{\"uuid\":\"187fcb0f-8e07-4123-a32f-e8e83a281023\","
		"\"name\":\"b\",\"port\":80}}";
	static const char del_a[] = "{\"op\":\"del\","
		"\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\"}";
	static const struct {
		const char *line, *want;
	} bad[] = {
		{ "", "line 1, column 1: JSON syntax error: unexpected end of the document" },
		{ "{\"op\":\"put\"", "line 1, column 11: JSON syntax error" },
		{ "{\"op\":\"put\"\n", "line 1, column 12: JSON syntax error: unexpected end of "
			"the "
				   "document" },
		{ "[]", "a journal line must be a JSON object" },
		{ "{\"op\":\"zap\"}", "op: must be \"put\" or \"del\"" },
		{ "{\"op\":1}", "op: must be \"put\" or \"del\"" },
		{ "{}", "op: must be \"put\" or \"del\"" },
		{ "{\"op\":\"put\"}", "op \"put\" takes \"lb\" and no \"uuid\"" },
		{ "{\"op\":\"del\"}", "op \"del\" takes \"uuid\" and no \"lb\"" },
		{ "{\"op\":\"del\",\"uuid\":\"x\"}", "uuid: not a uuid" },
		{ "{\"op\":\"del\",\"uuid\":\"087fcb0f-8e07-4123-a32f-e8e83a281023\",\"lb\":{}}",
		  "op \"del\" takes \"uuid\" and no \"lb\"" },
		{ "{\"op\":\"del\",\"why\":1}", "unknown key \"why\"" },
		{ "{\"op\":\"put\",\"lb\":{\"name\":\"a\",\"port\":80}}",
		  "lb.uuid: required in the state file" },
	};

	(void)st;
	assert_int_equal(apply(m, put_a), 0);
	assert_int_equal(apply(m, put_b), 0);
	first = model_at(m, 0);
	/* a put of a known uuid replaces it where it stands */
	assert_int_equal(apply(m, put_a2), 0);
	assert_int_equal(model_count(m), 2);
	assert_ptr_equal(model_at(m, 0), first);
	assert_string_equal(model_at(m, 0)->name, "a2");
	assert_int_equal(model_at(m, 0)->port, 81);
	assert_int_equal(apply(m, del_a), 0);
	assert_int_equal(model_count(m), 1);
	assert_string_equal(model_at(m, 0)->name, "b");
	/* deleting what is gone already is what a replay does */
	assert_int_equal(apply(m, del_a), 0);
	/* the length bounds the line */
	assert_int_equal(state_apply_journal_line(del_a, strlen(del_a) - 1, m, errbuf,
						  sizeof(errbuf)), -EINVAL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = state_apply_journal_line(bad[i].line, strlen(bad[i].line), m, errbuf,
						 sizeof(errbuf));

		if (r != -EINVAL || strcmp(errbuf, bad[i].want) != 0)
			fail_msg("for %s\n  got:  %d %s\n  want: %s", bad[i].line, r, errbuf,
				 bad[i].want);
	}
	assert_int_equal(model_count(m), 1);
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_private_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lock_conflict, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_del_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_last_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_journal_line_in_middle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thousand_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_maybe_compact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_append_rolls_back, setup, teardown),
		cmocka_unit_test(test_parse_snapshot),
		cmocka_unit_test(test_apply_journal_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
