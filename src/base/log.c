/*
 * Design notes: the level is an atomic read on every log site.  The handler
 * and its user data are a pair that must be read together, so a mutex guards
 * them: a message copies the pair under it and calls the handler outside it
 * (handlers may run concurrently, and one that logs does not deadlock).  The
 * lock is taken only for a message that passed the level check, which is
 * never per request above DEBUG.  The level starts at ARPC_LOG_WARN and is read from the
 * ARPC_LOG environment variable once, by a constructor when the library is
 * loaded (a value that names no level is ignored); arpc_log_set_level()
 * overrides it from then on.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/log.h"

_Atomic int arpc__log_level = ARPC_LOG_WARN;

static pthread_mutex_t log_handler_lock = PTHREAD_MUTEX_INITIALIZER;
static arpc_log_cb log_handler;
static void *log_user_data;

static const char *level_name(arpc_log_level level)
{
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    return (unsigned)level <= ARPC_LOG_OFF ? names[level] : "?";
}

__attribute__((constructor)) static void log_level_from_env(void)
{
    const char *env = getenv("ARPC_LOG");
    if (env == NULL)
        return;
    for (int level = ARPC_LOG_DEBUG; level <= ARPC_LOG_OFF; level++) {
        if (strcmp(env, level_name((arpc_log_level)level)) == 0)
            atomic_store(&arpc__log_level, level);
    }
}

void arpc_log_set_level(arpc_log_level level)
{
    /* Out of range: the nearest level, so the log sites' comparison and
     * level_name() stay meaningful. */
    int value = (int)level < ARPC_LOG_DEBUG ? ARPC_LOG_DEBUG
                : (int)level > ARPC_LOG_OFF ? ARPC_LOG_OFF
                                            : (int)level;
    atomic_store(&arpc__log_level, value);
}

arpc_log_level arpc_log_get_level(void)
{
    return (arpc_log_level)atomic_load(&arpc__log_level);
}

void arpc_log_set_handler(arpc_log_cb handler, void *user_data)
{
    pthread_mutex_lock(&log_handler_lock);
    log_handler = handler;
    log_user_data = user_data;
    pthread_mutex_unlock(&log_handler_lock);
}

void arpc__log(arpc_log_level level, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_handler_lock);
    arpc_log_cb handler = log_handler;
    void *user_data = log_user_data;
    pthread_mutex_unlock(&log_handler_lock);
    if (handler != NULL) {
        handler(level, message, user_data);
        return;
    }
    fprintf(stderr, "arpc %s: %s\n", level_name(level), message);
}

void arpc__panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "arpc: %s:%d: invariant violated: %s\n", file, line, expr);
    abort();
}
