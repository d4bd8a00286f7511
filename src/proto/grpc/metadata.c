/*
 * Design notes: gRPC custom metadata and the two text encodings of its header values.
 *
 * Keys follow PROTOCOL-HTTP2.md's Header-Name (0-9 a-z _ - .), which also keeps every key
 * a valid lower-case HTTP/2 field name.  Reserved keys are the ones the transport writes
 * itself; letting user metadata set them would forge a status, a deadline or a content
 * type, or break the stream (nghttp2 resets streams with connection-specific headers).
 *
 * ASCII values are 0x20..0x7E as the spec says, minus a leading or trailing space: RFC 9113
 * §8.2.1 forbids those and nghttp2 >= 1.50 resets a stream that carries one, so refusing
 * them here turns a lost call into an error at the call site.
 *
 * Base64 is written here, about forty lines, rather than taken from a library: libarpc
 * links no crypto library today, and OpenSSL's EVP_EncodeBlock always pads while
 * EVP_DecodeBlock refuses unpadded input and counts pad bytes in its result, so using it
 * for gRPC's unpadded-out, either-in rule would need copies and fix-ups around every call
 * and pull libcrypto into the proto layer for a few lines of table lookups.  The decoder
 * accepts both forms, as gRPC's own decoders do, and ignores the unused low bits of the
 * last character (lenient on input; our encoder writes them as zero).
 *
 * grpc-message's percent-encoding escapes '%' and every byte outside 0x20..0x7E with
 * upper-case hex.  Its decoder never fails: the spec asks receivers to keep a status
 * message with broken escapes rather than drop it, so "%zz" or a trailing "%4" is kept
 * as it is.
 *
 * Threading: pure functions.
 */
#include <string.h>

#include <arpc/err.h>

#include "proto/grpc/wire.h"

/* ---- keys and values ------------------------------------------------------------------ */

static bool key_byte_valid(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.';
}

bool arpc__grpc_md_key_valid(const char *key, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!key_byte_valid((unsigned char)key[i]))
            return false;
    return true;
}

static bool key_is(const char *key, size_t len, const char *word)
{
    return len == strlen(word) && memcmp(key, word, len) == 0;
}

bool arpc__grpc_md_key_reserved(const char *key, size_t len)
{
    static const char *const owned[] = {
        "te",   "content-type", "content-length",    "connection",       "keep-alive",
        "host", "upgrade",      "transfer-encoding", "proxy-connection",
    };
    if (len >= 1 && key[0] == ':')
        return true;
    if (len >= 5 && memcmp(key, "grpc-", 5) == 0)
        return true;
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
        if (key_is(key, len, owned[i]))
            return true;
    return false;
}

bool arpc__grpc_md_key_is_bin(const char *key, size_t len)
{
    return len >= 4 && memcmp(key + len - 4, "-bin", 4) == 0;
}

bool arpc__grpc_md_value_valid(const char *value, size_t len)
{
    if (len > 0 && (value[0] == ' ' || value[len - 1] == ' '))
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || (unsigned char)value[i] > 0x7e)
            return false;
    return true;
}

int arpc__grpc_md_check(const char *key, size_t key_len, const void *value, size_t value_len)
{
    if (!arpc__grpc_md_key_valid(key, key_len) || arpc__grpc_md_key_reserved(key, key_len))
        return ARPC_EINVAL;
    if (!arpc__grpc_md_key_is_bin(key, key_len) && !arpc__grpc_md_value_valid(value, value_len))
        return ARPC_EINVAL;
    return 0;
}

/* ---- base64 --------------------------------------------------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

size_t arpc__grpc_base64_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t arpc__grpc_base64_encode(const void *data, size_t n, char *out)
{
    const uint8_t *p = data;
    size_t o = 0, i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = b64_alphabet[(v >> 6) & 63];
    }
    return o;
}

size_t arpc__grpc_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 > 1 ? n % 4 - 1 : 0);
}

int arpc__grpc_base64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len)
{
    if (n % 4 == 0 && n > 0 && s[n - 1] == '=')
        n -= s[n - 2] == '=' ? 2 : 1;
    if (n % 4 == 1)
        return ARPC_EINVAL;
    /* Checked first, so `out` is written only for a valid input. */
    for (size_t i = 0; i < n; i++)
        if (b64_value((unsigned char)s[i]) < 0)
            return ARPC_EINVAL;

    uint32_t acc = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 6 | (uint32_t)b64_value((unsigned char)s[i]);
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    /* 2 or 3 trailing characters carry 1 or 2 bytes; their low 4 or 2 bits are unused. */
    if (n % 4 == 2) {
        out[o++] = (uint8_t)(acc >> 4);
    } else if (n % 4 == 3) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    *out_len = o;
    return 0;
}

/* ---- percent-encoding ----------------------------------------------------------------- */

static bool percent_plain(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e && c != '%';
}

size_t arpc__grpc_percent_encoded_len(const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t escaped = 0;

    for (size_t i = 0; i < n; i++)
        escaped += !percent_plain(p[i]);
    if (escaped > (SIZE_MAX - n) / 2)
        return SIZE_MAX;
    return n + 2 * escaped;
}

size_t arpc__grpc_percent_encode(const void *data, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *p = data;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (percent_plain(p[i])) {
            out[o++] = (char)p[i];
            continue;
        }
        out[o++] = '%';
        out[o++] = hex[p[i] >> 4];
        out[o++] = hex[p[i] & 15];
    }
    return o;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t arpc__grpc_percent_decode(const char *s, size_t n, uint8_t *out)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int hi = s[i] == '%' && i + 2 < n ? hex_value((unsigned char)s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value((unsigned char)s[i + 2]) : -1;
        if (lo < 0) {
            out[o++] = (uint8_t)s[i];
            continue;
        }
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return o;
}
