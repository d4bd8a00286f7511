/*
 * The per-server registry of services and .proto files (registry.h).
 *
 * Design notes
 *
 * Identity is by name.  Generated code embeds each file once per generated
 * file that needs it, so the same "google/protobuf/timestamp.proto" can
 * reach us as several objects; the first registered stands for all of them,
 * and a dep is always resolved by name, never by pointer.
 *
 * Failure leaves nothing half done.  A file is appended only after every
 * file it imports is in, and the append (the map insert that makes the file
 * findable) is the last step that can fail; its symbols are indexed before
 * it, pointing at the file object, so a symbol whose file failed to go in is
 * simply not found (find_symbol resolves the file by name), and a retry
 * finds the symbol already there.  So every registered file has its whole
 * import tree and its symbols registered, and the closure walk below never
 * meets an unknown name.
 *
 * Because files go in after their imports, a file's deps all have smaller
 * indexes: the name graph is acyclic, and the closure walk is a plain
 * worklist over indexes with a seen-mark per file.  Cycles in a hand-built
 * object graph are caught at registration by the depth limit.
 *
 * Threads: see registry.h.  Nothing here locks.
 */
#include "protobuf/registry.h"

#include <stdint.h>
#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/map.h"
#include "rpc/server.h"

struct arpc__pb_registry {
    const arpc_pb_service **services; /* in the order registered */
    size_t service_count;
    size_t service_cap;
    const arpc_pb_file **files; /* each after the files it imports */
    size_t file_count;
    size_t file_cap;
    arpc__map service_names; /* name -> the service */
    arpc__map file_names;    /* name -> its index + 1 */
    arpc__map symbols;       /* fully qualified name -> the arpc_pb_file defining it */
    bool reflection;
};

/* Map values hold an index + 1, so that NULL (not found) stays apart from index 0. */
static void *index_value(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static void registry_free(void *p)
{
    arpc__pb_registry *reg = p;
    arpc__map_fini(&reg->service_names);
    arpc__map_fini(&reg->file_names);
    arpc__map_fini(&reg->symbols);
    arpc__free(reg->services);
    arpc__free(reg->files);
    arpc__free(reg);
}

int arpc__pb_registry_get(arpc_server *srv, arpc__pb_registry **out)
{
    arpc__pb_registry *reg = arpc__server_registry(srv);
    if (reg != NULL) {
        *out = reg;
        return 0;
    }
    reg = arpc__calloc(1, sizeof(*reg));
    if (reg == NULL)
        return ARPC_ENOMEM;
    arpc__map_init(&reg->service_names);
    arpc__map_init(&reg->file_names);
    arpc__map_init(&reg->symbols);
    int rc = arpc__server_set_registry(srv, reg, registry_free);
    if (rc < 0) {
        registry_free(reg);
        return rc;
    }
    *out = reg;
    return 0;
}

/* Room for one more pointer in the growing array `items` (of `count`, room for `*cap`):
 * the array, moved when it grew, or NULL when out of memory (`items` is then intact).
 * Typed by the caller: each array keeps its own pointer type. */
static void *room_for_one(void *items, size_t count, size_t *cap)
{
    if (count < *cap)
        return items;
    size_t new_cap = *cap == 0 ? 8 : *cap * 2;
    void *grown = arpc__realloc(items, new_cap * sizeof(void *));
    if (grown != NULL)
        *cap = new_cap;
    return grown;
}

/* Indexes what `f` defines; a name some other file defined first keeps that file. */
static int index_symbols(arpc__pb_registry *reg, const arpc_pb_file *f)
{
    for (size_t i = 0; i < f->symbol_count; i++) {
        const char *sym = f->symbols[i];
        if (sym == NULL || sym[0] == '\0')
            return ARPC_EINVAL;
        int rc = arpc__map_insert(&reg->symbols, sym, strlen(sym), (void *)f);
        if (rc == ARPC_ENOMEM)
            return rc;
    }
    return 0;
}

static int append_file(arpc__pb_registry *reg, const arpc_pb_file *f)
{
    const arpc_pb_file **files = room_for_one(reg->files, reg->file_count, &reg->file_cap);
    if (files == NULL)
        return ARPC_ENOMEM;
    reg->files = files;
    int rc = arpc__map_insert(&reg->file_names, f->name, strlen(f->name), index_value(reg->file_count));
    if (rc < 0)
        return rc;
    reg->files[reg->file_count++] = f;
    return 0;
}

/* Registers `f` after everything it imports (post-order: see the design notes). */
static int add_file(arpc__pb_registry *reg, const arpc_pb_file *f, unsigned depth)
{
    if (f == NULL || f->name == NULL || f->name[0] == '\0' ||
        (f->descriptor == NULL && f->descriptor_len > 0))
        return ARPC_EINVAL;
    if (arpc__pb_registry_find_file(reg, f->name, strlen(f->name)) >= 0)
        return 0;
    if (depth > ARPC__PB_MAX_IMPORT_DEPTH)
        return ARPC_EINVAL;
    for (size_t i = 0; i < f->dep_count; i++) {
        int rc = add_file(reg, f->deps[i], depth + 1);
        if (rc < 0)
            return rc;
    }
    int rc = index_symbols(reg, f);
    return rc < 0 ? rc : append_file(reg, f);
}

/* Lists `svc`; its name is in service_names already when it was forgotten once. */
static int append_service(arpc__pb_registry *reg, const arpc_pb_service *svc, bool named)
{
    const arpc_pb_service **services =
        room_for_one(reg->services, reg->service_count, &reg->service_cap);
    if (services == NULL)
        return ARPC_ENOMEM;
    reg->services = services;
    int rc = 0;
    if (!named)
        rc = arpc__map_insert(&reg->service_names, svc->name, strlen(svc->name), (void *)svc);
    if (rc < 0)
        return rc;
    reg->services[reg->service_count++] = svc;
    return 0;
}

static bool service_listed(const arpc__pb_registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->service_count; i++)
        if (strcmp(reg->services[i]->name, name) == 0)
            return true;
    return false;
}

int arpc__pb_registry_add(arpc_server *srv, const arpc_pb_service *svc)
{
    if (srv == NULL || svc == NULL || svc->name == NULL || svc->name[0] == '\0')
        return ARPC_EINVAL;
    arpc__pb_registry *reg;
    int rc = arpc__pb_registry_get(srv, &reg);
    if (rc < 0)
        return rc;
    bool named = arpc__map_find(&reg->service_names, svc->name, strlen(svc->name)) != NULL;
    if (named && service_listed(reg, svc->name))
        return 0;
    if (svc->file != NULL) {
        rc = add_file(reg, svc->file, 0);
        if (rc < 0)
            return rc;
        /* The service's own name finds its file even if the file's symbol list forgot it. */
        rc = arpc__map_insert(&reg->symbols, svc->name, strlen(svc->name), (void *)svc->file);
        if (rc == ARPC_ENOMEM)
            return rc;
    }
    return append_service(reg, svc, named);
}

bool arpc__pb_registry_lists(arpc_server *srv, const char *name)
{
    const arpc__pb_registry *reg = arpc__server_registry(srv);
    return reg != NULL && service_listed(reg, name);
}

void arpc__pb_registry_forget(arpc_server *srv, const arpc_pb_service *svc)
{
    arpc__pb_registry *reg = arpc__server_registry(srv);
    if (reg != NULL && reg->service_count > 0 && reg->services[reg->service_count - 1] == svc)
        reg->service_count--;
}

size_t arpc__pb_registry_service_count(const arpc__pb_registry *reg)
{
    return reg->service_count;
}

const arpc_pb_service *arpc__pb_registry_service(const arpc__pb_registry *reg, size_t i)
{
    return reg->services[i];
}

size_t arpc__pb_registry_file_count(const arpc__pb_registry *reg)
{
    return reg->file_count;
}

const arpc_pb_file *arpc__pb_registry_file(const arpc__pb_registry *reg, size_t i)
{
    return reg->files[i];
}

long arpc__pb_registry_find_file(const arpc__pb_registry *reg, const char *name, size_t len)
{
    void *v = arpc__map_find(&reg->file_names, name, len);
    return v == NULL ? -1 : (long)((uintptr_t)v - 1);
}

long arpc__pb_registry_find_symbol(const arpc__pb_registry *reg, const char *symbol, size_t len)
{
    const arpc_pb_file *f = arpc__map_find(&reg->symbols, symbol, len);
    return f == NULL ? -1 : arpc__pb_registry_find_file(reg, f->name, strlen(f->name));
}

size_t arpc__pb_registry_closure(const arpc__pb_registry *reg, size_t i, size_t *out,
                                 unsigned char *seen)
{
    memset(seen, 0, reg->file_count);
    size_t n = 0;
    out[n++] = i;
    seen[i] = 1;
    /* `out` is the worklist too: each file's deps are appended after it. */
    for (size_t next = 0; next < n; next++) {
        const arpc_pb_file *f = reg->files[out[next]];
        for (size_t d = 0; d < f->dep_count; d++) {
            const char *name = f->deps[d]->name;
            long dep = arpc__pb_registry_find_file(reg, name, strlen(name));
            if (dep >= 0 && !seen[dep]) {
                seen[dep] = 1;
                out[n++] = (size_t)dep;
            }
        }
    }
    return n;
}

bool arpc__pb_registry_reflection_claimed(const arpc__pb_registry *reg)
{
    return reg->reflection;
}

int arpc__pb_registry_claim_reflection(arpc__pb_registry *reg)
{
    if (reg->reflection)
        return ARPC_EINVAL;
    reg->reflection = true;
    return 0;
}
