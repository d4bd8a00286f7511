/*
 * A string-keyed hash map (open addressing, linear probing, FNV-1a).  Keys are
 * copied.  Built for read-mostly tables such as a server's methods: lookups
 * take a (pointer, length) view, so a method name decoded from a frame needs
 * no NUL terminator and no copy.  Not thread-safe; readers may share it once
 * writes have stopped.
 */
#ifndef ARPC_BASE_MAP_H
#define ARPC_BASE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct arpc__map_slot {
    char *key; /* NUL-terminated copy; NULL for an empty slot */
    size_t key_len;
    uint64_t hash;
    void *value;
} arpc__map_slot;

typedef struct arpc__map {
    arpc__map_slot *slots;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} arpc__map;

void arpc__map_init(arpc__map *map);
void arpc__map_fini(arpc__map *map);

/* @return 0, ARPC_EINVAL (the key exists) or ARPC_ENOMEM. */
int arpc__map_insert(arpc__map *map, const char *key, size_t key_len, void *value);

/* @return the value, or NULL. */
void *arpc__map_find(const arpc__map *map, const char *key, size_t key_len);

#endif
