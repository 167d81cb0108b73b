/* Unit: webhook delivery's pure parts (src/coord/webhook.c) and the webhook
 * configuration keys (src/coord/config.c). Proves: the signature is
 * HMAC-SHA256 in lower-case hex (the RFC 4231 test vectors, case 5 as its
 * 128-bit truncation); the retry schedule doubles from the base, stays
 * within [d/2, d] for any random input, never exceeds the cap, and the
 * jitter really spreads; the type filter matches exact types and prefixes
 * only; `webhook = URL SECRET [TYPES]` lines parse and bad ones are refused
 * naming the key. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/config.h"
#include "coord/webhook.h"

struct vec {
    const char *name;
    unsigned char key[131];
    size_t klen;
    const char *data; /* NULL: data_byte repeated data_len times */
    unsigned char data_byte;
    size_t data_len;
    const char *hex; /* expected; a prefix for the truncated case */
};

static void t_hmac(void)
{
    static struct vec v[7];
    memset(v, 0, sizeof(v));
    v[0] = (struct vec){.name = "case 1",
                        .klen = 20,
                        .data = "Hi There",
                        .hex = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"};
    memset(v[0].key, 0x0b, 20);
    v[1] = (struct vec){.name = "case 2",
                        .klen = 4,
                        .data = "what do ya want for nothing?",
                        .hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"};
    memcpy(v[1].key, "Jefe", 4);
    v[2] = (struct vec){.name = "case 3",
                        .klen = 20,
                        .data_byte = 0xdd,
                        .data_len = 50,
                        .hex = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"};
    memset(v[2].key, 0xaa, 20);
    v[3] = (struct vec){.name = "case 4",
                        .klen = 25,
                        .data_byte = 0xcd,
                        .data_len = 50,
                        .hex = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"};
    for (int i = 0; i < 25; i++)
        v[3].key[i] = (unsigned char)(i + 1);
    v[4] = (struct vec){.name = "case 5 (128-bit truncation)",
                        .klen = 20,
                        .data = "Test With Truncation",
                        .hex = "a3b6167473100ee06e0c796c2955552b"};
    memset(v[4].key, 0x0c, 20);
    v[5] = (struct vec){.name = "case 6",
                        .klen = 131,
                        .data = "Test Using Larger Than Block-Size Key - Hash Key First",
                        .hex = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"};
    memset(v[5].key, 0xaa, 131);
    v[6] = (struct vec){.name = "case 7",
                        .klen = 131,
                        .data = "This is a test using a larger than block-size key and a larger "
                                "than block-size data. The key needs to be hashed before being "
                                "used by the HMAC algorithm.",
                        .hex = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"};
    memset(v[6].key, 0xaa, 131);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned char buf[64];
        const void *msg = v[i].data;
        size_t mlen = v[i].data ? strlen(v[i].data) : v[i].data_len;
        if (!v[i].data) {
            memset(buf, v[i].data_byte, v[i].data_len);
            msg = buf;
        }
        char out[WEBHOOK_SIG_HEX + 1];
        CHECK(webhook_hmac_hex(v[i].key, v[i].klen, msg, mlen, out) == 0, "%s failed", v[i].name);
        CHECK(strlen(out) == 64 && strncmp(out, v[i].hex, strlen(v[i].hex)) == 0,
              "%s: got %s want %s", v[i].name, out, v[i].hex);
    }
    char a[65], b[65];
    CHECK(webhook_hmac_hex("k", 1, "", 0, a) == 0 && strlen(a) == 64, "empty body signs");
    CHECK(webhook_hmac_hex("k", 1, "x", 1, b) == 0 && strcmp(a, b) != 0, "body changes signature");
}

static void t_backoff(void)
{
    /* without jitter's spread (rnd 0 gives the floor d/2 + 0, rnd max gives d) */
    static const struct {
        unsigned failures;
        uint32_t lo, hi;
    } want[] = {{0, 500, 1000},       {1, 500, 1000},       {2, 1000, 2000},
                {3, 2000, 4000},      {4, 4000, 8000},      {9, 128000, 256000},
                {10, 150000, 300000}, {20, 150000, 300000}, {1000, 150000, 300000}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint32_t lo = webhook_backoff_ms(want[i].failures, 1000, 300000, 0);
        uint32_t hi = webhook_backoff_ms(want[i].failures, 1000, 300000, UINT32_MAX);
        CHECK(lo >= want[i].lo && hi <= want[i].hi && lo <= hi,
              "failures %u: [%u, %u] not in [%u, %u]", want[i].failures, lo, hi, want[i].lo,
              want[i].hi);
    }
    /* every random input stays in range and under the cap; the spread is real */
    uint32_t x = 12345, min = UINT32_MAX, max = 0;
    for (int i = 0; i < 100000; i++) {
        x = x * 1664525u + 1013904223u;
        unsigned f = 1 + (x >> 28); /* 1..16 */
        uint32_t d = webhook_backoff_ms(f, 1000, 300000, x);
        CHECK(d <= 300000 && d >= 500, "failures %u gave %u", f, d);
        if (f == 3) {
            min = d < min ? d : min;
            max = d > max ? d : max;
        }
    }
    CHECK(min >= 2000 && max <= 4000 && max - min > 1500, "jitter at try 3 spans [%u, %u]", min,
          max);
    CHECK(webhook_backoff_ms(5, 100, 250, 7) <= 250, "small cap holds");
    CHECK(webhook_backoff_ms(UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX) == UINT32_MAX,
          "no overflow at the extremes");
}

static void t_filter(void)
{
    static const struct {
        const char *filter, *type;
        bool match;
    } c[] = {{"", "host.down", true},
             {"host.down", "host.down", true},
             {"host.down", "host.up", false},
             {"host.down", "host.downs", false},
             {"host.*", "host.up", true},
             {"host.*", "hostile.up", false},
             {"migration.*,host.down", "host.down", true},
             {"migration.*,host.down", "migration.progress", true},
             {"migration.*,host.down", "webhook.dead_letter", false},
             {"*", "anything", true},
             {"migration.completed,", "migration.completed", true}};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        CHECK(webhook_type_match(c[i].filter, c[i].type) == c[i].match, "'%s' vs %s", c[i].filter,
              c[i].type);
}

static void t_config(void)
{
    static const char ok[] =
        "webhook = http://127.0.0.1:9000/hook 0123456789abcdef\n"
        "webhook = http://10.0.0.1/x?a=1 0123456789abcdefXYZ migration.*,host.down\n"
        "webhook_max_tries = 3\nwebhook_backoff_base_ms = 50\n"
        "webhook_backoff_cap_ms = 400\n";
    struct config c;
    struct ferr e = {0};
    config_defaults(&c);
    CHECK(c.n_webhooks == 0 && c.webhook_max_tries == 8 && c.webhook_backoff_base_ms == 1000 &&
              c.webhook_backoff_cap_ms == 300000,
          "defaults");
    REQUIRE(config_parse(&c, ok, strlen(ok), &e) == 0, "parse: %s", e.msg);
    CHECK(c.n_webhooks == 2, "two endpoints, got %u", c.n_webhooks);
    CHECK(strcmp(c.webhooks[0].url, "http://127.0.0.1:9000/hook") == 0 &&
              strcmp(c.webhooks[0].secret, "0123456789abcdef") == 0 && !c.webhooks[0].types[0],
          "first endpoint");
    CHECK(strcmp(c.webhooks[1].types, "migration.*,host.down") == 0, "types '%s'",
          c.webhooks[1].types);
    CHECK(c.webhook_max_tries == 3 && c.webhook_backoff_base_ms == 50 &&
              c.webhook_backoff_cap_ms == 400,
          "tuning keys");
    static const char *const bad[] = {
        "webhook = https://127.0.0.1/x 0123456789abcdef",    /* no TLS client */
        "webhook = http://127.0.0.1/x short",                /* secret < 16 bytes */
        "webhook = http://127.0.0.1/x",                      /* no secret */
        "webhook = http://127.0.0.1/x 0123456789abcdef a b", /* extra word */
        "webhook = http:// 0123456789abcdef",                /* no host */
        "webhook_max_tries = 0",
        "webhook_max_tries = 101",
        "webhook_backoff_base_ms = 5",
        "webhook_backoff_cap_ms = x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        config_defaults(&c);
        ferr_clear(&e);
        CHECK(config_parse(&c, bad[i], strlen(bad[i]), &e) == FERR_INVAL &&
                  strncmp(e.field, "webhook", 7) == 0,
              "'%s' accepted (field '%s')", bad[i], e.field);
    }
    char many[4096] = "";
    for (int i = 0; i <= CONFIG_WEBHOOKS_MAX; i++) {
        char line[128];
        snprintf(line, sizeof(line), "webhook = http://127.0.0.1:%d/ 0123456789abcdef\n", 9000 + i);
        strncat(many, line, sizeof(many) - strlen(many) - 1);
    }
    config_defaults(&c);
    CHECK(config_parse(&c, many, strlen(many), &e) == FERR_INVAL, "more than %d endpoints accepted",
          CONFIG_WEBHOOKS_MAX);
}

int main(void)
{
    test_run("webhook: HMAC-SHA256 hex matches RFC 4231 vectors", t_hmac);
    test_run("webhook: backoff doubles, jitters within [d/2, d], capped", t_backoff);
    test_run("webhook: type filter (exact, prefix*, lists)", t_filter);
    test_run("webhook: config lines parse; bad ones refused naming the key", t_config);
    return test_done();
}
