/* Symbol visibility for the public API; the library builds with -fvisibility=hidden. */
#ifndef ARPC_EXPORT_H
#define ARPC_EXPORT_H

#if defined(__GNUC__)
#define ARPC_EXPORT __attribute__((visibility("default")))
#else
#define ARPC_EXPORT
#endif

#ifdef __cplusplus
#define ARPC_BEGIN_DECLS extern "C" {
#define ARPC_END_DECLS   }
#else
#define ARPC_BEGIN_DECLS
#define ARPC_END_DECLS
#endif

#endif
