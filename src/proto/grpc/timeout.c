/*
 * Design notes: grpc-timeout (PROTOCOL-HTTP2.md: TimeoutValue = 1*8DIGIT, TimeoutUnit =
 * H / M / S / m / u / n).
 *
 * The parser is strict: anything but 1 to 8 ASCII digits and one unit letter is refused,
 * with no sign, space or second unit, so the server never guesses at a deadline.  The
 * largest value, 99999999H, is about 11 400 years, more than int64 nanoseconds hold: the
 * product saturates at INT64_MAX, which arpc reads as "no deadline" (ARPC__NO_DEADLINE),
 * the only sensible meaning of a timeout that long.
 *
 * The encoder picks the finest unit in which the value fits 8 digits, so precision is lost
 * only where 8 digits cannot carry it, and rounds up: the receiver's deadline is then
 * never earlier than the sender's, and a call is never cut short by the encoding (it may
 * be cut up to one unit late, which the sender's own timer covers).  The finest unit keeps
 * the error below 1e-7 of the value; int64 nanoseconds always fit in hours.
 *
 * Threading: pure functions.
 */
#include <arpc/err.h>

#include "proto/grpc/wire.h"

#define MAX_VALUE 99999999LL

struct unit {
    char letter;
    int64_t ns;
};

/* Finest first: the encoder takes the first that fits. */
static const struct unit units[] = {
    {'n', 1},
    {'u', 1000},
    {'m', 1000000},
    {'S', 1000000000},
    {'M', 60LL * 1000000000},
    {'H', 3600LL * 1000000000},
};

#define NUNITS (sizeof(units) / sizeof(units[0]))

static int64_t unit_ns(char letter)
{
    for (size_t i = 0; i < NUNITS; i++)
        if (units[i].letter == letter)
            return units[i].ns;
    return 0;
}

int arpc__grpc_timeout_parse(const char *s, size_t len, int64_t *timeout_ns)
{
    if (len < 2 || len > ARPC__GRPC_TIMEOUT_MAX_LEN)
        return ARPC_EINVAL;
    int64_t value = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return ARPC_EINVAL;
        value = value * 10 + (s[i] - '0');
    }
    int64_t ns = unit_ns(s[len - 1]);
    if (ns == 0)
        return ARPC_EINVAL;
    *timeout_ns = value > INT64_MAX / ns ? INT64_MAX : value * ns;
    return 0;
}

int arpc__grpc_timeout_deadline(const char *s, size_t len, int64_t now_ns, int64_t *deadline_ns)
{
    int64_t timeout;
    int rc = arpc__grpc_timeout_parse(s, len, &timeout);
    if (rc < 0)
        return rc;
    *deadline_ns = now_ns > 0 && timeout > INT64_MAX - now_ns ? INT64_MAX : now_ns + timeout;
    return 0;
}

size_t arpc__grpc_timeout_encode(int64_t remaining_ns, char out[ARPC__GRPC_TIMEOUT_MAX_LEN])
{
    int64_t value = 1;
    char letter = 'n';
    if (remaining_ns > 0) {
        for (size_t i = 0; i < NUNITS; i++) {
            /* ceil(remaining / unit) without overflowing. */
            value = (remaining_ns - 1) / units[i].ns + 1;
            letter = units[i].letter;
            if (value <= MAX_VALUE)
                break;
        }
    }
    char digits[ARPC__GRPC_TIMEOUT_MAX_DIGITS];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    out[n] = letter;
    return n + 1;
}
