/*
 * The state directory.
 *
 * Every change is one line appended to the journal with a single write() and
 * made durable with fdatasync before the caller answers, so a crash can only
 * cut the last line short; that line was never acknowledged and is dropped.
 * Replaying the journal is idempotent (put replaces by uuid, del removes), so
 * a crash between writing a new snapshot and emptying the journal loses
 * nothing and adds nothing.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lb_json.h"
#include "log.h"
#include "util.h"

#define SNAPSHOT "state.json"
#define SNAPSHOT_TMP "state.json.tmp"
#define JOURNAL "journal.jsonl"
#define LOCKFILE "lock"
#define STATE_VERSION 1
#define COMPACT_MIN_ENTRIES 1024
#define LB_ERR_MAX 4096

struct state {
	char *dir;
	int dir_fd;
	int lock_fd;
	int journal_fd;          /* O_APPEND */
	off_t journal_size;      /* bytes of whole lines; a failed append is cut back to it */
	size_t journal_entries;  /* lines since the snapshot */
	bool journal_broken;     /* a failed append could not be cut back: compact first */
};

/* ---- pure parsers ---- */


/* Inserts lb, or replaces the one with its uuid in place (keeping its position). */
static int model_put(struct model *m, struct lb *lb)
{
	struct lb *cur = model_find(m, lb->uuid), tmp;
	int r;

	if (!cur) {
		r = model_add(m, lb);
		if (r)
			lb_free(lb);
		return r;
	}
	tmp = *cur;
	*cur = *lb;
	*lb = tmp;
	lb_free(lb);
	return 0;
}

static const char *const snapshot_keys[] = { "version", "loadbalancers", NULL };

static int key_of(const char *const *keys, const cJSON *it)
{
	for (int i = 0; keys[i]; i++)
		if (it->string && strcmp(it->string, keys[i]) == 0)
			return i;
	return -1;
}

/* Checks the top-level keys; fills vals[] with each known key's item. */
static int check_keys(const cJSON *obj, const char *const *keys, const cJSON **vals,
		      char *err, size_t errlen)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, obj) {
		int k = key_of(keys, it);

		if (k < 0) {
			errbuf_printf(err, errlen, "unknown key \"%.64s\"", it->string ? it->string : "");
			return -EINVAL;
		}
		if (vals[k]) {
			errbuf_printf(err, errlen, "duplicate key \"%s\"", keys[k]);
			return -EINVAL;
		}
		vals[k] = it;
	}
	return 0;
}

static int parse_lbs(const cJSON *arr, struct model *tmp, char *err, size_t errlen)
{
	char path[64];
	const cJSON *it;
	size_t i = 0;

	cJSON_ArrayForEach(it, arr) {
		struct lb *lb;
		int r;

		snprintf(path, sizeof(path), "loadbalancers[%zu]", i);
		r = lb_from_json(it, LB_JSON_STATE, path, &lb, err, errlen);
		if (r)
			return r;
		if (model_find(tmp, lb->uuid)) {
			errbuf_printf(err, errlen, "%s.uuid: %s is listed twice", path, lb->uuid);
			lb_free(lb);
			return -EINVAL;
		}
		r = model_add(tmp, lb);
		if (r) {
			lb_free(lb);
			return r;
		}
		i++;
	}
	return 0;
}

int state_parse_snapshot(const char *text, size_t len, struct model *m, char *err, size_t errlen)
{
	const cJSON *vals[2] = { NULL, NULL };
	struct model *tmp = NULL;
	cJSON *root;
	int r = -EINVAL;

	errbuf_printf(err, errlen, "%s", "");
	root = json_parse_doc(text, len, err, errlen);
	if (!root)
		return -EINVAL;
	if (!cJSON_IsObject(root)) {
		errbuf_printf(err, errlen, "the document must be a JSON object");
		goto out;
	}
	if (check_keys(root, snapshot_keys, vals, err, errlen))
		goto out;
	if (!vals[0] || !cJSON_IsNumber(vals[0]) || vals[0]->valuedouble != STATE_VERSION) {
		errbuf_printf(err, errlen, "version: must be %d", STATE_VERSION);
		goto out;
	}
	if (!vals[1] || !cJSON_IsArray(vals[1])) {
		errbuf_printf(err, errlen, "loadbalancers: must be an array");
		goto out;
	}
	tmp = model_new();
	if (!tmp) {
		r = -ENOMEM;
		goto out;
	}
	r = parse_lbs(vals[1], tmp, err, errlen);
	if (r)
		goto out;
	/* Only a snapshot read in full reaches m. */
	while (model_count(tmp)) {
		struct lb *lb = model_take(tmp, model_at(tmp, 0)->uuid);

		r = model_put(m, lb);
		if (r)
			goto out;
	}
out:
	model_free(tmp);
	cJSON_Delete(root);
	return r;
}

static const char *const journal_keys[] = { "op", "lb", "uuid", NULL };

int state_apply_journal_line(const char *line, size_t len, struct model *m, char *err,
			     size_t errlen)
{
	const cJSON *vals[3] = { NULL, NULL, NULL };
	struct lb *lb;
	cJSON *root;
	const char *op;
	int r = -EINVAL;

	errbuf_printf(err, errlen, "%s", "");
	root = json_parse_doc(line, len, err, errlen);
	if (!root)
		return -EINVAL;
	if (!cJSON_IsObject(root)) {
		errbuf_printf(err, errlen, "a journal line must be a JSON object");
		goto out;
	}
	if (check_keys(root, journal_keys, vals, err, errlen))
		goto out;
	op = cJSON_IsString(vals[0]) ? vals[0]->valuestring : NULL;
	if (op && strcmp(op, "put") == 0) {
		if (!vals[1] || vals[2]) {
			errbuf_printf(err, errlen, "op \"put\" takes \"lb\" and no \"uuid\"");
			goto out;
		}
		r = lb_from_json(vals[1], LB_JSON_STATE, "lb", &lb, err, errlen);
		if (!r)
			r = model_put(m, lb);
	} else if (op && strcmp(op, "del") == 0) {
		if (!vals[2] || vals[1]) {
			errbuf_printf(err, errlen, "op \"del\" takes \"uuid\" and no \"lb\"");
			goto out;
		}
		if (!cJSON_IsString(vals[2]) || !uuid_is_valid(vals[2]->valuestring)) {
			errbuf_printf(err, errlen, "uuid: not a uuid");
			goto out;
		}
		/* Deleting what is not there is fine: replay after a crash repeats lines. */
		lb_free(model_take(m, vals[2]->valuestring));
		r = 0;
	} else {
		errbuf_printf(err, errlen, "op: must be \"put\" or \"del\"");
	}
out:
	cJSON_Delete(root);
	return r;
}

/* ---- files ---- */

static char *path_of(const struct state *st, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", st->dir, name);
	return buf;
}

/* Reads a whole file under the state dir; -ENOENT when there is none. */
static int read_at(int dir_fd, const char *name, char **out, size_t *len)
{
	size_t cap = 64 << 10, n = 0;
	char *buf, *nb;
	ssize_t r;
	int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		if (n == cap) {
			nb = realloc(buf, cap * 2 + 1);
			if (!nb) {
				free(buf);
				close(fd);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			free(buf);
			close(fd);
			return (int)r;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

static int write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t r = write(fd, buf, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		buf += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * A crash leaves the old file or the new one, never a mix: the temp file is in
 * the same directory (rename is atomic only within a file system) and reaches
 * the disk before the rename, and the rename before we return.
 */
static int write_atomic(struct state *st, const char *name, const char *tmpname,
			const char *text, size_t len)
{
	char p[4096];
	int fd, r;

	fd = openat(st->dir_fd, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		log_error("msg=\"cannot create the state file\" path=%s err=\"%s\"",
			  path_of(st, tmpname, p, sizeof(p)), strerror(-r));
		return r;
	}
	r = write_all(fd, text, len);
	if (!r && fsync(fd))
		r = -errno;
	if (close(fd) && !r)
		r = -errno;
	if (!r && renameat(st->dir_fd, tmpname, st->dir_fd, name))
		r = -errno;
	if (r) {
		log_error("msg=\"cannot write the state file\" path=%s err=\"%s\"",
			  path_of(st, name, p, sizeof(p)), strerror(-r));
		unlinkat(st->dir_fd, tmpname, 0);
		return r;
	}
	if (fsync(st->dir_fd)) {
		r = -errno;
		log_error("msg=\"cannot sync the state directory\" path=%s err=\"%s\"", st->dir,
			  strerror(-r));
		return r;
	}
	return 0;
}

/* Renames name to name.corrupt-<unix time> (".N" added if taken); moved gets the new path. */
static int move_aside(struct state *st, const char *name, char *moved, size_t n)
{
	char to[256];
	struct stat sb;
	long now = (long)time(NULL);

	snprintf(to, sizeof(to), "%s.corrupt-%ld", name, now);
	for (int i = 1; fstatat(st->dir_fd, to, &sb, AT_SYMLINK_NOFOLLOW) == 0 && i < 1000; i++)
		snprintf(to, sizeof(to), "%s.corrupt-%ld.%d", name, now, i);
	path_of(st, to, moved, n);
	if (renameat(st->dir_fd, name, st->dir_fd, to))
		return -errno;
	return fsync(st->dir_fd) ? -errno : 0;
}

static int journal_open(struct state *st)
{
	struct stat sb;
	char p[4096];
	int r;

	if (st->journal_fd >= 0)
		close(st->journal_fd);
	st->journal_fd = openat(st->dir_fd, JOURNAL, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
				0600);
	if (st->journal_fd < 0 || fstat(st->journal_fd, &sb)) {
		r = -errno;
		log_error("msg=\"cannot open the state journal\" path=%s err=\"%s\"",
			  path_of(st, JOURNAL, p, sizeof(p)), strerror(-r));
		return r;
	}
	st->journal_size = sb.st_size;
	return 0;
}

int state_open(const char *dir, struct state **out)
{
	struct state *st;
	char p[4096];
	int r;

	*out = NULL;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		r = -errno;
		log_error("msg=\"cannot create the state directory\" path=%s err=\"%s\"", dir,
			  strerror(-r));
		return r;
	}
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->dir_fd = st->lock_fd = st->journal_fd = -1;
	st->dir = strdup(dir);
	if (!st->dir) {
		r = -ENOMEM;
		goto fail;
	}
	st->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dir_fd < 0) {
		r = -errno;
		log_error("msg=\"cannot open the state directory\" path=%s err=\"%s\"", dir,
			  strerror(-r));
		goto fail;
	}
	st->lock_fd = openat(st->dir_fd, LOCKFILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (st->lock_fd < 0) {
		r = -errno;
		log_error("msg=\"cannot open the state lock file\" path=%s err=\"%s\"",
			  path_of(st, LOCKFILE, p, sizeof(p)), strerror(-r));
		goto fail;
	}
	if (flock(st->lock_fd, LOCK_EX | LOCK_NB)) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		if (r == -EBUSY)
			log_error("msg=\"the state directory is in use by another vipd\" path=%s",
				  dir);
		else
			log_error("msg=\"cannot lock the state directory\" path=%s err=\"%s\"", dir,
				  strerror(-r));
		goto fail;
	}
	r = journal_open(st);
	if (r)
		goto fail;
	/* The new files' names must survive a crash as much as their contents. */
	if (fsync(st->dir_fd)) {
		r = -errno;
		log_error("msg=\"cannot sync the state directory\" path=%s err=\"%s\"", dir,
			  strerror(-r));
		goto fail;
	}
	*out = st;
	return 0;
fail:
	state_close(st);
	return r;
}

void state_close(struct state *st)
{
	if (!st)
		return;
	if (st->journal_fd >= 0)
		close(st->journal_fd);
	if (st->lock_fd >= 0)
		close(st->lock_fd);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	free(st->dir);
	free(st);
}

/* A message from the parsers on one log line. */
static void one_line(char *s)
{
	for (; *s; s++)
		if (*s == '\n')
			*s = ';';
}

static int load_snapshot(struct state *st, struct model *m)
{
	char err[LB_ERR_MAX], p[4096], moved[4096];
	size_t len;
	char *text;
	int r;

	r = read_at(st->dir_fd, SNAPSHOT, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r) {
		log_error("msg=\"cannot read the state file\" path=%s err=\"%s\"",
			  path_of(st, SNAPSHOT, p, sizeof(p)), strerror(-r));
		return r;
	}
	r = state_parse_snapshot(text, len, m, err, sizeof(err));
	free(text);
	if (r != -EINVAL)
		return r;
	one_line(err);
	r = move_aside(st, SNAPSHOT, moved, sizeof(moved));
	if (r) {
		log_error("msg=\"the state file is corrupt and cannot be moved aside\" path=%s "
			  "parse_err=\"%s\" err=\"%s\"", path_of(st, SNAPSHOT, p, sizeof(p)), err,
			  strerror(-r));
		return r;
	}
	log_error("msg=\"the state file is corrupt; moved aside, continuing with the journal\" "
		  "path=%s moved_to=%s err=\"%s\"", path_of(st, SNAPSHOT, p, sizeof(p)), moved,
		  err);
	return 0;
}

/* A bad line in the middle: keep what came before, move the journal aside for a human. */
static int journal_corrupt(struct state *st, size_t lineno, char *err)
{
	char p[4096], moved[4096];
	int r;

	one_line(err);
	path_of(st, JOURNAL, p, sizeof(p));
	r = move_aside(st, JOURNAL, moved, sizeof(moved));
	if (r) {
		log_error("msg=\"the state journal is corrupt and cannot be moved aside\" path=%s "
			  "line=%zu parse_err=\"%s\" err=\"%s\"", p, lineno, err, strerror(-r));
		return r;
	}
	log_error("msg=\"the state journal is corrupt; keeping the changes before the bad line, "
		  "moved aside\" path=%s moved_to=%s line=%zu err=\"%s\"", p, moved, lineno, err);
	return journal_open(st);
}

static int load_journal(struct state *st, struct model *m)
{
	char err[LB_ERR_MAX], p[4096];
	size_t len, pos = 0, lineno = 0;
	char *text;
	int r;

	r = read_at(st->dir_fd, JOURNAL, &text, &len);
	if (r == -ENOENT)
		return 0;
	if (r) {
		log_error("msg=\"cannot read the state journal\" path=%s err=\"%s\"",
			  path_of(st, JOURNAL, p, sizeof(p)), strerror(-r));
		return r;
	}
	while (pos < len) {
		char *nl = memchr(text + pos, '\n', len - pos);
		size_t n;

		lineno++;
		if (!nl) {
			log_warn("msg=\"dropping the torn last line of the state journal (a "
				 "write cut short by a crash; it was never acknowledged)\" "
				 "path=%s line=%zu bytes=%zu", path_of(st, JOURNAL, p, sizeof(p)),
				 lineno, len - pos);
			break;
		}
		n = (size_t)(nl - (text + pos));
		r = text_only_space(text + pos, n) ? 0 :
			state_apply_journal_line(text + pos, n, m, err, sizeof(err));
		if (r == -EINVAL) {
			r = journal_corrupt(st, lineno, err);
			break;
		}
		if (r)
			break;
		pos += n + 1;
	}
	free(text);
	return r;
}

int state_load(struct state *st, struct model *m)
{
	int r;

	r = load_snapshot(st, m);
	if (!r)
		r = load_journal(st, m);
	if (!r)
		r = state_compact(st, m);
	return r;
}

static int journal_append(struct state *st, char *line)
{
	size_t n = strlen(line);
	char p[4096];
	ssize_t w;
	int r = 0;

	if (st->journal_broken)
		return -EIO;
	/* The NUL cJSON ends its text with becomes the newline: one write() per line. */
	line[n] = '\n';
	do
		w = write(st->journal_fd, line, n + 1);
	while (w < 0 && errno == EINTR);
	line[n] = '\0';
	if (w < 0)
		r = -errno;
	else if ((size_t)w != n + 1)
		r = -ENOSPC;
	else if (fdatasync(st->journal_fd))
		r = -errno;
	if (!r) {
		st->journal_size += (off_t)(n + 1);
		st->journal_entries++;
		return 0;
	}
	log_error("msg=\"cannot append to the state journal\" path=%s err=\"%s\"",
		  path_of(st, JOURNAL, p, sizeof(p)), strerror(-r));
	/* A partial line in the middle would make the journal unreadable: cut it off. */
	if (ftruncate(st->journal_fd, st->journal_size)) {
		st->journal_broken = true;
		log_error("msg=\"cannot cut a failed append off the state journal; changes are "
			  "refused until a snapshot is written\" path=%s err=\"%s\"", p,
			  strerror(errno));
	}
	return r;
}

static int journal_put(struct state *st, cJSON *obj)
{
	char *line;
	int r;

	if (!obj)
		return -ENOMEM;
	line = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!line)
		return -ENOMEM;
	r = journal_append(st, line);
	cJSON_free(line);
	return r;
}

int state_put_lb(struct state *st, const struct lb *lb)
{
	cJSON *o = cJSON_CreateObject(), *j = lb_to_json(lb, LB_VIEW_STATE);

	if (!o || !j || !cJSON_AddStringToObject(o, "op", "put") ||
	    !cJSON_AddItemToObject(o, "lb", j)) {
		cJSON_Delete(o);
		cJSON_Delete(j);
		return -ENOMEM;
	}
	return journal_put(st, o);
}

int state_del_lb(struct state *st, const char *uuid)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "op", "del") ||
	    !cJSON_AddStringToObject(o, "uuid", uuid)) {
		cJSON_Delete(o);
		return -ENOMEM;
	}
	return journal_put(st, o);
}

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *np;

		while (b->len + n + 1 > cap)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* One load balancer per line: readable, and cheap to diff by hand. */
static int snapshot_text(const struct model *m, struct buf *b)
{
	static const char head[] = "{\"version\":1,\"loadbalancers\":[";
	static const char tail[] = "\n]}\n";
	int r = buf_add(b, head, sizeof(head) - 1);

	for (size_t i = 0; !r && i < model_count(m); i++) {
		cJSON *j = lb_to_json(model_at(m, i), LB_VIEW_STATE);
		char *t = j ? cJSON_PrintUnformatted(j) : NULL;

		cJSON_Delete(j);
		if (!t)
			return -ENOMEM;
		r = buf_add(b, i ? ",\n" : "\n", i ? 2 : 1);
		if (!r)
			r = buf_add(b, t, strlen(t));
		cJSON_free(t);
	}
	return r ? r : buf_add(b, tail, sizeof(tail) - 1);
}

int state_compact(struct state *st, const struct model *m)
{
	struct buf b = { NULL, 0, 0 };
	char p[4096];
	int r;

	r = snapshot_text(m, &b);
	if (r) {
		free(b.p);
		log_error("msg=\"cannot build the state snapshot\" err=\"%s\"", strerror(-r));
		return r;
	}
	r = write_atomic(st, SNAPSHOT, SNAPSHOT_TMP, b.p, b.len);
	free(b.p);
	if (r)
		return r;
	/* The snapshot holds everything now; replaying the old journal again would be harmless. */
	if (ftruncate(st->journal_fd, 0) || fsync(st->journal_fd)) {
		r = -errno;
		log_error("msg=\"cannot empty the state journal\" path=%s err=\"%s\"",
			  path_of(st, JOURNAL, p, sizeof(p)), strerror(-r));
		return r;
	}
	st->journal_size = 0;
	st->journal_entries = 0;
	st->journal_broken = false;
	return 0;
}

int state_maybe_compact(struct state *st, const struct model *m)
{
	size_t limit = model_count(m);

	if (limit < COMPACT_MIN_ENTRIES)
		limit = COMPACT_MIN_ENTRIES;
	if (st->journal_entries <= limit)
		return 0;
	return state_compact(st, m);
}
