/*
 * The store keeps the model, the VIP source and the state file consistent. The
 * API and the config loader change load balancers only through it; each call
 * validates first and changes nothing on failure, persists, then asks for a
 * reconcile through `changed`.
 */
#ifndef VIPD_STORE_H
#define VIPD_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "state.h"
#include "vipsrc.h"

struct store {
	struct model *model;
	struct vip_source *vips; /* NULL: every load balancer must name its vip */
	struct state *state;     /* NULL: nothing persisted */
	void (*changed)(void *arg);
	void *changed_arg;
};

/*
 * Errors, with err filled for the caller (the API puts it in {"error": ...}):
 * -EINVAL bad value, -EEXIST conflict (vip:port/protocol taken, duplicate
 * backend, uuid taken), -ENOENT unknown uuid, -ENOSPC no address left,
 * -EIO state file not written (the change is undone).
 */

/* Reserves in the VIP source every VIP the model holds (after state_load). */
int store_restore(struct store *s);
/* Takes ownership of lb on success: allocates its VIP if it has none. */
int store_create_lb(struct store *s, struct lb *lb, char *err, size_t errlen);
/* Replaces the fields of an existing load balancer (config reload); keeps uuid and VIP
 * unless the new one names another VIP. Takes ownership of lb on success. */
int store_update_lb(struct store *s, struct lb *lb, char *err, size_t errlen);
int store_delete_lb(struct store *s, const char *uuid, char *err, size_t errlen);
/* Copies b into the load balancer; b->uuid is kept. */
int store_add_backend(struct store *s, struct lb *lb, const struct backend *b, char *err,
		      size_t errlen);
int store_remove_backend(struct store *s, struct lb *lb, const char *backend_uuid, char *err,
			 size_t errlen);
/*
 * An asynchronous VIP source's answer for owner (its vip_result_fn goes here): err 0 gives
 * the pending load balancer its address (persisted, then a reconcile); an error leaves it
 * pending (the source retries). An address for a load balancer that no longer exists, or
 * that has one already, is given back.
 */
void store_vip_result(struct store *s, const char *owner, int err, const struct ip_addr *addr);
int store_set_drained(struct store *s, struct lb *lb, struct backend *b, bool drained,
		      char *err, size_t errlen);

#endif
