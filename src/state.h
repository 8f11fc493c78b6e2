/*
 * The state directory: what the API created survives restarts and kill -9.
 *
 * A snapshot (state.json, same schema as GET /loadbalancers plus origin)
 * written atomically (temp file, fsync, rename, fsync dir), and a journal
 * (journal.jsonl, one JSON line per change, fsynced before the API answers)
 * so a change costs one small append instead of rewriting everything. The
 * journal is folded into the snapshot when it grows and on clean exit.
 */
#ifndef VIPD_STATE_H
#define VIPD_STATE_H

#include <stddef.h>

#include "model.h"

struct state;

/* Creates dir (0700) if needed and takes an exclusive lock on it. 0 or -errno. */
int state_open(const char *dir, struct state **out);
void state_close(struct state *st);

/*
 * Loads snapshot and journal into m (which should be empty). A snapshot or
 * journal that cannot be parsed is moved aside (name.corrupt-TIMESTAMP) and
 * reported in the log; the torn last line of a journal after a crash is dropped
 * with a warning. Returns 0 or -errno for I/O errors.
 */
int state_load(struct state *st, struct model *m);
/* Journal one change and fsync. 0 or -errno. */
int state_put_lb(struct state *st, const struct lb *lb);
int state_del_lb(struct state *st, const char *uuid);
/* Writes a fresh snapshot of m and empties the journal. */
int state_compact(struct state *st, const struct model *m);
/* Compacts if the journal has grown past the model's size (amortised O(1) per change). */
int state_maybe_compact(struct state *st, const struct model *m);

/* Pure parsers, for tests and fuzzing. Errors go to err. */
int state_parse_snapshot(const char *text, size_t len, struct model *m, char *err, size_t errlen);
/* Applies one journal line to m. */
int state_apply_journal_line(const char *line, size_t len, struct model *m, char *err,
			     size_t errlen);

#endif
