/*
 * config_parse on arbitrary text. A rejected file must say why; every load
 * balancer of an accepted one must survive the state file's round trip, and
 * its GET output must read back as a config entry.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const struct lb *lb, enum lb_json_view view, enum lb_json_mode mode)
{
	cJSON *a = lb_to_json(lb, view), *b;
	struct lb *back;
	char err[4096];

	if (!a)
		abort();
	if (lb_from_json(a, mode, "", &back, err, sizeof(err)))
		abort();
	b = lb_to_json(back, view);
	if (!b || !cJSON_Compare(a, b, 1) || strcmp(back->uuid, lb->uuid) != 0)
		abort();
	cJSON_Delete(a);
	cJSON_Delete(b);
	lb_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_error errs = { 0 };
	struct settings s;
	struct config cfg;

	if (config_parse((const char *)data, size, &cfg, &errs)) {
		if (!errs.n || cfg.n_lbs || cfg.lbs)
			abort();
		for (size_t i = 0; i < errs.n; i++)
			if (!errs.msgs[i][0] || strchr(errs.msgs[i], '\n'))
				abort();
		config_error_clear(&errs);
		config_clear(&cfg);
		return 0;
	}
	if (errs.n)
		abort();
	for (size_t i = 0; i < cfg.n_lbs; i++) {
		if (cfg.lbs[i]->origin != LB_ORIGIN_CONFIG)
			abort();
		check_round_trip(cfg.lbs[i], LB_VIEW_STATE, LB_JSON_STATE);
		check_round_trip(cfg.lbs[i], LB_VIEW_API, LB_JSON_CONFIG);
	}
	settings_init(&s);
	if (settings_overlay(&s, &cfg.settings))
		abort();
	settings_clear(&s);
	config_clear(&cfg);
	return 0;
}
