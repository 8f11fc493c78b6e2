/*
 * Load balancers as JSON: one schema for the API, the config file and the
 * state file. Parsing is pure (cJSON in, struct out) and every error names the
 * field path, e.g. "loadbalancers[2].backends[0].port: must be 1..65535".
 */
#ifndef VIPD_LB_JSON_H
#define VIPD_LB_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "model.h"

enum lb_json_mode {
	LB_JSON_API,    /* POST /loadbalancer body: uuid is ignored, a new one is made */
	LB_JSON_CONFIG, /* config file entry: name required; uuid optional (else from name) */
	LB_JSON_STATE,  /* state file: uuids required, trusted */
};

enum lb_json_view {
	LB_VIEW_API,   /* everything, runtime health included */
	LB_VIEW_STATE, /* what survives a restart */
};

/*
 * Builds a load balancer from obj. path prefixes error messages ("" for none).
 * Unknown keys are errors. On error returns -EINVAL with err filled, *out NULL.
 */
int lb_from_json(const cJSON *obj, enum lb_json_mode mode, const char *path, struct lb **out,
		 char *err, size_t errlen);
/* One backend object ({"ip","port"[,"weight","type","uuid","state"]}). */
int backend_from_json(const cJSON *obj, enum lb_json_mode mode, const char *path,
		      struct backend *out, char *err, size_t errlen);
/* The health_check object; starts from the defaults in health_check_init. */
int health_check_from_json(const cJSON *obj, const char *path, struct health_check *out,
			   char *err, size_t errlen);

/* NULL on ENOMEM. backends is always an array, never null. */
cJSON *lb_to_json(const struct lb *lb, enum lb_json_view view);
cJSON *backend_to_json(const struct lb *lb, const struct backend *b, enum lb_json_view view);

/* A port from a number or a numeric string (slb accepted "6443"); 0 or -EINVAL. */
int json_port(const cJSON *v, uint16_t *out);
/* Duration: integer milliseconds or a string "500ms", "5s", "1m"; 0 or -EINVAL. */
int json_duration_ms(const cJSON *v, uint32_t *out);
int duration_parse_ms(const char *s, uint32_t *out);
/* "a string", "a number", ...: for messages about wrong types. */
const char *json_type_name(const cJSON *v);
/*
 * One whole JSON document in text[0..len) (NULL reads as empty), or NULL with err naming the
 * line and column: "JSON syntax error", "...: unexpected end of the document" or "...: text
 * after the end of the document".
 */
cJSON *json_parse_doc(const char *text, size_t len, char *err, size_t errlen);

#endif
