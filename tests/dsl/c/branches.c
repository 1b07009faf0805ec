#include "xdp.h"
SEC("xdp") int branches(struct xdp_md *ctx)
{
	PACKET(ctx, 16);
	u64 x = *(u64 *)data, y = *(u64 *)(data + 8);
	if (x < 10) {
		if (y < 10)
			return 1;
		if (y == 100)
			return 2;
		return 3;
	}
	if (x > 1000 || y == 7)
		return 4;
	return 5;
}
