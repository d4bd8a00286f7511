#include <string.h>

#include <arpc/err.h>

#include "base/alloc.h"
#include "base/map.h"

static uint64_t hash_bytes(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void arpc__map_init(arpc__map *map)
{
    map->slots = NULL;
    map->cap = 0;
    map->len = 0;
}

void arpc__map_fini(arpc__map *map)
{
    for (size_t i = 0; i < map->cap; i++)
        arpc__free(map->slots[i].key);
    arpc__free(map->slots);
    arpc__map_init(map);
}

static arpc__map_slot *probe(arpc__map_slot *slots, size_t cap, const char *key, size_t len,
                             uint64_t hash)
{
    for (size_t i = hash & (cap - 1);; i = (i + 1) & (cap - 1)) {
        arpc__map_slot *slot = &slots[i];
        if (slot->key == NULL)
            return slot;
        if (slot->hash == hash && slot->key_len == len && memcmp(slot->key, key, len) == 0)
            return slot;
    }
}

static int grow(arpc__map *map)
{
    size_t cap = map->cap ? map->cap * 2 : 16;
    arpc__map_slot *slots = arpc__calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return ARPC_ENOMEM;
    for (size_t i = 0; i < map->cap; i++) {
        arpc__map_slot *old = &map->slots[i];
        if (old->key != NULL)
            *probe(slots, cap, old->key, old->key_len, old->hash) = *old;
    }
    arpc__free(map->slots);
    map->slots = slots;
    map->cap = cap;
    return 0;
}

int arpc__map_insert(arpc__map *map, const char *key, size_t key_len, void *value)
{
    /* Keep the load under one half, so probes stay short. */
    if ((map->len + 1) * 2 > map->cap) {
        int rc = grow(map);
        if (rc < 0)
            return rc;
    }
    uint64_t hash = hash_bytes(key, key_len);
    arpc__map_slot *slot = probe(map->slots, map->cap, key, key_len, hash);
    if (slot->key != NULL)
        return ARPC_EINVAL;
    char *copy = arpc__malloc(key_len + 1);
    if (copy == NULL)
        return ARPC_ENOMEM;
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    slot->key = copy;
    slot->key_len = key_len;
    slot->hash = hash;
    slot->value = value;
    map->len++;
    return 0;
}

void *arpc__map_find(const arpc__map *map, const char *key, size_t key_len)
{
    if (map->cap == 0)
        return NULL;
    arpc__map_slot *slot = probe(map->slots, map->cap, key, key_len, hash_bytes(key, key_len));
    return slot->key ? slot->value : NULL;
}
