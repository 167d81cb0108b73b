/* Integration: the real ferry binary against the real ferryd on 127.0.0.1
 * (temp config, store and bootstrap token). Proves: `host list --json`
 * prints the API's JSON with a host registered through the API, and the
 * table names it; without a token the CLI exits 1 with the 401 message;
 * bad usage exits 2 without calling anything; a config file (url + token)
 * is used when private and refused (exit 1, "chmod 600") when readable by
 * others, and so is a --token-file; flags beat the environment; when
 * ferryd serves migrations, `migration list --json` prints them and an
 * unknown id is a 404 with exit 1.
 *
 * ferryd runs in its own process group, is SIGKILLed when the test ends
 * and dies with the test (PR_SET_PDEATHSIG); every CLI run has a 20 s
 * alarm. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../lib/ferryd.h"
#include "../lib/test.h"
#include "util/httpc.h"
#include "util/xalloc.h"

#define HTTP_TIMEOUT_MS 5000
#define CLI_ALARM_S 20 /* s: a CLI run that takes longer is killed */

static char dir[64];
static char conf[128], logpath[128], tokpath[128], home[128];
static char url[64];
static char admin[300], agent[300];
static pid_t daemon_pid;
static int up;

static int api(const char *method, const char *path, const char *token, const json_t *body,
               json_t **out)
{
    struct ferr e = {0};
    int status = 0;
    json_t *o = NULL;
    if (httpc_json(url, method, path, body, token, HTTP_TIMEOUT_MS, &status, &o, &e) != 0)
        return -1;
    if (out)
        *out = o;
    else
        json_decref(o);
    return status;
}

/* What one CLI run produced. */
struct run {
    int code;  /* exit code; -1 when killed */
    char *out; /* stdout, owned */
    char *err; /* stderr, owned */
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return xstrdup("");
    char *buf = xmalloc(65537);
    size_t n = fread(buf, 1, 65536, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Runs build/ferry with args (NULL-terminated) and an environment of
 * HOME=home, FERRY_URL=url (unless env_url is "-": none, or another URL)
 * and FERRY_TOKEN=token (when token is non-NULL). */
static struct run cli(const char *env_url, const char *token, const char *const *args)
{
    char o[160], e[160];
    snprintf(o, sizeof(o), "%s/cli.out", dir);
    snprintf(e, sizeof(e), "%s/cli.err", dir);
    char *argv[32];
    int n = 0;
    argv[n++] = "ferry";
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char *envp[4];
    int k = 0;
    envp[k++] = xasprintf("HOME=%s", home);
    if (!env_url || strcmp(env_url, "-") != 0)
        envp[k++] = xasprintf("FERRY_URL=%s", env_url ? env_url : url);
    if (token)
        envp[k++] = xasprintf("FERRY_TOKEN=%s", token);
    envp[k] = NULL;
    struct run r = {-1, NULL, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0)
            _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        alarm(CLI_ALARM_S);
        execve(ferryd_bin("ferry"), argv, envp);
        _exit(127);
    }
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st))
        r.code = WEXITSTATUS(st);
    for (int i = 0; i < k; i++)
        free(envp[i]);
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

static int write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok && chmod(path, mode) == 0 ? 0 : -1;
}

static void t_host_list(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", logpath);
    json_t *b = json_pack("{s:s, s:s, s:i, s:i, s:[{s:s, s:s, s:i}]}", "name", "cli-h1",
                          "agent_url", "http://127.0.1.1:7001", "ram_mib", 8192, "vcpus", 4,
                          "instances", "name", "cli-g1", "project_id", "p1", "memory_mib", 256);
    int st = api("POST", "/v1/hosts/register", agent, b, NULL);
    json_decref(b);
    REQUIRE(st == 201 || st == 200, "register: HTTP %d", st);

    struct run r = cli(NULL, admin, (const char *const[]){"host", "list", "--json", NULL});
    CHECK(r.code == 0, "host list --json exit %d: %s", r.code, r.err);
    json_error_t je;
    json_t *o = json_loads(r.out, 0, &je);
    CHECK(o != NULL, "stdout is not JSON (%s): '%s'", je.text, r.out);
    json_t *h = json_array_get(json_object_get(o, "hosts"), 0);
    CHECK(h && strcmp(json_string_value(json_object_get(h, "name")), "cli-h1") == 0,
          "host cli-h1 not first in '%s'", r.out);
    CHECK(json_array_size(json_object_get(h, "instances")) == 1, "instances of cli-h1");
    json_decref(o);
    run_free(&r);

    r = cli(NULL, admin, (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 0 && strstr(r.out, "NAME") && strstr(r.out, "cli-h1") && strstr(r.out, "up"),
          "table: exit %d '%s'", r.code, r.out);
    run_free(&r);

    /* an agent token may not list hosts: 403 shown, exit 1 */
    r = cli(NULL, agent, (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 1 && strstr(r.err, "ferry: HTTP 403: "), "agent: exit %d '%s'", r.code, r.err);
    run_free(&r);
}

static void t_errors(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", logpath);
    struct run r = cli(NULL, NULL, (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 1, "no token: exit %d", r.code);
    CHECK(strncmp(r.err, "ferry: HTTP 401: ", 17) == 0, "no token: stderr '%s'", r.err);
    CHECK(r.out[0] == '\0', "no token: stdout '%s'", r.out);
    run_free(&r);

    r = cli(NULL, "wrong", (const char *const[]){"host", "list", "--json", NULL});
    CHECK(r.code == 1 && strstr(r.err, "HTTP 401"), "wrong token: exit %d '%s'", r.code, r.err);
    run_free(&r);

    const char *const *USAGE[] = {
        (const char *const[]){NULL},
        (const char *const[]){"frobnicate", NULL},
        (const char *const[]){"host", NULL},
        (const char *const[]){"host", "list", "extra", NULL},
        (const char *const[]){"host", "list", "--bogus", NULL},
        (const char *const[]){"migration", "show", NULL},
        (const char *const[]){"migration", "show", "a", "b", NULL},
        (const char *const[]){"migration", "explode", "x", NULL},
        (const char *const[]){"migration", "watch", "x", "--interval", "5", NULL},
        (const char *const[]){"migrate", NULL},
        (const char *const[]){"migrate", "g", "--bandwidth", "-3", NULL},
        (const char *const[]){"migrate", "g", "--to", "http://127.0.0.1:1", NULL},
        (const char *const[]){"migrate", "g", "--policy", "{not json", NULL},
        (const char *const[]){"migrate", "g", "--consent-timeout", "0", NULL},
        (const char *const[]){"migrate", "g", "--consent-on-timeout", "later", NULL},
        (const char *const[]){"consent", "grant", NULL},
        (const char *const[]){"consent", "grant", "../x", NULL},
    };
    for (size_t i = 0; i < sizeof(USAGE) / sizeof(USAGE[0]); i++) {
        r = cli(NULL, admin, USAGE[i]);
        CHECK(r.code == 2, "usage case %zu (%s ...): exit %d, stderr '%.120s'", i,
              USAGE[i][0] ? USAGE[i][0] : "", r.code, r.err);
        run_free(&r);
    }

    /* ferryd not listening: transport error, exit 1 */
    r = cli("http://127.0.0.1:1", admin, (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 1 && strstr(r.err, "ferry: "), "refused: exit %d '%s'", r.code, r.err);
    run_free(&r);
}

static void t_config(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", logpath);
    char cdir[200], cfg[240], tokf[200];
    snprintf(cdir, sizeof(cdir), "%s/.config/ferry", home);
    snprintf(cfg, sizeof(cfg), "%s/config", cdir);
    snprintf(tokf, sizeof(tokf), "%s/token", dir);
    char *mk = xasprintf("mkdir -p '%s'", cdir);
    REQUIRE(system(mk) == 0, "mkdir");
    free(mk);
    char *text = xasprintf("# test\nurl = %s\ntoken = %s\n", url, admin);

    /* readable by others: refused, nothing sent */
    REQUIRE(write_file(cfg, text, 0644) == 0, "write config");
    struct run r = cli("-", NULL, (const char *const[]){"host", "list", "--json", NULL});
    CHECK(r.code == 1 && strstr(r.err, "chmod 600") && strstr(r.err, cfg),
          "0644 config: exit %d '%s'", r.code, r.err);
    CHECK(r.out[0] == '\0', "0644 config: stdout '%s'", r.out);
    run_free(&r);

    /* private: used (url and token from the file) */
    REQUIRE(chmod(cfg, 0600) == 0, "chmod");
    r = cli("-", NULL, (const char *const[]){"host", "list", "--json", NULL});
    CHECK(r.code == 0 && strstr(r.out, "cli-h1"), "0600 config: exit %d '%s' '%s'", r.code, r.out,
          r.err);
    run_free(&r);

    /* the environment beats the file: a wrong FERRY_TOKEN is a 401 */
    r = cli("-", "wrong", (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 1 && strstr(r.err, "HTTP 401"), "env over file: exit %d '%s'", r.code, r.err);
    run_free(&r);

    /* --url beats FERRY_URL */
    char *flag = xasprintf("--url=%s", url);
    r = cli("http://127.0.0.1:1", admin, (const char *const[]){"host", "list", flag, NULL});
    CHECK(r.code == 0, "--url over env: exit %d '%s'", r.code, r.err);
    run_free(&r);
    free(flag);

    /* a bad config line is named */
    REQUIRE(write_file(cfg, "url = http://x:1\ncolour = blue\n", 0600) == 0, "write config");
    r = cli("-", NULL, (const char *const[]){"host", "list", NULL});
    CHECK(r.code == 1 && strstr(r.err, "line 2") && strstr(r.err, "colour"),
          "bad key: exit %d '%s'", r.code, r.err);
    run_free(&r);
    unlink(cfg);

    /* --token-file: refused when readable by others, used when private */
    char *line = xasprintf("%s\n", admin);
    REQUIRE(write_file(tokf, line, 0640) == 0, "write token file");
    r = cli(NULL, "wrong", (const char *const[]){"host", "list", "--token-file", tokf, NULL});
    CHECK(r.code == 1 && strstr(r.err, "chmod 600"), "0640 token file: exit %d '%s'", r.code,
          r.err);
    run_free(&r);
    REQUIRE(chmod(tokf, 0600) == 0, "chmod");
    r = cli(NULL, "wrong", (const char *const[]){"host", "list", "--token-file", tokf, NULL});
    CHECK(r.code == 0 && strstr(r.out, "cli-h1"), "0600 token file over env: exit %d '%s'", r.code,
          r.err);
    run_free(&r);
    free(line);
    free(text);
}

static void t_migrations(void)
{
    REQUIRE(up, "ferryd did not start (log %s)", logpath);
    int st = api("GET", "/v1/migrations", admin, NULL, NULL);
    REQUIRE(st == 200, "GET /v1/migrations: HTTP %d", st);
    struct run r = cli(NULL, admin, (const char *const[]){"migration", "list", "--json", NULL});
    CHECK(r.code == 0, "migration list --json: exit %d '%s'", r.code, r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    CHECK(json_is_array(json_object_get(o, "migrations")), "not the API's JSON: '%s'", r.out);
    json_decref(o);
    run_free(&r);

    r = cli(
        NULL, admin,
        (const char *const[]){"migration", "list", "--state", "running", "--host", "cli-h1", NULL});
    CHECK(r.code == 0 && strstr(r.out, "INSTANCE"), "filtered list: exit %d '%s'", r.code, r.err);
    run_free(&r);

    r = cli(NULL, admin, (const char *const[]){"migration", "show", "no-such-id", NULL});
    CHECK(r.code == 1 && strstr(r.err, "ferry: HTTP 404: "), "unknown id: exit %d '%s'", r.code,
          r.err);
    run_free(&r);

    /* The consent override reaches the record (a second host to go to;
     * no agent answers there, which does not matter for the record). */
    json_t *b = json_pack("{s:s, s:s, s:i, s:i, s:[]}", "name", "cli-h2", "agent_url",
                          "http://127.0.1.1:7002", "ram_mib", 8192, "vcpus", 4, "instances");
    st = api("POST", "/v1/hosts/register", agent, b, NULL);
    json_decref(b);
    REQUIRE(st == 201 || st == 200, "register cli-h2: HTTP %d", st);
    r = cli(NULL, admin,
            (const char *const[]){"migrate", "cli-g1", "--to", "cli-h2", "--consent-timeout", "7",
                                  "--consent-on-timeout", "abort", "--json", NULL});
    CHECK(r.code == 0, "migrate with consent override: exit %d '%s'", r.code, r.err);
    o = json_loads(r.out, 0, NULL);
    json_t *cons = json_object_get(o, "consent");
    CHECK(json_integer_value(json_object_get(cons, "timeout_s")) == 7 &&
              json_is_string(json_object_get(cons, "timeout_action")) &&
              strcmp(json_string_value(json_object_get(cons, "timeout_action")), "abort") == 0,
          "record's consent: '%s'", r.out);
    json_decref(o);
    run_free(&r);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ferry-cli-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (ferryd_guard(&daemon_pid) != 0)
        return 1;
    int port = 22000 + (int)(getpid() % 9000);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    snprintf(conf, sizeof(conf), "%s/ferryd.conf", dir);
    snprintf(logpath, sizeof(logpath), "%s/ferryd.log", dir);
    snprintf(tokpath, sizeof(tokpath), "%s/admin.token", dir);
    snprintf(home, sizeof(home), "%s/home", dir);
    if (mkdir(home, 0700) != 0)
        return 1;
    FILE *f = fopen(conf, "w");
    if (!f)
        return 1;
    fprintf(f, "listen = 127.0.0.1:%d\ndb = %s/ferryd.db\nbootstrap_token_file = %s\n", port, dir,
            tokpath);
    fclose(f);
    if (ferryd_conf_add_token(conf, logpath, "agent1", "infra", "agent", agent, sizeof(agent)) ==
        0) {
        daemon_pid = ferryd_spawn(conf, logpath);
        up = daemon_pid > 0 && ferryd_wait_health(url, &daemon_pid, 10000) == 0 &&
             ferryd_read_line(tokpath, admin, sizeof(admin)) == 0;
    }
    test_run("ferry cli: host list --json / table after a registration; agent token 403",
             t_host_list);
    test_run("ferry cli: no token → 1 with the 401; bad usage → 2; ferryd down → 1", t_errors);
    test_run("ferry cli: config file used when private, refused when readable by others; "
             "flags > env > file",
             t_config);
    test_run("ferry cli: migration list --json, filters, unknown id 404", t_migrations);
    ferryd_kill(&daemon_pid, SIGKILL, 0);
    if (test_done() != 0) {
        fprintf(stderr, "ferryd log (%s):\n", logpath);
        char *cmd = xasprintf("tail -30 '%s' >&2", logpath);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot show the log\n");
        free(cmd);
        return 1;
    }
    test_rm_rf(dir);
    return 0;
}
