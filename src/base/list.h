/* Intrusive circular doubly-linked list (the head is a sentinel node). */
#ifndef ARPC_BASE_LIST_H
#define ARPC_BASE_LIST_H

#include <stdbool.h>

#include "base/common.h"

typedef struct arpc__list {
    struct arpc__list *next;
    struct arpc__list *prev;
} arpc__list;

static inline void arpc__list_init(arpc__list *head)
{
    head->next = head;
    head->prev = head;
}

static inline bool arpc__list_empty(const arpc__list *head)
{
    return head->next == head;
}

static inline void arpc__list_insert_before(arpc__list *pos, arpc__list *node)
{
    node->prev = pos->prev;
    node->next = pos;
    pos->prev->next = node;
    pos->prev = node;
}

static inline void arpc__list_push_back(arpc__list *head, arpc__list *node)
{
    arpc__list_insert_before(head, node);
}

static inline void arpc__list_push_front(arpc__list *head, arpc__list *node)
{
    arpc__list_insert_before(head->next, node);
}

/* Unlinks `node` and leaves it self-linked, so a second remove is harmless. */
static inline void arpc__list_remove(arpc__list *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->next = node;
    node->prev = node;
}

static inline bool arpc__list_linked(const arpc__list *node)
{
    return node->next != node;
}

static inline arpc__list *arpc__list_pop_front(arpc__list *head)
{
    arpc__list *node = head->next;
    if (node == head)
        return NULL;
    arpc__list_remove(node);
    return node;
}

/* Moves every node of `from` to the empty list `to`, leaving `from` empty: a
 * walk over `to` is then safe from nodes that callbacks add to `from`. */
static inline void arpc__list_move_all(arpc__list *from, arpc__list *to)
{
    arpc__list_init(to);
    if (arpc__list_empty(from))
        return;
    to->next = from->next;
    to->prev = from->prev;
    to->next->prev = to;
    to->prev->next = to;
    arpc__list_init(from);
}

#define arpc_list_foreach(it, head) for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

#define arpc_list_foreach_safe(it, tmp, head) \
    for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); (it) = (tmp), (tmp) = (it)->next)

#endif
