/*
 * rnnx_version.h: the version of the rnnx C library.
 *
 * The macros give the version compiled against; rnnx_version() the version of
 * the library linked at run time.  A change of MAJOR breaks the API or ABI.
 */
#ifndef RNNX_VERSION_H
#define RNNX_VERSION_H

#define RNNX_VERSION_MAJOR 0
#define RNNX_VERSION_MINOR 1
#define RNNX_VERSION_PATCH 0

/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define RNNX_VERSION_NUMBER \
    (RNNX_VERSION_MAJOR * 10000 + RNNX_VERSION_MINOR * 100 + RNNX_VERSION_PATCH)

#define RNNX_VERSION_STR_(x) #x
#define RNNX_VERSION_STR(x) RNNX_VERSION_STR_(x)
#define RNNX_VERSION_STRING                                                  \
    RNNX_VERSION_STR(RNNX_VERSION_MAJOR) "." RNNX_VERSION_STR(RNNX_VERSION_MINOR) "." \
    RNNX_VERSION_STR(RNNX_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* "MAJOR.MINOR.PATCH" of the linked library. */
const char* rnnx_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RNNX_VERSION_H */
