#include "xdp.h"
SEC("xdp") int arith(struct xdp_md *ctx)
{
	PACKET(ctx, 16);
	u32 a = *(u32 *)data, b = *(u32 *)(data + 8);
	u32 x = (a * 3 + b) ^ (a >> 2);
	if (x > 1000 && (b & 4))
		return 1;
	return x % 7 == 0 ? 2 : 3;
}
