/* Unit: ferryd's configuration parser (src/coord/config.c). Proves: the
 * documented defaults; every key parses; comments and blank lines are
 * ignored; each bad line is refused naming its key (table of cases); an
 * oversize line or file is refused; the example etc/ferryd.conf loads. */
#include <errno.h>
#include <string.h>

#include "../lib/test.h"
#include "coord/config.h"

static void t_defaults(void)
{
    struct config c;
    config_defaults(&c);
    CHECK(strcmp(c.listen_addr, "127.0.0.1") == 0 && c.listen_port == 7400, "listen");
    CHECK(strcmp(c.db_path, "ferryd.db") == 0, "db %s", c.db_path);
    CHECK(c.heartbeat_interval_ms == 10000 && c.heartbeat_missed == 3, "heartbeat");
    CHECK(c.progress_events_per_s == 1.0, "progress rate");
    CHECK(c.policy_file[0] == '\0' && c.bootstrap_token_file[0] == '\0', "optional files");
    CHECK(c.max_migrations == 8 && c.max_migrations_per_source == 1 &&
              c.max_migrations_per_dest == 1,
          "admission caps %u/%u/%u", c.max_migrations, c.max_migrations_per_source,
          c.max_migrations_per_dest);
    CHECK(c.consent_timeout_max_s == 86400 && c.sse_max_subscribers == 64, "consent max, sse");
    CHECK(c.read_threads == 2, "read_threads %u", c.read_threads);
}

static void t_parse(void)
{
    static const char text[] = "# ferryd\n\n"
                               "listen = 127.0.0.2:8000\r\n"
                               "  db=/var/lib/ferry/ferryd.db  \n"
                               "policy_file = /etc/ferry/policy.json\n"
                               "bootstrap_token_file = /etc/ferry/admin.token\n"
                               "heartbeat_interval_ms = 500\n"
                               "heartbeat_missed = 5\n"
                               "progress_events_per_s = 2.5\n"
                               "log_level = debug\n"
                               "max_migrations = 0\n"
                               "max_migrations_per_source = 2\n"
                               "max_migrations_per_destination = 3\n"
                               "consent_timeout_max_s = 60\n"
                               "sse_max_subscribers = 1000\n"
                               "read_threads = 0";
    struct config c;
    struct ferr e = {0};
    config_defaults(&c);
    REQUIRE(config_parse(&c, text, strlen(text), &e) == 0, "parse: %s", e.msg);
    CHECK(strcmp(c.listen_addr, "127.0.0.2") == 0 && c.listen_port == 8000, "listen");
    CHECK(strcmp(c.db_path, "/var/lib/ferry/ferryd.db") == 0, "db '%s'", c.db_path);
    CHECK(strcmp(c.policy_file, "/etc/ferry/policy.json") == 0, "policy");
    CHECK(strcmp(c.bootstrap_token_file, "/etc/ferry/admin.token") == 0, "token file");
    CHECK(c.heartbeat_interval_ms == 500 && c.heartbeat_missed == 5, "heartbeat");
    CHECK(c.progress_events_per_s == 2.5, "rate");
    CHECK(strcmp(c.log_level, "debug") == 0, "log level");
    CHECK(c.max_migrations == 0 && c.max_migrations_per_source == 2 &&
              c.max_migrations_per_dest == 3,
          "admission caps");
    CHECK(c.consent_timeout_max_s == 60 && c.sse_max_subscribers == 1000, "consent max, sse");
    CHECK(c.read_threads == 0, "read_threads %u", c.read_threads);
}

static void t_bad(void)
{
    static const struct {
        const char *text;
        int code;
        const char *field;
    } cases[] = {
        {"colour = blue", FERR_INVAL, "colour"},
        {"listen = 127.0.0.1", FERR_INVAL, "listen"},
        {"listen = localhost:80", FERR_INVAL, "listen"},
        {"listen = 127.0.0.1:0", FERR_INVAL, "listen"},
        {"listen = 127.0.0.1:70000", FERR_INVAL, "listen"},
        {"db =", FERR_INVAL, "db"},
        {"heartbeat_interval_ms = 10", FERR_INVAL, "heartbeat_interval_ms"},
        {"heartbeat_interval_ms = -5", FERR_INVAL, "heartbeat_interval_ms"},
        {"heartbeat_interval_ms = 5s", FERR_INVAL, "heartbeat_interval_ms"},
        {"heartbeat_missed = 0", FERR_INVAL, "heartbeat_missed"},
        {"progress_events_per_s = 0", FERR_INVAL, "progress_events_per_s"},
        {"progress_events_per_s = nan", FERR_INVAL, "progress_events_per_s"},
        {"log_level = loud", FERR_INVAL, "log_level"},
        {"max_migrations = 4097", FERR_INVAL, "max_migrations"},
        {"max_migrations_per_source = -1", FERR_INVAL, "max_migrations_per_source"},
        {"max_migrations_per_destination = 65", FERR_INVAL, "max_migrations_per_destination"},
        {"consent_timeout_max_s = 0", FERR_INVAL, "consent_timeout_max_s"},
        {"consent_timeout_max_s = 604801", FERR_INVAL, "consent_timeout_max_s"},
        {"read_threads = 65", FERR_INVAL, "read_threads"},
        {"read_threads = two", FERR_INVAL, "read_threads"},
        {"just words", FERR_INVAL, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config c;
        struct ferr e = {0};
        config_defaults(&c);
        int rc = config_parse(&c, cases[i].text, strlen(cases[i].text), &e);
        CHECK(rc == cases[i].code && strcmp(e.field, cases[i].field) == 0, "'%s': rc %d field '%s'",
              cases[i].text, rc, e.field);
        CHECK(rc == 0 || strstr(e.msg, "line 1") != NULL, "'%s': no line in '%s'", cases[i].text,
              e.msg);
    }
}

static void t_caps(void)
{
    static char buf[CONFIG_FILE_MAX + 2];
    struct config c;
    struct ferr e = {0};
    config_defaults(&c);
    memset(buf, '#', CONFIG_LINE_MAX + 1);
    CHECK(config_parse(&c, buf, CONFIG_LINE_MAX + 1, &e) == FERR_TOOBIG, "long line");
    memset(buf, '\n', sizeof(buf));
    CHECK(config_parse(&c, buf, sizeof(buf), &e) == FERR_TOOBIG, "big file");
    char path[CONFIG_PATH_MAX + 16] = "db = ";
    memset(path + 5, 'p', CONFIG_PATH_MAX);
    path[5 + CONFIG_PATH_MAX] = '\0';
    CHECK(config_parse(&c, path, strlen(path), &e) == FERR_INVAL && strcmp(e.field, "db") == 0,
          "long path");
}

static void t_example(void)
{
    struct config c;
    struct ferr e = {0};
    config_defaults(&c);
    int rc = config_load(&c, "etc/ferryd.conf", &e);
    /* tests run from the source tree (tests/run.sh): a missing example is
     * a failure */
    CHECK(rc == 0, "etc/ferryd.conf: %s", e.msg);
    struct config d;
    config_defaults(&d);
    CHECK(c.listen_port == d.listen_port && c.heartbeat_interval_ms == d.heartbeat_interval_ms &&
              c.heartbeat_missed == d.heartbeat_missed,
          "the example's values differ from the defaults it documents");
}

int main(void)
{
    test_run("config: documented defaults", t_defaults);
    test_run("config: every key parses; comments, blanks, CRLF", t_parse);
    test_run("config: bad lines refused naming the key", t_bad);
    test_run("config: oversize line, file and path refused", t_caps);
    test_run("config: etc/ferryd.conf loads and matches the defaults", t_example);
    return test_done();
}
