/* libFuzzer target for the QMP framer and message parser (src/qmp/qmp_frame).
 * The input is a raw byte stream from a QMP peer. It is framed twice under
 * two caps (the default 1 MiB and a small one that makes oversize lines
 * common): once in a single feed and once in pseudo-random chunks. Every line
 * goes through qmp_msg_parse. Besides "no crash, no leak, no UB" it checks:
 * no delivered line is over the cap or holds a '\n', the framer's buffer
 * never exceeds the cap, and chunking does not change which lines come out
 * nor whether the stream ends in FERR_TOOBIG. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qmp/qmp_frame.h"
#include "util/ferr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
    size_t line_max; /* cap under test, bytes */
    unsigned lines;  /* lines delivered */
    uint64_t hash;   /* FNV-1a over the delivered lines and their lengths */
};

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 1099511628211ULL;
    }
}

static int on_line(void *arg, const char *line, size_t len)
{
    struct fz *z = arg;
    if (len == 0 || len > z->line_max || memchr(line, '\n', len))
        abort();
    z->lines++;
    hash_bytes(&z->hash, &len, sizeof(len));
    hash_bytes(&z->hash, line, len);
    struct qmp_msg m;
    int rc = qmp_msg_parse(line, len, &m);
    if ((rc == 0) != (m.kind != QMP_MSG_INVALID))
        abort();
    if (m.kind == QMP_MSG_INVALID && m.reason[0] == '\0')
        abort();
    /* touch what a consumer reads */
    if (m.kind == QMP_MSG_ERROR && (strlen(m.err_class) + strlen(m.err_desc)) == (size_t)-1)
        abort();
    if (m.kind == QMP_MSG_EVENT && m.event[0] == '\0')
        abort();
    qmp_msg_free(&m);
    return 0;
}

static int run(const uint8_t *data, size_t size, size_t line_max, int chunked, struct fz *z)
{
    struct qmp_framer f;
    memset(z, 0, sizeof(*z));
    z->hash = 14695981039346656037ULL;
    qmp_framer_init(&f, line_max);
    z->line_max = f.line_max;
    int rc = 0;
    if (!chunked) {
        rc = qmp_framer_feed(&f, (const char *)data, size, on_line, z);
    } else {
        uint32_t seed = (uint32_t)size * 2654435761u + 1;
        size_t off = 0;
        while (off < size && rc == 0) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 97;
            if (n > size - off)
                n = size - off;
            rc = qmp_framer_feed(&f, (const char *)data + off, n, on_line, z);
            off += n;
            if (f.cap > f.line_max + 2)
                abort();
        }
    }
    if (f.cap > f.line_max + 2 || (rc != 0 && rc != FERR_TOOBIG))
        abort();
    qmp_framer_free(&f);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {0, 64};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        struct fz whole, chunks;
        int rw = run(data, size, caps[i], 0, &whole);
        int rc = run(data, size, caps[i], 1, &chunks);
        if (rw != rc || whole.lines != chunks.lines || whole.hash != chunks.hash)
            abort();
    }
    return 0;
}
