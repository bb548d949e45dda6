/* SPDX-License-Identifier: MIT */
/*
 * Size classes: 16-byte steps up to 128 bytes, then four classes per power of two
 * (5/4, 6/4, 7/4, 8/4 of the lower bound), up to GA_LARGE_MAX. Every class size is a multiple of
 * 16, so every block is 16-aligned; the worst-case internal waste above 128 bytes is 20%.
 * ga__size_class() (engine.h) computes the class with one count-leading-zeros; these tables are
 * its inverse and the direct-slot map. Generated once and checked by tests/test_engine.c.
 */
#include "engine/engine_internal.h"

const uint32_t ga__class_size[GA_CLASS_COUNT] = {
    16, 32, 48, 64, 80, 96, 112, 128,
    160, 192, 224, 256, 320, 384, 448, 512,
    640, 768, 896, 1024, 1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192,
    10240, 12288, 14336, 16384, 20480, 24576, 28672, 32768,
    40960, 49152, 57344, 65536, 81920, 98304, 114688, 131072,
    163840, 196608, 229376, 262144, 327680, 393216, 458752, 524288,
};

/* (size + 15) / 16 -> class, for sizes up to GA_DIRECT_MAX. */
const uint8_t ga__direct_class[GA_DIRECT_SLOTS] = {
    0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11,
    11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15,
    15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17,
    17, 18, 18, 18, 18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19,
    19,
};

int ga__engine_class_of(size_t block_size)
{
    return block_size <= GA_LARGE_MAX ? (int)ga__size_class(block_size) : -1;
}
