/*
 * Design notes: the level is an atomic read on every log site; the handler
 * pointer pair is set before runtimes start (documented), so it is read
 * without a lock.  The level starts at ARPC_LOG_WARN and is read from the
 * ARPC_LOG environment variable once, by a constructor when the library is
 * loaded (a value that names no level is ignored); arpc_log_set_level()
 * overrides it from then on.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/log.h"

_Atomic int arpc__log_level = ARPC_LOG_WARN;

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
    log_handler = handler;
    log_user_data = user_data;
}

void arpc__log(arpc_log_level level, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (log_handler != NULL) {
        log_handler(level, message, log_user_data);
        return;
    }
    fprintf(stderr, "arpc %s: %s\n", level_name(level), message);
}

void arpc__panic(const char *file, int line, const char *expr)
{
    fprintf(stderr, "arpc: %s:%d: invariant violated: %s\n", file, line, expr);
    abort();
}
