/*
 * The services of gen_service.h, written only against generated names.
 */
#include "gen_service.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "test.h"

#define POINT_URL "type.googleapis.com/arpc.test.common.Point"

/* One zeroed object of type T from `arena`, initialized with its protoc-c INIT. */
#define NEW(arena, T, INIT) ((T *)init_copy(arena, &(T)INIT, sizeof(T)))

static void *init_copy(arpc_arena *arena, const void *init, size_t size)
{
    void *p = arpc_arena_alloc(arena, size);
    ASSERT_TRUE(p != NULL);
    memcpy(p, init, size);
    return p;
}

static void *array(arpc_arena *arena, size_t n, size_t size)
{
    void *p = arpc_arena_alloc(arena, n * size);
    ASSERT_TRUE(p != NULL);
    return p;
}

/* "PREFIX-A" or, with `two`, "PREFIX-A-B", from `arena`. */
static char *text(arpc_arena *arena, const char *prefix, long a, long b, bool two)
{
    char *s = arpc_arena_alloc(arena, 48);
    ASSERT_TRUE(s != NULL);
    if (two)
        snprintf(s, 48, "%s-%ld-%ld", prefix, a, b);
    else
        snprintf(s, 48, "%s-%ld", prefix, a);
    return s;
}

static gen_point *point(arpc_arena *arena, int32_t x, int32_t y)
{
    gen_point *p = NEW(arena, gen_point, ARPC__TEST__COMMON__POINT__INIT);
    p->x = x;
    p->y = y;
    return p;
}

/* ---- the canonical Shape ------------------------------------------------------------- */

static void fill_vertices(arpc_arena *arena, int32_t x, int32_t y, gen_shape *out)
{
    out->n_vertices = 3;
    out->vertices = array(arena, 3, sizeof(*out->vertices));
    for (int32_t i = 0; i < 3; i++) {
        gen_vertex *v = NEW(arena, gen_vertex, ARPC__TEST__COMMON__SHAPE__VERTEX__INIT);
        v->at = point(arena, x + i, y - i);
        v->kind = i == 1 ? ARPC__TEST__COMMON__SHAPE__VERTEX__KIND__KIND_CORNER
                         : ARPC__TEST__COMMON__SHAPE__VERTEX__KIND__KIND_PLAIN;
        out->vertices[i] = v;
    }
}

static void fill_maps(arpc_arena *arena, int32_t x, int32_t y, gen_shape *out)
{
    static const char *const keys[] = {"x", "y", "big"};
    const int64_t values[] = {x, y, INT64_C(1) << 40};
    out->n_labels = 3;
    out->labels = array(arena, 3, sizeof(*out->labels));
    for (size_t i = 0; i < 3; i++) {
        Arpc__Test__Common__Shape__LabelsEntry *e =
            NEW(arena, Arpc__Test__Common__Shape__LabelsEntry,
                ARPC__TEST__COMMON__SHAPE__LABELS_ENTRY__INIT);
        e->key = (char *)keys[i];
        e->value = values[i];
        out->labels[i] = e;
    }
    out->n_points_by_id = 2;
    out->points_by_id = array(arena, 2, sizeof(*out->points_by_id));
    for (int32_t i = 0; i < 2; i++) {
        Arpc__Test__Common__Shape__PointsByIdEntry *e =
            NEW(arena, Arpc__Test__Common__Shape__PointsByIdEntry,
                ARPC__TEST__COMMON__SHAPE__POINTS_BY_ID_ENTRY__INIT);
        e->key = i == 0 ? x : 1000 + x;
        e->value = i == 0 ? point(arena, y, x) : point(arena, -x, -y);
        out->points_by_id[i] = e;
    }
}

static void fill_oneof(arpc_arena *arena, int32_t x, int32_t y, gen_shape *out)
{
    switch (x % 3) {
    case 0:
        out->fill_case = ARPC__TEST__COMMON__SHAPE__FILL_COLOR;
        out->color = ARPC__TEST__COMMON__COLOR__COLOR_GREEN;
        break;
    case 1:
        out->fill_case = ARPC__TEST__COMMON__SHAPE__FILL_PATTERN;
        out->pattern = text(arena, "stripes", y, 0, false);
        break;
    default: {
        uint8_t *b = array(arena, 4, 1);
        b[0] = (uint8_t)x;
        b[1] = (uint8_t)y;
        b[2] = 0;
        b[3] = 255;
        out->fill_case = ARPC__TEST__COMMON__SHAPE__FILL_TEXTURE;
        out->texture.data = b;
        out->texture.len = 4;
    }
    }
}

void gen_fill_shape(arpc_arena *arena, int32_t x, int32_t y, gen_shape *out)
{
    out->name = text(arena, "shape", x, y, true);
    fill_vertices(arena, x, y, out);
    fill_maps(arena, x, y, out);
    fill_oneof(arena, x, y, out);
    out->area = (double)x * y / 2;
    out->created = NEW(arena, Google__Protobuf__Timestamp, GOOGLE__PROTOBUF__TIMESTAMP__INIT);
    out->created->seconds = 1700000000 + x;
    out->created->nanos = y;
    out->lifetime = NEW(arena, Google__Protobuf__Duration, GOOGLE__PROTOBUF__DURATION__INIT);
    out->lifetime->seconds = y;
    out->lifetime->nanos = 500;
    out->n_tags = 2;
    out->tags = array(arena, 2, sizeof(char *));
    out->tags[0] = "t0";
    out->tags[1] = text(arena, "t", x, 0, false);
    out->int_ = -x - 1;
    out->default_ = y % 2 != 0;
}

static const char *check_vertices(const gen_shape *s, int32_t x, int32_t y)
{
    if (s->n_vertices != 3)
        return "vertices";
    for (int32_t i = 0; i < 3; i++) {
        const gen_vertex *v = s->vertices[i];
        if (v->at == NULL || v->at->x != x + i || v->at->y != y - i)
            return "vertices.at";
        if (v->kind != (i == 1 ? ARPC__TEST__COMMON__SHAPE__VERTEX__KIND__KIND_CORNER
                               : ARPC__TEST__COMMON__SHAPE__VERTEX__KIND__KIND_PLAIN))
            return "vertices.kind";
    }
    return NULL;
}

static const char *check_maps(const gen_shape *s, int32_t x, int32_t y)
{
    int seen = 0;
    if (s->n_labels != 3)
        return "labels";
    for (size_t i = 0; i < 3; i++) {
        const Arpc__Test__Common__Shape__LabelsEntry *e = s->labels[i];
        if (strcmp(e->key, "x") == 0 && e->value == x)
            seen |= 1;
        else if (strcmp(e->key, "y") == 0 && e->value == y)
            seen |= 2;
        else if (strcmp(e->key, "big") == 0 && e->value == INT64_C(1) << 40)
            seen |= 4;
    }
    if (seen != 7)
        return "labels entries";
    seen = 0;
    if (s->n_points_by_id != 2)
        return "points_by_id";
    for (size_t i = 0; i < 2; i++) {
        const Arpc__Test__Common__Shape__PointsByIdEntry *e = s->points_by_id[i];
        const gen_point *p = e->value;
        if (e->key == x && p != NULL && p->x == y && p->y == x)
            seen |= 1;
        else if (e->key == 1000 + x && p != NULL && p->x == -x && p->y == -y)
            seen |= 2;
    }
    return seen == 3 ? NULL : "points_by_id entries";
}

static const char *check_oneof(const gen_shape *s, int32_t x, int32_t y)
{
    char want[48];
    switch (x % 3) {
    case 0:
        return s->fill_case == ARPC__TEST__COMMON__SHAPE__FILL_COLOR &&
                       s->color == ARPC__TEST__COMMON__COLOR__COLOR_GREEN
                   ? NULL
                   : "fill.color";
    case 1:
        snprintf(want, sizeof(want), "stripes-%ld", (long)y);
        return s->fill_case == ARPC__TEST__COMMON__SHAPE__FILL_PATTERN &&
                       strcmp(s->pattern, want) == 0
                   ? NULL
                   : "fill.pattern";
    default: {
        const uint8_t b[4] = {(uint8_t)x, (uint8_t)y, 0, 255};
        return s->fill_case == ARPC__TEST__COMMON__SHAPE__FILL_TEXTURE && s->texture.len == 4 &&
                       memcmp(s->texture.data, b, 4) == 0
                   ? NULL
                   : "fill.texture";
    }
    }
}

const char *gen_check_shape(const gen_shape *s, int32_t x, int32_t y)
{
    char want[48];
    const char *bad;
    snprintf(want, sizeof(want), "shape-%ld-%ld", (long)x, (long)y);
    if (s == NULL || strcmp(s->name, want) != 0)
        return "name";
    if ((bad = check_vertices(s, x, y)) != NULL || (bad = check_maps(s, x, y)) != NULL ||
        (bad = check_oneof(s, x, y)) != NULL)
        return bad;
    if (s->area != (double)x * y / 2)
        return "area";
    if (s->created == NULL || s->created->seconds != 1700000000 + x || s->created->nanos != y)
        return "created";
    if (s->lifetime == NULL || s->lifetime->seconds != y || s->lifetime->nanos != 500)
        return "lifetime";
    snprintf(want, sizeof(want), "t-%ld", (long)x);
    if (s->n_tags != 2 || strcmp(s->tags[0], "t0") != 0 || strcmp(s->tags[1], want) != 0)
        return "tags";
    if (s->int_ != -x - 1)
        return "int";
    if (s->default_ != (y % 2 != 0))
        return "default";
    return NULL;
}

/* ---- the Echo request ---------------------------------------------------------------- */

static Google__Protobuf__Value *value(arpc_arena *arena, int kind)
{
    Google__Protobuf__Value *v = NEW(arena, Google__Protobuf__Value, GOOGLE__PROTOBUF__VALUE__INIT);
    v->kind_case = kind;
    return v;
}

static Google__Protobuf__Struct *fill_struct(arpc_arena *arena)
{
    static const char *const keys[] = {"n", "s", "b", "l", "z"};
    Google__Protobuf__Struct *st =
        NEW(arena, Google__Protobuf__Struct, GOOGLE__PROTOBUF__STRUCT__INIT);
    Google__Protobuf__Value *vals[5];
    vals[0] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    vals[0]->number_value = 1.5;
    vals[1] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    vals[1]->string_value = "str";
    vals[2] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    vals[2]->bool_value = 1;
    vals[3] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    Google__Protobuf__ListValue *l =
        NEW(arena, Google__Protobuf__ListValue, GOOGLE__PROTOBUF__LIST_VALUE__INIT);
    l->n_values = 2;
    l->values = array(arena, 2, sizeof(*l->values));
    l->values[0] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    l->values[0]->number_value = 1;
    l->values[1] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    l->values[1]->string_value = "two";
    vals[3]->list_value = l;
    vals[4] = value(arena, GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
    vals[4]->null_value = GOOGLE__PROTOBUF__NULL_VALUE__NULL_VALUE;
    st->n_fields = 5;
    st->fields = array(arena, 5, sizeof(*st->fields));
    for (size_t i = 0; i < 5; i++) {
        st->fields[i] = NEW(arena, Google__Protobuf__Struct__FieldsEntry,
                            GOOGLE__PROTOBUF__STRUCT__FIELDS_ENTRY__INIT);
        st->fields[i]->key = (char *)keys[i];
        st->fields[i]->value = vals[i];
    }
    return st;
}

void gen_fill_echo(arpc_arena *arena, int32_t x, int32_t y, gen_echo_req *out)
{
    out->text = "echo";
    out->shape = NEW(arena, gen_shape, ARPC__TEST__COMMON__SHAPE__INIT);
    gen_fill_shape(arena, x, y, out->shape);
    gen_point *p = point(arena, x, y);
    out->extra = NEW(arena, Google__Protobuf__Any, GOOGLE__PROTOBUF__ANY__INIT);
    out->extra->type_url = POINT_URL;
    out->extra->value.len = arpc__test__common__point__get_packed_size(p);
    out->extra->value.data = array(arena, out->extra->value.len + 1, 1);
    arpc__test__common__point__pack(p, out->extra->value.data);
    out->meta = fill_struct(arena);
    out->maybe = NEW(arena, Google__Protobuf__Int64Value, GOOGLE__PROTOBUF__INT64_VALUE__INIT);
    out->maybe->value = (int64_t)x * y;
}

static const Google__Protobuf__Value *field(const Google__Protobuf__Struct *st, const char *key,
                                            int kind)
{
    for (size_t i = 0; i < st->n_fields; i++)
        if (strcmp(st->fields[i]->key, key) == 0 && st->fields[i]->value != NULL &&
            (int)st->fields[i]->value->kind_case == kind)
            return st->fields[i]->value;
    return NULL;
}

static const char *check_struct(const Google__Protobuf__Struct *st)
{
    const Google__Protobuf__Value *v;
    if (st == NULL || st->n_fields != 5)
        return "meta";
    v = field(st, "n", GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE);
    if (v == NULL || v->number_value != 1.5)
        return "meta.n";
    v = field(st, "s", GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    if (v == NULL || strcmp(v->string_value, "str") != 0)
        return "meta.s";
    v = field(st, "b", GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE);
    if (v == NULL || !v->bool_value)
        return "meta.b";
    if (field(st, "z", GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE) == NULL)
        return "meta.z";
    v = field(st, "l", GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE);
    if (v == NULL || v->list_value->n_values != 2)
        return "meta.l";
    const Google__Protobuf__Value *a = v->list_value->values[0], *b = v->list_value->values[1];
    if (a->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE || a->number_value != 1 ||
        b->kind_case != GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE ||
        strcmp(b->string_value, "two") != 0)
        return "meta.l values";
    return NULL;
}

const char *gen_check_echo(const gen_echo_req *r, int32_t *x, int32_t *y)
{
    if (strcmp(r->text, "echo") != 0)
        return "text";
    if (r->extra == NULL || strcmp(r->extra->type_url, POINT_URL) != 0)
        return "extra.type_url";
    gen_point *p =
        arpc__test__common__point__unpack(NULL, r->extra->value.len, r->extra->value.data);
    if (p == NULL)
        return "extra.value";
    *x = p->x;
    *y = p->y;
    arpc__test__common__point__free_unpacked(p, NULL);
    const char *bad = gen_check_shape(r->shape, *x, *y);
    if (bad != NULL)
        return bad;
    if ((bad = check_struct(r->meta)) != NULL)
        return bad;
    if (r->maybe == NULL || r->maybe->value != (int64_t)*x * *y)
        return "maybe";
    return NULL;
}

/* ---- the handlers -------------------------------------------------------------------- */

static _Atomic int32_t uploaded_sum;

/* Sets out's parts to `n` texts (copied into `arena`) and at to {seconds, nanos}. */
static void reply(arpc_arena *arena, gen_echo_reply *out, const char *const *texts, size_t n,
                  int64_t seconds, int32_t nanos)
{
    out->n_parts = n;
    out->parts = array(arena, n, sizeof(*out->parts));
    for (size_t i = 0; i < n; i++) {
        out->parts[i] = NEW(arena, Arpc__Test__Svc__V1__EchoReply__Part,
                            ARPC__TEST__SVC__V1__ECHO_REPLY__PART__INIT);
        size_t len = strlen(texts[i]);
        char *t = array(arena, len + 1, 1);
        memcpy(t, texts[i], len + 1);
        out->parts[i]->text = t;
    }
    out->at = NEW(arena, Google__Protobuf__Timestamp, GOOGLE__PROTOBUF__TIMESTAMP__INIT);
    out->at->seconds = seconds;
    out->at->nanos = nanos;
}

static int get_shape(arpc_request *req, const gen_point *in, gen_shape *out, void *user_data)
{
    (void)user_data;
    if (in->x < 0) {
        ASSERT_OK(arpc_request_set_error(req, "negative x"));
        return 9;
    }
    gen_fill_shape(arpc_request_arena(req), in->x, in->y, out);
    return 0;
}

static int list_vertices(arpc_stream *st, const gen_shape *in, void *user_data)
{
    (void)user_data;
    for (size_t i = 0; i < in->n_vertices; i++) {
        /* As received: protobuf-c packs the unknown fields it kept back out. */
        int rc = SS(list_vertices_send)(st, in->vertices[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int upload_points(arpc_stream *st, Google__Protobuf__Empty *out, void *user_data)
{
    arpc_arena *arena = arpc_request_arena(arpc_stream_request(st));
    gen_point *p;
    int32_t sum = 0;
    int rc;
    (void)out;
    (void)user_data;
    while ((rc = SS(upload_points_recv)(st, arena, &p)) == 0)
        sum += p->x + p->y;
    if (rc != ARPC_EEOS)
        return rc;
    atomic_store(&uploaded_sum, sum);
    return 0;
}

static int get_http_status(arpc_request *req, const Google__Protobuf__Empty *in,
                           Google__Protobuf__Int32Value *out, void *user_data)
{
    (void)req;
    (void)in;
    (void)user_data;
    out->value = atomic_load(&uploaded_sum);
    return 0;
}

static int chat(arpc_stream *st, void *user_data)
{
    arpc_arena *arena = arpc_request_arena(arpc_stream_request(st));
    gen_echo_req *in;
    int64_t index = 0;
    int rc;
    (void)user_data;
    while ((rc = SS(chat_recv)(st, arena, &in)) == 0) {
        gen_echo_reply out = ARPC__TEST__SVC__V1__ECHO_REPLY__INIT;
        const char *texts[] = {in->text, in->shape != NULL ? in->shape->name : ""};
        reply(arena, &out, texts, 2, index++, 0);
        if ((rc = SS(chat_send)(st, &out)) != 0)
            return rc;
    }
    return rc == ARPC_EEOS ? 0 : rc;
}

static int echo(arpc_request *req, const gen_echo_req *in, gen_echo_reply *out, void *user_data)
{
    arpc_arena *arena = arpc_request_arena(req);
    char buf[64];
    (void)user_data;
    if (strcmp(in->text, "metadata") == 0) {
        size_t len = 0;
        const char *v = arpc_request_metadata_get(req, "x-typed-in", &len);
        const char *texts[] = {in->text, v != NULL ? v : "(none)"};
        if (v != NULL)
            ASSERT_OK(arpc_request_add_metadata(req, "x-typed-out", v, len));
        reply(arena, out, texts, 2, 0, 0);
        return 0;
    }
    if (strcmp(in->text, "deadline") == 0) {
        snprintf(buf, sizeof(buf), "%lld", (long long)arpc_request_remaining_ms(req));
        const char *texts[] = {in->text, buf};
        reply(arena, out, texts, 2, 0, 0);
        return 0;
    }
    int32_t x = 0, y = 0;
    const char *bad = gen_check_echo(in, &x, &y);
    if (bad != NULL) {
        snprintf(buf, sizeof(buf), "mismatch: %s", bad);
        ASSERT_OK(arpc_request_set_error(req, buf));
        return 3;
    }
    const char *texts[] = {in->text, "checked"};
    reply(arena, out, texts, 2, x, y);
    return 0;
}

static int keyword_return(arpc_request *req, const gen_echo_req *in, gen_echo_reply *out,
                          void *user_data)
{
    char buf[64];
    (void)user_data;
    snprintf(buf, sizeof(buf), "return:%s", in->text);
    const char *texts[] = {buf};
    reply(arpc_request_arena(req), out, texts, 1, 0, 0);
    return 0;
}

static int keyword_int(arpc_stream *st, void *user_data)
{
    arpc_arena *arena = arpc_request_arena(arpc_stream_request(st));
    gen_echo_req *in;
    char buf[64];
    int rc;
    (void)user_data;
    while ((rc = KW(int_recv)(st, arena, &in)) == 0) {
        gen_echo_reply out = ARPC__TEST__SVC__V1__ECHO_REPLY__INIT;
        snprintf(buf, sizeof(buf), "int:%s", in->text);
        const char *texts[] = {buf};
        reply(arena, &out, texts, 1, 0, 0);
        if ((rc = KW(int_send)(st, &out)) != 0)
            return rc;
    }
    return rc == ARPC_EEOS ? 0 : rc;
}

static int ping(arpc_request *req, const Renamed__Pkg__Ping *in, Renamed__Pkg__Ping *out,
                void *user_data)
{
    (void)req;
    (void)user_data;
    out->has_seq = 1;
    out->seq = in->seq + 1;
    return 0;
}

int gen_register_all(arpc_server *srv)
{
    SS(handlers)
    ss = {.get_shape = get_shape,
          .list_vertices = list_vertices,
          .upload_points = upload_points,
          .chat = chat,
          .echo = echo,
          .get_httpstatus = get_http_status};
    KW(handlers) kw = {.return_ = keyword_return, .int_ = keyword_int};
    arpc__test__svc__v1__nothing__arpc_handlers none = {0};
    renamed__pkg__pinger__arpc_handlers pinger = {.send = ping};
    int rc = SS(register)(srv, &ss, NULL);
    if (rc == 0)
        rc = KW(register)(srv, &kw, NULL);
    if (rc == 0)
        rc = arpc__test__svc__v1__nothing__arpc_register(srv, &none, NULL);
    if (rc == 0)
        rc = renamed__pkg__pinger__arpc_register(srv, &pinger, NULL);
    return rc;
}
