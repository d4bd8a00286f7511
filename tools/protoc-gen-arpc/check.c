/*
 * Design notes: what protoc-gen-arpc refuses, so that it fails with a protoc error
 * naming the file, service and method instead of writing C that does not compile.
 *
 * Unsupported: a syntax other than proto2/proto3, and a service whose file or whose
 * method types protoc-c writes no C for ((pb_c_file).no_generate).
 *
 * Collisions: every name the generated .arpc.h/.arpc.c declare goes into one set with
 * the names already in the same translation unit that could equal them: protoc-c's for
 * the file's services (P__init, P__descriptor, the closure stubs P__m, ...) and for every
 * message and enum of the file and of what it imports.  Two of arpc's equal, or one of
 * arpc's equals one of protoc-c's: an error naming both origins.  Two of protoc-c's
 * equal is protoc-c's business and left to its own output to show.  The handler table's
 * members are a namespace of their own per service.  The set is a plain list: a file
 * has hundreds of names, not millions.
 */
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "names.h"

typedef struct entry {
    const char *name;
    const char *origin; /* "service p.q.S, method M" */
    bool ours;
} entry;

typedef struct name_set {
    entry *items;
    size_t n;
    const char *file;
    char *error; /* the first collision found */
    bool failed; /* out of memory */
    gen_pool pool;
} name_set;

/* What each kind generates besides the shared P__ARPC_M_METHOD: P__arpc_m<suffix>. */
static const char *const kind_suffixes[4][7] = {
    {"", "_async", "_cb", "_fn", NULL},
    {"_fn", "_open", "_read", "_send", NULL},
    {"_fn", "_open", "_write", "_close_and_recv", "_recv", NULL},
    {"_fn", "_open", "_write", "_read", "_recv", "_send", NULL},
};

static void add(name_set *set, const char *name, const char *origin, bool ours)
{
    entry *items;

    if (set->failed)
        return;
    if (name == NULL || origin == NULL) {
        set->failed = true;
        return;
    }
    for (size_t i = 0; i < set->n; i++) {
        entry *e = &set->items[i];

        if (strcmp(e->name, name) != 0 || (!e->ours && !ours))
            continue;
        gen_fail(&set->error, "%s: %s and %s both generate the name %s; rename one", set->file,
                 e->origin, origin, name);
        set->failed = true; /* with set->error NULL: out of memory */
        return;
    }
    items = realloc(set->items, (set->n + 1) * sizeof(*items));
    if (items == NULL) {
        set->failed = true;
        return;
    }
    set->items = items;
    items[set->n++] = (entry){.name = name, .origin = origin, .ours = ours};
}

#define ADDF(set, origin, ours, ...) \
    add(set, gen_pool_printf(&(set)->pool, __VA_ARGS__), origin, ours)

static void add_method(name_set *set, const gen_service *s, const gen_method *gm)
{
    const char *origin =
        gen_pool_printf(&set->pool, "service %s, method %s", s->full, gm->md->name);

    ADDF(set, origin, true, "%s__ARPC_%s_METHOD", s->upper, gm->upper);
    for (const char *const *sfx = kind_suffixes[gm->kind]; *sfx != NULL; sfx++)
        ADDF(set, origin, true, "%s__arpc_%s%s", s->lower, gm->lower, *sfx);
    ADDF(set, origin, true, "arpc_gen_%s__%s__invoke", s->lower, gm->lower);
    if (gm->kind == GEN_UNARY)
        ADDF(set, origin, true, "arpc_gen_%s__%s__complete", s->lower, gm->lower);
    origin = gen_pool_printf(&set->pool, "protoc-c's closure stub for service %s, method %s",
                             s->full, gm->md->name);
    ADDF(set, origin, false, "%s__%s", s->lower, gm->lower);
}

static void add_service(name_set *set, const gen_service *s)
{
    static const char *const theirs[] = {"__init", "__descriptor", "__method_descriptors",
                                         "__method_indices_by_name"};
    const char *origin = gen_pool_printf(&set->pool, "service %s", s->full);
    const char *pc = gen_pool_printf(&set->pool, "protoc-c's names for service %s", s->full);

    ADDF(set, origin, true, "%s__arpc_service", s->lower);
    ADDF(set, origin, true, "%s__arpc_handlers", s->lower);
    ADDF(set, origin, true, "%s__arpc_register", s->lower);
    ADDF(set, origin, true, "arpc_gen_%s__methods", s->lower);
    for (size_t i = 0; i < sizeof(theirs) / sizeof(theirs[0]); i++)
        ADDF(set, pc, false, "%s%s", s->lower, theirs[i]);
    ADDF(set, pc, false, "%s_Service", s->c);
    ADDF(set, pc, false, "%s_ServiceDestroy", s->c);
    ADDF(set, pc, false, "%s__BASE_INIT", s->upper);
    ADDF(set, pc, false, "%s__INIT", s->upper);
    for (size_t i = 0; i < s->n_methods; i++)
        add_method(set, s, &s->methods[i]);
}

/* protoc-c's names for a message or enum (c_message.cc, c_enum.cc). */
static void add_type(name_set *set, const gen_type *t)
{
    static const char *const msg_fns[] = {"__init",         "__descriptor",     "__get_packed_size",
                                          "__pack",         "__pack_to_buffer", "__unpack",
                                          "__free_unpacked"};
    const gen_file *f = t->file;
    const char *origin =
        gen_pool_printf(&set->pool, "protoc-c's names for %s (%s)", t->full, f->name);
    const char *l =
        gen_pool_add(&set->pool, gen_full_name_to_lower(t->full, f->package, f->c_package));
    const char *u =
        gen_pool_add(&set->pool, gen_full_name_to_upper(t->full, f->package, f->c_package));
    const char *c = gen_pool_add(&set->pool, gen_full_name_to_c(t->full, f->package, f->c_package));

    if (l == NULL || u == NULL || c == NULL) {
        set->failed = true;
        return;
    }
    add(set, c, origin, false);
    ADDF(set, origin, false, "%s__descriptor", l);
    for (size_t i = 0; t->msg != NULL && i < sizeof(msg_fns) / sizeof(msg_fns[0]); i++)
        ADDF(set, origin, false, "%s%s", l, msg_fns[i]);
    if (t->msg != NULL) {
        ADDF(set, origin, false, "%s_Closure", c);
        ADDF(set, origin, false, "%s__INIT", u);
    }
    for (size_t i = 0; t->en != NULL && i < t->en->n_value; i++)
        ADDF(set, origin, false, "%s__%s", u, t->en->value[i]->name);
}

/* The statics of the embedded descriptors (emit.c) and the include guard. */
static void add_files(name_set *set, const gen_model *m, const bool *reach)
{
    static const char *const parts[] = {"", "_descriptor", "_symbols", "_deps"};

    for (size_t i = 0; i < m->n_files; i++) {
        const char *origin;

        if (!reach[i])
            continue;
        origin = gen_pool_printf(&set->pool, "the embedded descriptor of %s", m->files[i].name);
        for (size_t p = 0; p < sizeof(parts) / sizeof(parts[0]); p++)
            ADDF(set, origin, true, "arpc_gen_file_%s%s", m->files[i].ident, parts[p]);
    }
    for (size_t i = 0; i < m->n_types; i++) {
        if (reach[m->types[i].file - m->files] && !m->types[i].file->no_generate)
            add_type(set, &m->types[i]);
    }
}

/* Each service's handler table: its members must differ. */
static int check_members(const gen_plan *plan, const gen_service *s, char **error)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s->methods[i].member, s->methods[j].member) == 0)
                return gen_fail(error,
                                "%s: service %s: methods %s and %s both have the "
                                "handler member %s; rename one",
                                plan->file->name, s->full, s->methods[j].md->name,
                                s->methods[i].md->name, s->methods[i].member);
        }
    }
    return 0;
}

static int check_names(const gen_plan *plan, const gen_model *m, char **error)
{
    name_set set = {.file = plan->file->name};
    bool *reach = gen_model_reachable(m, plan->file);
    int rc = 0;

    gen_pool_init(&set.pool);
    if (reach == NULL)
        set.failed = true;
    for (size_t i = 0; !set.failed && i < plan->n_services; i++)
        add_service(&set, &plan->services[i]);
    if (!set.failed)
        add_files(&set, m, reach);
    if (set.failed || set.pool.failed) {
        rc = -1;
        *error = set.error;
    }
    for (size_t i = 0; rc == 0 && i < plan->n_services; i++)
        rc = check_members(plan, &plan->services[i], error);
    free(reach);
    free(set.items);
    gen_pool_fini(&set.pool);
    return rc;
}

static int check_method_types(const gen_plan *plan, const gen_service *s, char **error)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        const gen_method *gm = &s->methods[i];
        const gen_type *types[2] = {gm->in, gm->out};

        for (int t = 0; t < 2; t++) {
            if (types[t]->file->no_generate)
                return gen_fail(error,
                                "%s: service %s, method %s: unsupported: its type %s "
                                "is in %s, for which protoc-c writes no C (option "
                                "(pb_c_file).no_generate)",
                                plan->file->name, s->full, gm->md->name, types[t]->full,
                                types[t]->file->name);
        }
    }
    return 0;
}

static int check_supported(const gen_plan *plan, char **error)
{
    const gen_file *f = plan->file;
    const char *syntax = f->fd->syntax != NULL ? f->fd->syntax : "";

    if (strcmp(syntax, "") != 0 && strcmp(syntax, "proto2") != 0 && strcmp(syntax, "proto3") != 0)
        return gen_fail(error,
                        "%s: unsupported: syntax \"%s\" (protoc-c and arpc know proto2 "
                        "and proto3)",
                        f->name, syntax);
    if (f->no_generate && plan->n_services > 0)
        return gen_fail(error,
                        "%s: service %s: unsupported: protoc-c writes no C for this file "
                        "(option (pb_c_file).no_generate)",
                        f->name, plan->services[0].full);
    for (size_t i = 0; i < plan->n_services; i++) {
        if (check_method_types(plan, &plan->services[i], error) < 0)
            return -1;
    }
    return 0;
}

int gen_check(const gen_plan *plan, const gen_model *m, char **error)
{
    if (check_supported(plan, error) < 0)
        return -1;
    return check_names(plan, m, error);
}
