#include "xdp.h"
SEC("xdp") int loop(struct xdp_md *ctx)
{
	PACKET(ctx, 16);
	u64 limit = *(u64 *)data, step = *(u64 *)(data + 8), total = 0;
	#pragma clang loop unroll(disable)
	for (u64 i = 0; i < 16; i++) {
		if (i == limit)
			break;
		if (i & 1)
			continue;
		total += i * step;
	}
	return total & 3;
}
