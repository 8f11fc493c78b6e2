/*
 * The reconciler: the only code that turns the model into kernel and BIRD
 * state. Requests are debounced (many changes, one pass) and a periodic pass
 * repairs drift.
 */
#ifndef VIPD_RECONCILE_H
#define VIPD_RECONCILE_H

#include <stddef.h>

#include "addr.h"

struct ev_loop;
struct model;
struct dataplane;
struct announcer;
struct reconciler;

struct reconciler *reconciler_new(struct ev_loop *loop, struct model *m, struct dataplane *dp,
				  struct announcer *an, double periodic_s);
void reconciler_free(struct reconciler *r);
/* Ask for a pass soon (coalesced). Safe to call from any callback on the loop. */
void reconciler_request(struct reconciler *r);
/* Run one pass now. 0 or the first error. */
int reconciler_run(struct reconciler *r);
/* Pure: the VIPs that should be announced (each once, sorted): those with a usable backend. */
size_t reconcile_vips_to_announce(const struct model *m, struct ip_addr **out);

#endif
