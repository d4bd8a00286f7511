/*
 * Design notes: offloaded jobs are rare and long compared with a request, so
 * a mutex and a condition variable are the right tools here; the loops never
 * take this lock.  Threads start on the first job, so a runtime that never
 * offloads pays nothing.  Jobs live on the waiter's stack: it cannot return
 * before the worker signals it, and the worker does not touch the job after.
 */
#include <arpc/coro.h>
#include <arpc/err.h>

#include "base/alloc.h"
#include "runtime/offload.h"

struct arpc__offload_job {
    arpc__offload_job *next;
    arpc_task_cb fn;
    void *user_data;
    arpc_event done;
};

void arpc__offload_init(arpc__offload_pool *pool, unsigned threads)
{
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pool->head = NULL;
    pool->tail = NULL;
    pool->threads = NULL;
    pool->thread_count = threads ? threads : 1;
    pool->started = 0;
    pool->stopping = false;
}

static void *worker_main(void *arg)
{
    arpc__offload_pool *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->head == NULL)
            break;
        arpc__offload_job *job = pool->head;
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->lock);
        job->fn(job->user_data);
        arpc_event_signal(&job->done);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Starts the workers; called with the lock held. */
static int start_workers(arpc__offload_pool *pool)
{
    pool->threads = arpc__calloc(pool->thread_count, sizeof(*pool->threads));
    if (pool->threads == NULL)
        return ARPC_ENOMEM;
    for (unsigned i = 0; i < pool->thread_count; i++) {
        int rc = pthread_create(&pool->threads[i], NULL, worker_main, pool);
        if (rc != 0) {
            if (pool->started == 0) {
                arpc__free(pool->threads);
                pool->threads = NULL;
                return -rc;
            }
            break;
        }
        pool->started++;
    }
    return 0;
}

int arpc__offload_run(arpc__offload_pool *pool, arpc_task_cb fn, void *user_data)
{
    arpc__offload_job job = {.next = NULL, .fn = fn, .user_data = user_data};
    arpc_event_init(&job.done);
    pthread_mutex_lock(&pool->lock);
    if (pool->threads == NULL) {
        int rc = start_workers(pool);
        if (rc < 0) {
            pthread_mutex_unlock(&pool->lock);
            return rc;
        }
    }
    if (pool->tail)
        pool->tail->next = &job;
    else
        pool->head = &job;
    pool->tail = &job;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    arpc_event_wait(&job.done, -1);
    return 0;
}

void arpc__offload_fini(arpc__offload_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < pool->started; i++)
        pthread_join(pool->threads[i], NULL);
    arpc__free(pool->threads);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
}
