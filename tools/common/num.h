/*
 * The number parser of the command-line tools (arpc-echo-server, arpc-bench)
 * and of the benchmark programs' flags.
 */
#ifndef TOOLS_NUM_H
#define TOOLS_NUM_H

/**
 * Parses a whole decimal integer in [min, max]; `suffixes` allows k/K (KiB)
 * and m/M (MiB).  Nothing may follow the number (or its suffix).
 * @return 0 or -EINVAL; `*out` written only on success.
 */
int tool_parse_num(const char *s, long long min, long long max, int suffixes, long long *out);

#endif /* TOOLS_NUM_H */
