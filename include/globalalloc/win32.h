/* SPDX-License-Identifier: MIT */
/*
 * The Win32 global/local heap on POSIX: GlobalAlloc and friends with Windows' types, flags,
 * return values and GetLastError codes (see docs/ and the README for the behaviour).
 *
 * If the real <windows.h> was included first, this header declares nothing, so the two never
 * collide.
 */
#ifndef GLOBALALLOC_WIN32_H
#define GLOBALALLOC_WIN32_H

#include "../globalalloc.h"

#if !defined(_WINDOWS_) && !defined(_WINBASE_)

#ifdef __cplusplus
extern "C" {
#endif

/* ---- types (LP64: DWORD/UINT/BOOL stay 32-bit) ----------------------------------------- */
typedef void *HANDLE;
typedef HANDLE HGLOBAL;
typedef HANDLE HLOCAL;
typedef void *LPVOID;
typedef const void *LPCVOID;
typedef size_t SIZE_T;
typedef unsigned int UINT;
typedef uint32_t DWORD;
typedef int BOOL;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* ---- GlobalAlloc flags ----------------------------------------------------------------- */
#define GMEM_FIXED          0x0000
#define GMEM_MOVEABLE       0x0002
#define GMEM_NOCOMPACT      0x0010
#define GMEM_NODISCARD      0x0020
#define GMEM_ZEROINIT       0x0040
#define GMEM_MODIFY         0x0080
#define GMEM_DISCARDABLE    0x0100
#define GMEM_NOT_BANKED     0x1000
#define GMEM_LOWER          GMEM_NOT_BANKED
#define GMEM_SHARE          0x2000
#define GMEM_DDESHARE       0x2000
#define GMEM_NOTIFY         0x4000
#define GMEM_VALID_FLAGS    0x7F72
#define GMEM_INVALID_HANDLE 0x8000
#define GMEM_DISCARDED      0x4000
#define GMEM_LOCKCOUNT      0x00FF
#define GHND                (GMEM_MOVEABLE | GMEM_ZEROINIT)
#define GPTR                (GMEM_FIXED | GMEM_ZEROINIT)

/* ---- LocalAlloc flags ------------------------------------------------------------------ */
#define LMEM_FIXED          0x0000
#define LMEM_MOVEABLE       0x0002
#define LMEM_NOCOMPACT      0x0010
#define LMEM_NODISCARD      0x0020
#define LMEM_ZEROINIT       0x0040
#define LMEM_MODIFY         0x0080
#define LMEM_DISCARDABLE    0x0F00
#define LMEM_VALID_FLAGS    0x0F72
#define LMEM_INVALID_HANDLE 0x8000
#define LMEM_DISCARDED      0x4000
#define LMEM_LOCKCOUNT      0x00FF
#define LHND                (LMEM_MOVEABLE | LMEM_ZEROINIT)
#define LPTR                (LMEM_FIXED | LMEM_ZEROINIT)
#define NONZEROLHND         LMEM_MOVEABLE
#define NONZEROLPTR         LMEM_FIXED

/* ---- error codes (winerror.h values) --------------------------------------------------- */
#define NO_ERROR                0L
#define ERROR_SUCCESS           0L
#define ERROR_ACCESS_DENIED     5L
#define ERROR_INVALID_HANDLE    6L
#define ERROR_NOT_ENOUGH_MEMORY 8L
#define ERROR_OUTOFMEMORY       14L
#define ERROR_INVALID_PARAMETER 87L
#define ERROR_INVALID_NAME      123L
#define ERROR_DISCARDED         157L
#define ERROR_NOT_LOCKED        158L
#define ERROR_NOACCESS          998L

/* ---- the global heap ------------------------------------------------------------------- */
GA_API HGLOBAL GlobalAlloc(UINT uFlags, SIZE_T dwBytes);
GA_API HGLOBAL GlobalReAlloc(HGLOBAL hMem, SIZE_T dwBytes, UINT uFlags);
GA_API HGLOBAL GlobalFree(HGLOBAL hMem);
GA_API LPVOID GlobalLock(HGLOBAL hMem);
GA_API BOOL GlobalUnlock(HGLOBAL hMem);
GA_API SIZE_T GlobalSize(HGLOBAL hMem);
GA_API UINT GlobalFlags(HGLOBAL hMem);
GA_API HGLOBAL GlobalHandle(LPCVOID pMem);
/* The SDK's macro, as a function: exactly GlobalReAlloc(h, 0, GMEM_MOVEABLE). */
GA_API HGLOBAL GlobalDiscard(HGLOBAL hMem);

/* ---- the local heap (same heap, LMEM_* flags) ------------------------------------------ */
GA_API HLOCAL LocalAlloc(UINT uFlags, SIZE_T uBytes);
GA_API HLOCAL LocalReAlloc(HLOCAL hMem, SIZE_T uBytes, UINT uFlags);
GA_API HLOCAL LocalFree(HLOCAL hMem);
GA_API LPVOID LocalLock(HLOCAL hMem);
GA_API BOOL LocalUnlock(HLOCAL hMem);
GA_API SIZE_T LocalSize(HLOCAL hMem);
GA_API UINT LocalFlags(HLOCAL hMem);
GA_API HLOCAL LocalHandle(LPCVOID pMem);
/* The SDK's macro, as a function: exactly LocalReAlloc(h, 0, LMEM_MOVEABLE). */
GA_API HLOCAL LocalDiscard(HLOCAL hMem);

/* ---- per-thread last error ------------------------------------------------------------- */
GA_API DWORD GetLastError(void);
GA_API void SetLastError(DWORD dwErrCode);

#ifdef __cplusplus
}
#endif

#endif /* !_WINDOWS_ */
#endif /* GLOBALALLOC_WIN32_H */
