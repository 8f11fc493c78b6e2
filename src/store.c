#include "store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"


/* "192.0.2.1:80" or "[2001:db8::1]:80"; buf holds IP_ADDR_STRLEN + 8 bytes. */
#define ENDPOINT_STRLEN (IP_ADDR_STRLEN + 8)

static const char *endpoint_str(const struct ip_addr *a, uint16_t port, char *buf)
{
	char ip[IP_ADDR_STRLEN];

	snprintf(buf, ENDPOINT_STRLEN, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 ip_addr_str(a, ip), port);
	return buf;
}

/* Another load balancer than self serving vip:port/protocol, or NULL. */
static struct lb *listener_other(const struct model *m, const struct lb *self,
				 const struct ip_addr *vip, uint16_t port, enum lb_protocol proto)
{
	for (size_t i = 0; i < model_count(m); i++) {
		struct lb *o = model_at(m, i);

		if (strcmp(o->uuid, self->uuid) != 0 && o->port == port &&
		    o->protocol == proto && ip_addr_equal(&o->vip, vip))
			return o;
	}
	return NULL;
}

static int check_listener(const struct store *s, const struct lb *lb, char *err, size_t errlen)
{
	char ep[ENDPOINT_STRLEN];
	const struct lb *o;

	if (!ip_addr_is_set(&lb->vip))
		return 0;
	o = listener_other(s->model, lb, &lb->vip, lb->port, lb->protocol);
	if (!o)
		return 0;
	errbuf_printf(err, errlen, "port: %s/%s is already used by load balancer %s",
		  endpoint_str(&lb->vip, lb->port, ep), lb_protocol_name(lb->protocol), o->uuid);
	return -EEXIST;
}

/*
 * Claims a VIP the user named. An address inside the source's ranges is
 * reserved there so it is never handed out to someone else; an address another
 * load balancer already holds is shared (different port or protocol).
 * *reserved says whether this call took it, i.e. whether an undo must release it.
 */
static int vip_claim(struct store *s, const struct lb *lb, bool *from_source, bool *reserved,
		     char *err, size_t errlen)
{
	char ip[IP_ADDR_STRLEN];
	int r;

	*from_source = *reserved = false;
	if (!s->vips || !s->vips->ops->contains(s->vips, &lb->vip))
		return 0;
	r = s->vips->ops->reserve(s->vips, lb->uuid, &lb->vip);
	if (r == 0) {
		*from_source = *reserved = true;
		return 0;
	}
	if (r == -ERANGE)
		return 0;
	if (r == -EEXIST && model_vip_users(s->model, &lb->vip) > 0) {
		*from_source = true;
		return 0;
	}
	if (r == -EEXIST) {
		errbuf_printf(err, errlen, "vip: %s is already allocated", ip_addr_str(&lb->vip, ip));
		return -EEXIST;
	}
	errbuf_printf(err, errlen, "vip: cannot reserve %s: %s", ip_addr_str(&lb->vip, ip),
		  strerror(-r));
	return r;
}

/* Gives a source's address back once no load balancer in the model uses it. */
static void vip_drop(struct store *s, const struct ip_addr *vip, bool from_source)
{
	char ip[IP_ADDR_STRLEN];
	int r;

	if (!s->vips || !from_source || !ip_addr_is_set(vip) || model_vip_users(s->model, vip))
		return;
	r = s->vips->ops->release(s->vips, vip);
	if (r)
		log_warn("msg=\"cannot release vip\" vip=%s source=%s err=\"%s\"",
			 ip_addr_str(vip, ip), s->vips->ops->name, strerror(-r));
}

static int vip_allocate(struct store *s, struct lb *lb, bool *reserved, char *err, size_t errlen)
{
	struct ip_addr a;
	int r;

	*reserved = false;
	if (!s->vips) {
		errbuf_printf(err, errlen, "vip: required, no --ipam-range configured");
		return -EINVAL;
	}
	memset(&a, 0, sizeof(a));
	r = s->vips->ops->allocate(s->vips, lb->uuid, 0, &a);
	switch (r) {
	case 0:
		lb->vip = a;
		lb->vip_from_source = true;
		lb->status = LB_STATUS_ACTIVE;
		*reserved = true;
		return 0;
	case -EINPROGRESS:
		memset(&lb->vip, 0, sizeof(lb->vip));
		lb->vip_from_source = true;
		lb->status = LB_STATUS_PENDING;
		return 0;
	case -ENOSPC:
		errbuf_printf(err, errlen, "vip: no free address left in the configured ranges");
		return -ENOSPC;
	case -EAFNOSUPPORT:
		errbuf_printf(err, errlen, "vip: required, no --ipam-range configured");
		return -EINVAL;
	default:
		errbuf_printf(err, errlen, "vip: cannot allocate an address: %s", strerror(-r));
		return r;
	}
}

static int persist_lb(struct store *s, const struct lb *lb, char *err, size_t errlen)
{
	int r;

	if (!s->state)
		return 0;
	r = state_put_lb(s->state, lb);
	if (!r)
		return 0;
	errbuf_printf(err, errlen, "state: cannot write the state file (%s); nothing was changed",
		  strerror(-r));
	return -EIO;
}

static void committed(struct store *s)
{
	model_touch(s->model);
	if (s->state)
		state_maybe_compact(s->state, s->model);
	if (s->changed)
		s->changed(s->changed_arg);
}

static struct lb *find_lb(const struct store *s, const char *uuid, char *err, size_t errlen)
{
	struct lb *lb = model_find(s->model, uuid);

	if (!lb)
		errbuf_printf(err, errlen, "load balancer %s not found", uuid);
	return lb;
}

/* Whether lb is the one the model holds under its uuid (callers pass model pointers). */
static int check_in_model(const struct store *s, const struct lb *lb, char *err, size_t errlen)
{
	if (model_find(s->model, lb->uuid) == lb)
		return 0;
	errbuf_printf(err, errlen, "load balancer %s not found", lb->uuid);
	return -ENOENT;
}

int store_create_lb(struct store *s, struct lb *lb, char *err, size_t errlen)
{
	struct ip_addr old_vip = lb->vip;
	bool old_from_source = lb->vip_from_source, reserved;
	enum lb_status old_status = lb->status;
	const struct lb *o = model_find(s->model, lb->uuid);
	int r;

	if (o) {
		errbuf_printf(err, errlen, "uuid: %s is already used by load balancer \"%s\"", lb->uuid,
			  o->name ? o->name : "");
		return -EEXIST;
	}
	if (ip_addr_is_set(&lb->vip)) {
		r = check_listener(s, lb, err, errlen);
		if (r)
			return r;
		r = vip_claim(s, lb, &lb->vip_from_source, &reserved, err, errlen);
		lb->status = LB_STATUS_ACTIVE;
	} else {
		r = vip_allocate(s, lb, &reserved, err, errlen);
	}
	if (r)
		goto restore_fields;
	r = model_add(s->model, lb);
	if (r) {
		errbuf_printf(err, errlen, "cannot add load balancer: %s", strerror(-r));
		goto release;
	}
	r = persist_lb(s, lb, err, errlen);
	if (r) {
		model_take(s->model, lb->uuid);
		goto release;
	}
	committed(s);
	return 0;
release:
	if (reserved)
		s->vips->ops->release(s->vips, &lb->vip);
restore_fields:
	lb->vip = old_vip;
	lb->vip_from_source = old_from_source;
	lb->status = old_status;
	return r;
}

/* Health and drain start are runtime knowledge: a backend that stays (same uuid, same
 * address) keeps them. Also through a change of its check: a backend known to be down
 * stays out until the new check says otherwise, rather than taking traffic meanwhile. */
static void keep_health(struct lb *to, struct lb *from)
{
	for (size_t i = 0; i < to->n_backends; i++) {
		struct backend *b = &to->backends[i], *old = lb_find_backend(from, b->uuid);

		if (!old || old->port != b->port || !ip_addr_equal(&old->ip, &b->ip))
			continue;
		b->health = old->health;
		if (b->drained && old->drained)
			b->drain_since = old->drain_since;
	}
}

static void swap_lb_contents(struct lb *a, struct lb *b)
{
	struct lb t = *a;

	*a = *b;
	*b = t;
}

int store_update_lb(struct store *s, struct lb *lb, char *err, size_t errlen)
{
	struct lb *cur = find_lb(s, lb->uuid, err, errlen);
	struct ip_addr old_vip = lb->vip;
	bool old_from_source = lb->vip_from_source, vip_changed = false, reserved = false;
	enum lb_status old_status = lb->status;
	int r;

	if (!cur)
		return -ENOENT;
	if (!ip_addr_is_set(&lb->vip) || ip_addr_equal(&lb->vip, &cur->vip)) {
		lb->vip = cur->vip;
		lb->vip_from_source = cur->vip_from_source;
		lb->status = cur->status;
	} else {
		vip_changed = true;
		lb->status = LB_STATUS_ACTIVE;
	}
	r = check_listener(s, lb, err, errlen);
	if (r)
		goto restore_fields;
	if (vip_changed) {
		r = vip_claim(s, lb, &lb->vip_from_source, &reserved, err, errlen);
		if (r)
			goto restore_fields;
	}
	keep_health(lb, cur);
	/* In place, so pointers to the model's object stay valid. */
	swap_lb_contents(cur, lb);
	r = persist_lb(s, cur, err, errlen);
	if (r) {
		swap_lb_contents(cur, lb);
		if (reserved)
			s->vips->ops->release(s->vips, &lb->vip);
		goto restore_fields;
	}
	if (vip_changed)
		vip_drop(s, &lb->vip, lb->vip_from_source);
	lb_free(lb);
	committed(s);
	return 0;
restore_fields:
	lb->vip = old_vip;
	lb->vip_from_source = old_from_source;
	lb->status = old_status;
	return r;
}

int store_delete_lb(struct store *s, const char *uuid, char *err, size_t errlen)
{
	struct lb *lb = find_lb(s, uuid, err, errlen);
	int r;

	if (!lb)
		return -ENOENT;
	/* Journal first: once the delete is on disk nothing below can fail. */
	if (s->state) {
		r = state_del_lb(s->state, lb->uuid);
		if (r) {
			errbuf_printf(err, errlen,
				  "state: cannot write the state file (%s); nothing was changed",
				  strerror(-r));
			return -EIO;
		}
	}
	model_take(s->model, lb->uuid);
	if (lb->status == LB_STATUS_PENDING && s->vips && s->vips->ops->cancel)
		s->vips->ops->cancel(s->vips, lb->uuid);
	vip_drop(s, &lb->vip, lb->vip_from_source);
	lb_free(lb);
	committed(s);
	return 0;
}

void store_vip_result(struct store *s, const char *owner, int err, const struct ip_addr *addr)
{
	struct lb *lb = model_find(s->model, owner);
	char ip[IP_ADDR_STRLEN], msg[256];
	int r;

	if (err) {
		if (lb)
			log_warn("msg=\"load balancer stays pending\" uuid=%s source=%s err=\"%s\"",
				 owner, s->vips->ops->name, strerror(-err));
		return;
	}
	ip_addr_str(addr, ip);
	if (!lb || lb->status != LB_STATUS_PENDING) {
		log_warn("msg=\"giving back an address nobody waits for\" owner=%s vip=%s", owner, ip);
		s->vips->ops->release(s->vips, addr);
		return;
	}
	lb->vip = *addr;
	lb->vip_from_source = true;
	lb->status = LB_STATUS_ACTIVE;
	r = persist_lb(s, lb, msg, sizeof(msg));
	if (r) {
		/* The source keeps the address for owner: the next restore finds it again. */
		log_error("msg=\"load balancer stays pending\" uuid=%s vip=%s err=\"%s\"", owner, ip,
			  msg);
		memset(&lb->vip, 0, sizeof(lb->vip));
		lb->status = LB_STATUS_PENDING;
		return;
	}
	log_info("msg=\"pending load balancer got its vip\" uuid=%s vip=%s source=%s", owner, ip,
		 s->vips->ops->name);
	committed(s);
}

int store_add_backend(struct store *s, struct lb *lb, const struct backend *b, char *err,
		      size_t errlen)
{
	char ep[ENDPOINT_STRLEN];
	const struct backend *o;
	int r;

	r = check_in_model(s, lb, err, errlen);
	if (r)
		return r;
	if (!ip_addr_is_set(&b->ip)) {
		errbuf_printf(err, errlen, "ip: required");
		return -EINVAL;
	}
	if (b->port == 0) {
		errbuf_printf(err, errlen, "port: must be 1..65535");
		return -EINVAL;
	}
	if (b->weight < 1 || b->weight > 65535) {
		errbuf_printf(err, errlen, "weight: must be 1..65535");
		return -EINVAL;
	}
	o = lb_find_backend_addr(lb, &b->ip, b->port);
	if (o) {
		errbuf_printf(err, errlen, "backend %s already exists (uuid %s)",
			  endpoint_str(&b->ip, b->port, ep), o->uuid);
		return -EEXIST;
	}
	if (lb_find_backend(lb, b->uuid)) {
		errbuf_printf(err, errlen, "uuid: backend %s already exists", b->uuid);
		return -EEXIST;
	}
	r = lb_add_backend(lb, b);
	if (r) {
		errbuf_printf(err, errlen, "cannot add backend: %s", strerror(-r));
		return r;
	}
	r = persist_lb(s, lb, err, errlen);
	if (r) {
		lb_remove_backend(lb, b->uuid);
		return r;
	}
	committed(s);
	return 0;
}

int store_remove_backend(struct store *s, struct lb *lb, const char *backend_uuid, char *err,
			 size_t errlen)
{
	struct backend *b, saved;
	size_t at;
	int r;

	r = check_in_model(s, lb, err, errlen);
	if (r)
		return r;
	b = lb_find_backend(lb, backend_uuid);
	if (!b) {
		errbuf_printf(err, errlen, "backend %s not found", backend_uuid);
		return -ENOENT;
	}
	saved = *b;
	at = (size_t)(b - lb->backends);
	lb_remove_backend(lb, backend_uuid);
	r = persist_lb(s, lb, err, errlen);
	if (r) {
		/* Removing left the capacity: put it back where it was. */
		memmove(&lb->backends[at + 1], &lb->backends[at],
			(lb->n_backends - at) * sizeof(*lb->backends));
		lb->backends[at] = saved;
		lb->n_backends++;
		return r;
	}
	committed(s);
	return 0;
}

int store_set_drained(struct store *s, struct lb *lb, struct backend *b, bool drained,
		      char *err, size_t errlen)
{
	int r;

	r = check_in_model(s, lb, err, errlen);
	if (r)
		return r;
	if (b < lb->backends || b >= lb->backends + lb->n_backends) {
		errbuf_printf(err, errlen, "backend %s not found", b->uuid);
		return -ENOENT;
	}
	if (b->drained == drained)
		return 0;
	b->drained = drained;
	r = persist_lb(s, lb, err, errlen);
	if (r) {
		b->drained = !drained;
		return r;
	}
	b->drain_since = drained ? monotonic_s() : 0;
	committed(s);
	return 0;
}

/* A load balancer left pending (its source had no address, or answers later) tries again. */
static int restore_pending(struct store *s, struct lb *lb)
{
	char err[256], ip[IP_ADDR_STRLEN];
	bool reserved;
	int r;

	r = vip_allocate(s, lb, &reserved, err, sizeof(err));
	if (r) {
		lb->status = LB_STATUS_PENDING;
		log_error("msg=\"load balancer stays pending\" uuid=%s err=\"%s\"", lb->uuid, err);
		return r;
	}
	if (lb->status == LB_STATUS_PENDING)
		return 0;
	r = persist_lb(s, lb, err, sizeof(err));
	if (r) {
		log_error("msg=\"load balancer stays pending\" uuid=%s err=\"%s\"", lb->uuid, err);
		if (reserved)
			s->vips->ops->release(s->vips, &lb->vip);
		memset(&lb->vip, 0, sizeof(lb->vip));
		lb->status = LB_STATUS_PENDING;
		return r;
	}
	log_info("msg=\"pending load balancer got its vip\" uuid=%s vip=%s", lb->uuid,
		 ip_addr_str(&lb->vip, ip));
	return 0;
}

int store_restore(struct store *s)
{
	char ip[IP_ADDR_STRLEN];
	bool persisted = false;
	int first_err = 0;

	for (size_t i = 0; i < model_count(s->model); i++) {
		struct lb *lb = model_at(s->model, i);
		int r;

		if (!ip_addr_is_set(&lb->vip)) {
			r = restore_pending(s, lb);
			if (r && !first_err)
				first_err = r;
			persisted |= !r && lb->status == LB_STATUS_ACTIVE;
			continue;
		}
		lb->status = LB_STATUS_ACTIVE;
		lb->vip_from_source = s->vips && s->vips->ops->contains(s->vips, &lb->vip);
		if (!lb->vip_from_source) {
			if (s->vips)
				log_warn("msg=\"vip %s of lb %s is outside the configured ranges; "
					 "kept\"", ip_addr_str(&lb->vip, ip), lb->uuid);
			continue;
		}
		/* -EEXIST: an earlier load balancer shares this VIP on another port. */
		r = s->vips->ops->reserve(s->vips, lb->uuid, &lb->vip);
		if (r && r != -EEXIST) {
			log_error("msg=\"cannot reserve restored vip\" uuid=%s vip=%s err=\"%s\"",
				  lb->uuid, ip_addr_str(&lb->vip, ip), strerror(-r));
			if (!first_err)
				first_err = r;
		}
	}
	if (persisted && s->state)
		state_maybe_compact(s->state, s->model);
	model_touch(s->model);
	return first_err;
}
