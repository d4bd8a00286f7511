/**
 * Logging.  arpc logs only what callers cannot see otherwise: reconnects,
 * heartbeat evictions, protocol errors.  Nothing per request above DEBUG.
 * Messages go to stderr unless a handler is installed.
 */
#ifndef ARPC_LOG_H
#define ARPC_LOG_H

#include <arpc/export.h>

ARPC_BEGIN_DECLS

typedef enum arpc_log_level {
    ARPC_LOG_DEBUG = 0,
    ARPC_LOG_INFO = 1,
    ARPC_LOG_WARN = 2,
    ARPC_LOG_ERROR = 3,
    ARPC_LOG_OFF = 4
} arpc_log_level;

/** Receives one formatted message (no trailing newline); borrowed for the call. */
typedef void (*arpc_log_cb)(arpc_log_level level, const char *message, void *user_data);

/**
 * Sets the lowest level that is logged; a value outside the enum is clamped
 * to ARPC_LOG_DEBUG or ARPC_LOG_OFF.  Before the first call the level is
 * ARPC_LOG_WARN, or the value of the ARPC_LOG environment variable when the
 * library was loaded, spelt exactly "debug", "info", "warn", "error" or
 * "off" (any other value is ignored); later changes of the variable have no
 * effect.
 * Thread: any.  Suspends: no.
 */
ARPC_EXPORT void arpc_log_set_level(arpc_log_level level);

/** The current level.  Thread: any.  Suspends: no. */
ARPC_EXPORT arpc_log_level arpc_log_get_level(void);

/**
 * Installs a handler for log messages; NULL restores the stderr default.
 * The handler may run on any arpc thread, concurrently with itself.  Messages
 * that begin after this returns go to the new handler; one that began before
 * may still be running in the old one, so `user_data` of an old handler must
 * outlive the runtimes that may log through it.
 * Thread: any, also while runtimes run.  Suspends: no.
 */
ARPC_EXPORT void arpc_log_set_handler(arpc_log_cb handler, void *user_data);

ARPC_END_DECLS

#endif
