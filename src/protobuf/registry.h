/*
 * The services and .proto files a server knows (for gRPC server reflection,
 * reflection.c): one registry per server, kept by the server
 * (arpc__server_set_registry) and freed when it is destroyed.
 *
 * Files are told apart by name: the same import embedded by two generated
 * files is one file here, the first registered.  Every file a registered
 * service needs (its own and everything it imports, directly or not) is
 * registered with it, and every symbol of those files is indexed.
 *
 * Written only before the server listens, by the thread that sets the server
 * up; read afterwards by handlers on every loop without locks (the server's
 * start orders the writes before them, as it does for its method table).
 */
#ifndef ARPC_PROTOBUF_REGISTRY_H
#define ARPC_PROTOBUF_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <arpc/protobuf.h>

/* Files nested deeper than this below a service's own (imports of imports of ...) are
 * refused: protoc has no limit, but no real tree comes near, and a hand-built cycle of
 * deps must not recurse without end. */
#define ARPC__PB_MAX_IMPORT_DEPTH 64

typedef struct arpc__pb_registry arpc__pb_registry;

/*
 * Records `svc` (borrowed for the server's life, as everything it points to) and its files
 * for reflection.  A service whose name is registered already is left as it was.  A
 * service without a file (built by hand, with no descriptor) is listed by name only.
 * @return 0, ARPC_EINVAL (NULL, no name, a file without a name, imports nested
 *         deeper than ARPC__PB_MAX_IMPORT_DEPTH or in a cycle, or the server is listening
 *         and has no registry yet) or ARPC_ENOMEM.  On error the service is not listed;
 *         files of it registered before the error stay, complete (a file is registered
 *         after all it imports) and harmless.
 * Thread: the one setting the server up, before listening.  Suspends: no.
 */
int arpc__pb_registry_add(arpc_server *srv, const arpc_pb_service *svc);

/* True if a service named `name` is listed.  Thread: as arpc__pb_registry_add. */
bool arpc__pb_registry_lists(arpc_server *srv, const char *name);

/*
 * Takes back the arpc__pb_registry_add() that listed `svc` last (arpc_pb_register, whose
 * methods then failed to register): the service is no longer listed; its files stay,
 * harmless.  The caller makes sure that add listed it (arpc__pb_registry_lists() was
 * false before).  Anything else is a no-op.
 * Thread: as arpc__pb_registry_add.  Suspends: no.
 */
void arpc__pb_registry_forget(arpc_server *srv, const arpc_pb_service *svc);

/*
 * The server's registry, created when there is none yet.
 * @return 0, ARPC_EINVAL (none yet and the server is listening) or ARPC_ENOMEM.
 * Thread: as arpc__pb_registry_add.  Suspends: no.
 */
int arpc__pb_registry_get(arpc_server *srv, arpc__pb_registry **out);

/* Reads, for reflection.c and tests.  Thread: any, once the server listens (or on the
 * setting-up thread before).  Suspends: no. */

size_t arpc__pb_registry_service_count(const arpc__pb_registry *reg);
/* In the order registered; `i` < the count. */
const arpc_pb_service *arpc__pb_registry_service(const arpc__pb_registry *reg, size_t i);

size_t arpc__pb_registry_file_count(const arpc__pb_registry *reg);
/* In the order registered (every file after those it imports); `i` < the count. */
const arpc_pb_file *arpc__pb_registry_file(const arpc__pb_registry *reg, size_t i);

/* The file named `name` (`len` bytes, no NUL needed), and its index, or -1. */
long arpc__pb_registry_find_file(const arpc__pb_registry *reg, const char *name, size_t len);

/* The file defining `symbol` ("pkg.Message", "pkg.Service.Method"), or -1. */
long arpc__pb_registry_find_symbol(const arpc__pb_registry *reg, const char *symbol, size_t len);

/*
 * The indexes of file `i` and of every file it imports, directly or not, each once, `i`
 * first, then its imports, then theirs (grpc's C++ server also sends the file before its
 * imports): at most the file count, written to `out`.  `out` and `seen` (scratch) must
 * each hold the file count of entries.
 * @return how many were written.
 */
size_t arpc__pb_registry_closure(const arpc__pb_registry *reg, size_t i, size_t *out,
                                 unsigned char *seen);

/* True once arpc_server_enable_reflection() has succeeded.  Thread: any. */
bool arpc__pb_registry_reflection_claimed(const arpc__pb_registry *reg);

/* Marks reflection as served by this server's registry.
 * @return 0, or ARPC_EINVAL when it was already. */
int arpc__pb_registry_claim_reflection(arpc__pb_registry *reg);

#endif
