/* Replays a libFuzzer corpus through a target without libFuzzer, so that the
 * ordinary test run (`make check`, gcc build) exercises every saved input.
 * Usage: fuzz_X-replay DIR|FILE... ; prints one PASS line per corpus. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLAY_MAX (1u << 20)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = malloc(REPLAY_MAX);
    if (!buf) {
        fclose(f);
        return -1;
    }
    size_t n = fread(buf, 1, REPLAY_MAX, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            printf("FAIL replay %s: missing corpus\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[i]);
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                    continue;
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                if (replay_file(p) == 0)
                    files++;
            }
            if (d)
                closedir(d);
        } else if (replay_file(argv[i]) == 0) {
            files++;
        }
    }
    if (files == 0) {
        printf("FAIL replay: no corpus inputs found\n");
        return 1;
    }
    printf("PASS replay %s: %d inputs without a crash\n", argc > 1 ? argv[1] : "", files);
    return 0;
}
