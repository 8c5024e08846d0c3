// fuzz_config.c: libFuzzer target for the config parser (qt_config_parse, the one parser of
// config files and of the config stored in checkpoints; qt_config_load over a file) and
// `--set key=value` (qt_config_set), host/config/config.c.
//
// Input: one byte k, then text. The last k % 4 lines of the text are --set assignments (each
// as a C string: up to its first NUL), the rest is a config file.
//
// Properties, beyond "no crash, no leak, no UB":
//   - all or nothing: a failed parse, load or --set leaves the config unchanged (memcmp);
//   - one parser: qt_config_load of the text written to a file gives the same status and config
//     as qt_config_parse of it;
//   - write then load round-trips: qt_config_write of any config these calls reach, parsed back
//     over the defaults, is the same config bit for bit (memcmp), whether or not it validates.
#include "fuzz_util.h"
#include "qtrain/config.h"

static void check_round_trip(const qt_config *cfg) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    qt_status st = qt_config_write(cfg, f);
    fclose(f);
    if (st != QT_OK) fz_fail("qt_config_write failed on a config the parser made");
    qt_config back;
    qt_config_defaults(&back);
    if (qt_config_parse(&back, text, len, "written") != QT_OK)
        fz_fail("the written config does not parse back:\n%s", text);
    if (memcmp(&back, cfg, sizeof back) != 0) fz_fail("write then parse changed the config");
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int k = data[0] % 4;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    // The file part ends where the last k lines begin.
    size_t file_len = len;
    for (int i = 0; i < k && file_len > 0; i++) {
        size_t at = file_len - 1; // skip the newline ending the previous set line, if any
        while (at > 0 && text[at - 1] != '\n')
            at--;
        file_len = at;
    }

    qt_config cfg, before;
    qt_config_defaults(&cfg);
    before = cfg;
    qt_status st = qt_config_parse(&cfg, text, file_len, "fuzz");
    if (st != QT_OK && memcmp(&cfg, &before, sizeof cfg) != 0)
        fz_fail("a failed parse changed the config");

    char path[600];
    fz_path(path, sizeof path, "fuzz.conf");
    fz_write(path, text, file_len);
    qt_config loaded;
    qt_config_defaults(&loaded);
    qt_status st_load = qt_config_load(&loaded, path);
    if (st_load != st || memcmp(&loaded, &cfg, sizeof cfg) != 0)
        fz_fail("qt_config_load (%d) and qt_config_parse (%d) disagree", st_load, st);

    // The --set lines, each a C string.
    for (size_t at = file_len; at < len;) {
        const char *line = text + at;
        const char *nl = memchr(line, '\n', len - at);
        size_t n = nl ? (size_t)(nl - line) : len - at;
        at += n + 1;
        char *set = strndup(line, n);
        if (!set) abort();
        before = cfg;
        if (qt_config_set(&cfg, set, "--set") != QT_OK && memcmp(&cfg, &before, sizeof cfg) != 0)
            fz_fail("a failed --set changed the config");
        free(set);
    }
    check_round_trip(&cfg);
    (void)qt_config_validate(&cfg);
    return 0;
}
