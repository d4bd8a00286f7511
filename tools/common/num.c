/* The tools' number parser: strtoll with a range, optional k/m suffixes, nothing else. */
#include "num.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

int tool_parse_num(const char *s, long long min, long long max, int suffixes, long long *out)
{
    char *end;
    long long v;

    if (*s == '\0')
        return -EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s)
        return -EINVAL;
    if (suffixes && (*end == 'k' || *end == 'K') && end[1] == '\0') {
        if (v > LLONG_MAX / 1024)
            return -EINVAL;
        v *= 1024;
        end++;
    } else if (suffixes && (*end == 'm' || *end == 'M') && end[1] == '\0') {
        if (v > LLONG_MAX / (1024 * 1024))
            return -EINVAL;
        v *= 1024 * 1024;
        end++;
    }
    if (*end != '\0' || v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}
