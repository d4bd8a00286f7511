/*
 * The offload worker pool: the classic "thread group", placed behind a
 * coroutine instead of in front of the caller.  A job carries an arpc_event
 * on the waiter's stack; the worker signals it, which resumes the waiting
 * coroutine on its own loop (or wakes a plain thread).
 */
#ifndef ARPC_RUNTIME_OFFLOAD_H
#define ARPC_RUNTIME_OFFLOAD_H

#include <pthread.h>
#include <stdbool.h>

#include <arpc/loop.h>

typedef struct arpc__offload_job arpc__offload_job;

typedef struct arpc__offload_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    arpc__offload_job *head;
    arpc__offload_job *tail;
    pthread_t *threads;
    unsigned thread_count;
    unsigned started;
    bool stopping;
} arpc__offload_pool;

void arpc__offload_init(arpc__offload_pool *pool, unsigned threads);
void arpc__offload_fini(arpc__offload_pool *pool);
int arpc__offload_run(arpc__offload_pool *pool, arpc_task_cb fn, void *user_data);

#endif
