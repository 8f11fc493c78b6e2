/*
 * lb_from_json in the API, config and state modes, and the backend and
 * health-check parsers, on any JSON value. What is accepted must print and
 * read back to the same object; what is refused must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const struct lb *lb)
{
	cJSON *a = lb_to_json(lb, LB_VIEW_STATE), *b, *api;
	struct lb *back;
	char err[4096];

	if (!a)
		abort();
	if (lb_from_json(a, LB_JSON_STATE, "", &back, err, sizeof(err)))
		abort();
	b = lb_to_json(back, LB_VIEW_STATE);
	if (!b || !cJSON_Compare(a, b, 1))
		abort();
	api = lb_to_json(back, LB_VIEW_API);
	if (!api || !cJSON_IsArray(cJSON_GetObjectItem(api, "backends")))
		abort();
	cJSON_Delete(api);
	cJSON_Delete(a);
	cJSON_Delete(b);
	lb_free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum lb_json_mode modes[] = { LB_JSON_API, LB_JSON_CONFIG, LB_JSON_STATE };
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	struct health_check hc;
	struct backend b;
	char err[256];

	if (!j)
		return 0;
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		struct lb *lb;

		err[0] = 'x';
		if (lb_from_json(j, modes[i], "lbs[0]", &lb, err, sizeof(err))) {
			if (lb || !err[0])
				abort();
		} else {
			if (!lb || err[0] || lb->n_backends > lb->cap_backends)
				abort();
			round_trip(lb);
			lb_free(lb);
		}
		err[0] = 'x';
		if (backend_from_json(j, modes[i], "b", &b, err, sizeof(err)) == 0 &&
		    (err[0] || !b.port || !b.weight || !ip_addr_is_set(&b.ip)))
			abort();
	}
	if (health_check_from_json(j, "hc", &hc, err, sizeof(err)) == 0 &&
	    (hc.timeout_ms == 0 || hc.timeout_ms > hc.interval_ms))
		abort();
	health_check_clear(&hc);
	cJSON_Delete(j);
	return 0;
}
