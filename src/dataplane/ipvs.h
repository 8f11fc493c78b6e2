/*
 * The IPVS data plane: the kernel's "IPVS" generic-netlink family driven through libnl-genl.
 * Each sync dumps the services (and the destinations of vipd's own), compares them with the
 * model and sends only the NEW/SET/DEL messages that close the gap.
 *
 * vipd never touches a service it did not create. The keys it created are recorded in
 * STATE_DIR/ipvs-services (written before the service is, so a crash cannot leave a service
 * of ours that we would take for foreign); a load balancer whose key is held by a foreign
 * service is logged once as a conflict and left alone.
 *
 * Mapping: scheduler mh, rr, wrr, lc, wlc, sh, dh by name; fullnat and nat forward by masq,
 * dsr by droute, tunnel by ipip; a backend's weight is its effective weight, so a drained or
 * failed backend stays with weight 0 and keeps its connections (IPVS's drain); LOCAL backends
 * are left out; persistence is rounded up to whole seconds.
 *
 * fullnat's SNAT lives in the nftables table "inet vipd" (fullnat.c: a set of fullnat
 * services per family, masqueraded at postrouting by their connections' original
 * destination). Each sync writes it with the new fullnat services added before the IPVS
 * changes and the removed ones dropped after them, so no service forwards without its SNAT;
 * cleanup removes it after the services, and keeps it when cleanup_on_exit is off.
 */
#ifndef VIPD_IPVS_H
#define VIPD_IPVS_H

#include <stdbool.h>
#include <stddef.h>

#include "dataplane/dataplane.h"

struct ipvs_options {
	const char *state_dir;  /* where ipvs-services is kept; required */
	bool cleanup_on_exit;   /* cleanup() deletes vipd's services; false: it keeps them */
	bool probing;           /* --dataplane auto asking: no IPVS is news, not an error */
};

/*
 * Connects to the IPVS family and sets the sysctls IPVS forwarding needs (logged when
 * changed). 0 and *out, -EPROTONOSUPPORT when the kernel has no IPVS, or -errno (logged).
 */
int ipvs_plane_new(const struct ipvs_options *o, struct dataplane **out);

/* Change requests (NEW/SET/DEL) sent since creation; dumps are not counted. */
size_t ipvs_plane_messages(const struct dataplane *dp);
/* Dump requests sent since creation (one for the services, one per service's destinations). */
size_t ipvs_plane_dumps(const struct dataplane *dp);

#endif
