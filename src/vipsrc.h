/*
 * VIP sources: where a load balancer's address comes from.
 *
 * One implementation per file under cloud/ (local IPAM now, cloud elastic IPs
 * later). A source that answers later (a cloud API) returns -EINPROGRESS from
 * allocate and reports through on_result; the load balancer stays pending
 * until then.
 */
#ifndef VIPD_VIPSRC_H
#define VIPD_VIPSRC_H

#include "addr.h"

struct vip_source;

/* Called by an asynchronous source when owner's allocation finished: err 0 and addr, or err < 0. */
typedef void (*vip_result_fn)(void *arg, const char *owner, int err, const struct ip_addr *addr);

struct vip_source_ops {
	const char *name;
	/*
	 * Hands owner (a load balancer uuid) an address of the wanted family
	 * (AF_INET, AF_INET6, or 0 for whichever comes first in the configuration).
	 * 0 and *out set; -EINPROGRESS (answer comes through on_result); -ENOSPC when
	 * exhausted; -EAFNOSUPPORT when no range of that family exists.
	 */
	int (*allocate)(struct vip_source *src, const char *owner, int family, struct ip_addr *out);
	/*
	 * Marks an address as used (state restored at start, or a VIP the user chose).
	 * 0; -EEXIST if already in use; -ERANGE if the source does not manage it
	 * (the caller may still use the address, it just is not the source's).
	 */
	int (*reserve)(struct vip_source *src, const char *owner, const struct ip_addr *addr);
	/* Gives the address back; 0 or -ENOENT. */
	int (*release)(struct vip_source *src, const struct ip_addr *addr);
	/* Whether the source manages this address at all. */
	int (*contains)(const struct vip_source *src, const struct ip_addr *addr);
	/* Stops an allocation still in progress for owner (its load balancer was deleted while
	 * pending): on_result is not called for it, and an address that arrives anyway is given
	 * back. NULL for sources that answer at once. */
	void (*cancel)(struct vip_source *src, const char *owner);
	/* Addresses in use and the total the source can hand out (UINT64_MAX for "very many"). */
	void (*usage)(const struct vip_source *src, uint64_t *used, uint64_t *total);
	/* Why owner's allocation is still in progress, in words for the API, or NULL. NULL
	 * for sources that answer at once. */
	const char *(*pending_reason)(const struct vip_source *src, const char *owner);
	/* Reads again, in the background, what the source learnt from outside at start and may
	 * have changed since (Equinix Metal: the device's BGP neighbours); never blocks, does
	 * nothing while a read is under way or before the start-up got that far. vipd calls it
	 * on SIGHUP. NULL for sources with nothing to read again. */
	void (*refresh)(struct vip_source *src);
	void (*free)(struct vip_source *src);
};

struct vip_source {
	const struct vip_source_ops *ops;
	vip_result_fn on_result;
	void *on_result_arg;
};

#endif
