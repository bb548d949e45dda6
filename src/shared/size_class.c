/* SPDX-License-Identifier: MIT */
/*
 * Shared heaps: size classes and the geometry of SMALL pages. The class sizes are part of the
 * format (SHM_CLASS_SIZES in layout.h); the geometry (where block 0 starts, blocks per page) is
 * computed from them by the rule layout.h states, never read from the segment, and a
 * reciprocal per class turns an offset into a block index without a division.
 */
#include "shared/shared_internal.h"

const uint32_t ga__shm_class_size[SHM_NCLASS] = SHM_CLASS_SIZES;

shm_geometry_t ga__shm_geo;

/* Runs at load time (src/init.c), before any heap can be opened. */
void ga__shared_init(void)
{
    for (unsigned c = 0; c < SHM_NCLASS; c++) {
        uint32_t bs = ga__shm_class_size[c], nb = (uint32_t)(SHM_PAGE / (bs + 1)), hdr;
        for (;; nb--) {
            hdr = (nb + 15) & ~15u;
            if (hdr + (uint64_t)nb * bs <= SHM_PAGE) break;
        }
        ga__shm_geo.hdr[c] = hdr;
        ga__shm_geo.count[c] = nb;
        ga__shm_geo.recip[c] = ((uint64_t)1 << 32) / bs + 1;
    }
}
