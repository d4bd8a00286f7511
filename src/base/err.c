/* Error text generated from the single ARPC_ERR_MAP table. */
#include <string.h>

#include <arpc/err.h>

const char *arpc_strerror(int err)
{
    switch (err) {
#define ARPC_ERR_TEXT(name, value, text) \
    case value:                          \
        return text;
        ARPC_ERR_MAP(ARPC_ERR_TEXT)
#undef ARPC_ERR_TEXT
    default:
        break;
    }
    /* Codes from -1000 down are arpc's own space (err.h), never an errno, so
     * one that is missing from the table is an unknown code, not "Unknown
     * error 1500" from strerror(). */
    if (err < 0 && err > -1000) {
        /* strerror() of glibc is thread-safe for known codes and returns
         * "Unknown error N" (a per-thread buffer) for others. */
        return strerror(-err);
    }
    return "unknown error";
}

const char *arpc_err_name(int err)
{
    switch (err) {
#define ARPC_ERR_NAME(name, value, text) \
    case value:                          \
        return #name;
        ARPC_ERR_MAP(ARPC_ERR_NAME)
#undef ARPC_ERR_NAME
    default:
        return "UNKNOWN";
    }
}
