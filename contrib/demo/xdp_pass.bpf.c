// SPDX-License-Identifier: GPL-2.0
/*
 * Passes every frame. On a veth, frames sent out with XDP_TX or bpf_redirect() by vipd's
 * program on the other end are delivered only if this end has an XDP program too; the
 * demo's and tests' namespaces put this one there. Real NICs need nothing of the kind.
 */
#include <linux/bpf.h>

__attribute__((section("xdp"), used)) int xdp_pass(struct xdp_md *ctx)
{
	(void)ctx;
	return XDP_PASS;
}

__attribute__((section("license"), used)) char LICENSE[] = "GPL";
