/* SPDX-License-Identifier: MIT */
#ifndef GLOBALALLOC_VERSION_H
#define GLOBALALLOC_VERSION_H

#define GA_VERSION_MAJOR 0
#define GA_VERSION_MINOR 1
#define GA_VERSION_PATCH 0
/* (major * 10000 + minor * 100 + patch), comparable with ga_version_number(). */
#define GA_VERSION_HEX (GA_VERSION_MAJOR * 10000 + GA_VERSION_MINOR * 100 + GA_VERSION_PATCH)

#endif
