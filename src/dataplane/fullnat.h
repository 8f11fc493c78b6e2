/*
 * fullnat's source rewrite for the IPVS plane. IPVS forwards a fullnat load balancer by masq;
 * this module masquerades those connections in an nftables table vipd owns, "inet vipd",
 * through libnftables. The table holds one set per family of fullnat services (address .
 * protocol . port) and a nat chain at postrouting that masquerades every connection whose
 * ORIGINAL destination is in a set: with net.ipv4.vs.conntrack=1 IPVS keeps the client's
 * tuple as the conntrack entry's original direction, so the match survives IPVS rewriting
 * the destination to a backend. No packet or connection mark is used (kube-proxy and others
 * own those bits).
 *
 * Every change replaces the whole table in one transaction (nftables applies a batch
 * atomically; connections already masqueraded keep their binding in conntrack). An
 * unchanged list makes no call at all; an empty list deletes the table. No other table is
 * read or written.
 */
#ifndef VIPD_FULLNAT_H
#define VIPD_FULLNAT_H

#include <stddef.h>
#include <sys/types.h>

#include "dataplane/ipvs_msg.h"

#define FULLNAT_FAMILY "inet"
#define FULLNAT_TABLE "vipd"

struct fullnat;

/*
 * Sorts s (IPv4 before IPv6, then address, protocol, port) and drops repeats, in place.
 * Returns the number left.
 */
size_t fullnat_services_sort(struct ipvs_service_key *s, size_t n);

/*
 * The nft script that makes the table hold exactly s[0..n) (in that order: sort first), or
 * deletes it when n is 0, written NUL-terminated into buf. Its length without the NUL, or
 * -ENOSPC when it does not fit in size bytes. Pure.
 */
ssize_t fullnat_render(const struct ipvs_service_key *s, size_t n, char *buf, size_t size);

/* A libnftables context; the table is left as it is until the first sync. 0 or -ENOMEM. */
int fullnat_new(struct fullnat **out);

/*
 * Makes the table hold exactly the services s[0..n) (any order, repeats allowed), or
 * removes it when n is 0. The first sync always writes (or deletes) the table: it may be a
 * leftover of an earlier run. 0, or -errno from libnftables (its message logged once).
 */
int fullnat_sync(struct fullnat *f, const struct ipvs_service_key *s, size_t n);

/* Services in the table as last written (0 when it is absent or unknown). */
size_t fullnat_services(const struct fullnat *f);
/* Calls into libnftables since creation: a sync that changes nothing makes none. */
size_t fullnat_calls(const struct fullnat *f);

/* Frees the context; the table stays as it is. */
void fullnat_free(struct fullnat *f);

#endif
