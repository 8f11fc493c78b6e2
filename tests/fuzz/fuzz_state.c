/*
 * The state file's parsers: the whole input as a snapshot, then each line as
 * a journal entry applied in turn. An accepted snapshot must write back to
 * one that reads the same; a refused one must say why and leave the model alone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_json.h"
#include "state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The snapshot text state_compact writes, built from the public pieces. */
static char *snapshot_of(const struct model *m)
{
	cJSON *root = cJSON_CreateObject(), *arr;
	char *text;

	if (!root)
		abort();
	cJSON_AddNumberToObject(root, "version", 1);
	arr = cJSON_AddArrayToObject(root, "loadbalancers");
	for (size_t i = 0; i < model_count(m); i++)
		cJSON_AddItemToArray(arr, lb_to_json(model_at(m, i), LB_VIEW_STATE));
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!text)
		abort();
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct model *m = model_new(), *again;
	char err[4096];
	size_t pos = 0;

	if (!m)
		return 0;
	err[0] = 'x';
	if (state_parse_snapshot(text, size, m, err, sizeof(err)) == 0) {
		char *snap = snapshot_of(m);

		again = model_new();
		if (state_parse_snapshot(snap, strlen(snap), again, err, sizeof(err)) ||
		    model_count(again) != model_count(m))
			abort();
		model_free(again);
		free(snap);
	} else if (!err[0] || model_count(m)) {
		abort();
	}
	while (pos < size) {
		const char *nl = memchr(text + pos, '\n', size - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : size - pos;
		size_t before = model_count(m);

		err[0] = 'x';
		if (state_apply_journal_line(text + pos, n, m, err, sizeof(err))) {
			if (!err[0] || model_count(m) != before)
				abort();
		} else if (model_count(m) > before + 1 || model_count(m) + 1 < before) {
			abort();
		}
		pos += n + 1;
	}
	for (size_t i = 0; i < model_count(m); i++)
		if (model_find(m, model_at(m, i)->uuid) != model_at(m, i))
			abort();
	model_free(m);
	return 0;
}
