#include "xdp.h"
SEC("xdp") int calls(struct xdp_md *ctx)
{
	PACKET(ctx, 16);
	u64 a = *(u64 *)data + 1, b = *(u64 *)(data + 8) * 3;
	u64 t0 = bpf_ktime_get_ns();
	u64 d = a ^ b;
	u32 r = bpf_get_prandom_u32();
	u64 t1 = bpf_ktime_get_ns();
	return (a + b + d + r + (t1 - t0)) & 3;
}
