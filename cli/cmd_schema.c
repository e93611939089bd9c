/*
 * cmd_schema.c - schema apply, schema show.
 */
#include "cli.h"
#include "jalloc.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* The library refuses larger files; read a little more to let it say so. */
#define SCHEMA_READ_MAX ((size_t)4 << 20)

const char HELP_SCHEMA[] =
    "usage: ckstore [--store DIR] [--key-file FILE] schema apply FILE|- [--force]\n"
    "       ckstore [--store DIR] [--key-file FILE] schema show\n"
    "\n"
    "The store's fields and purposes (docs/schema.md describes the file).\n"
    "\n"
    "apply FILE   validate the JSON schema in FILE (- for standard input) and make\n"
    "             it the current one, as a new version. Fields keep their ids while\n"
    "             they keep their name and type; adding fields and purposes is free;\n"
    "             applying the current schema again changes nothing. An invalid\n"
    "             file changes nothing: the error names the place and the problem,\n"
    "             e.g. purposes.analytics.minimize.birth_date: unknown minimisation\n"
    "             \"yeer\" (exit 6).\n"
    "  --force    also remove, or change the type of, fields that hold values:\n"
    "             those values are deleted. Without it such a change is refused\n"
    "             with the number of subjects holding the field (exit 4).\n"
    "             Prints {\"version\":N,\"changed\":BOOL,\"fields_added\":[...],\n"
    "             \"fields_removed\":[...],\"fields_retyped\":[...],\n"
    "             \"fields_changed\":[...],\"purposes_added\":[...],\n"
    "             \"purposes_removed\":[...],\"purposes_changed\":[...],\n"
    "             \"values_deleted\":N}.\n"
    "\n"
    "show         print the current schema: the file shape plus \"version\", every\n"
    "             attribute spelled out (exit 3 if no schema was applied yet).\n"
    "             Its output can be edited and applied back.\n";

/* Read all of `path` ("-": standard input) into a malloc'ed buffer. */
static int read_all(const char *path, char **out, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    *out = NULL;
    *len = 0;
    if (f == NULL)
        return cli_fail(errno == ENOENT ? EXIT_NOTFOUND : EXIT_OTHER, "cannot open %s: %s", path,
                        strerror(errno));
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    int code = buf == NULL ? cli_fail(EXIT_OTHER, "out of memory") : EXIT_OK;
    while (code == EXIT_OK) {
        if (n == cap) {
            if (cap > SCHEMA_READ_MAX) {
                code = cli_fail(EXIT_INVALID, "%s: the schema is larger than %zu bytes", path,
                                SCHEMA_READ_MAX);
                break;
            }
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                /* never hand on a truncated file as if it were whole */
                code = cli_fail(EXIT_OTHER, "out of memory");
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                code = cli_fail(EXIT_OTHER, "cannot read %s", path);
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (code != EXIT_OK) {
        free(buf);
        return code;
    }
    *out = buf;
    *len = n;
    return EXIT_OK;
}

static json_t *names_json(const ck_schema_names *n)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < n->count; i++)
        json_array_append_new(a, json_string(n->names[i]));
    return a;
}

static void print_names_text(const char *what, const ck_schema_names *n)
{
    if (n->count == 0)
        return;
    printf("%s:", what);
    for (size_t i = 0; i < n->count; i++)
        printf(" %s", n->names[i]);
    printf("\n");
}

static int schema_apply(cli *c, int argc, char **argv)
{
    bool force = false;
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
    int ch;
    /* argv[0] is "apply"; options may come before or after FILE. */
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'f')
            force = true;
        else
            return EXIT_USAGE;
    }
    if (optind + 1 != argc)
        return cli_fail(EXIT_USAGE, "schema apply needs one FILE, or - for standard input "
                                    "(see ckstore schema --help)");
    const char *path = argv[optind];

    char *json = NULL;
    size_t len = 0;
    int code = read_all(path, &json, &len);
    if (code != EXIT_OK)
        return code;
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK) {
        free(json);
        return code;
    }
    ck_schema_apply_result r = CK_SCHEMA_APPLY_RESULT_INIT;
    int rc = ck_schema_apply(st, json, len, force ? CK_SCHEMA_FORCE : 0u, &r);
    free(json);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, path);
        ck_schema_apply_result_free(&r);
        ck_close(st);
        return code;
    }
    if (c->format == FORMAT_TEXT) {
        if (r.changed)
            printf("schema version %u applied\n", (unsigned)r.schema_version);
        else
            printf("schema unchanged (version %u)\n", (unsigned)r.schema_version);
        print_names_text("fields added", &r.fields_added);
        print_names_text("fields removed", &r.fields_removed);
        print_names_text("fields retyped", &r.fields_retyped);
        print_names_text("fields changed", &r.fields_changed);
        print_names_text("purposes added", &r.purposes_added);
        print_names_text("purposes removed", &r.purposes_removed);
        print_names_text("purposes changed", &r.purposes_changed);
        if (r.values_deleted > 0)
            printf("values deleted: %llu\n", (unsigned long long)r.values_deleted);
        code = EXIT_OK;
    } else {
        code = cli_print_json(json_pack(
            "{s:I, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "version",
            (json_int_t)r.schema_version, "changed", r.changed, "fields_added",
            names_json(&r.fields_added), "fields_removed", names_json(&r.fields_removed),
            "fields_retyped", names_json(&r.fields_retyped), "fields_changed",
            names_json(&r.fields_changed), "purposes_added", names_json(&r.purposes_added),
            "purposes_removed", names_json(&r.purposes_removed), "purposes_changed",
            names_json(&r.purposes_changed), "values_deleted", (json_int_t)r.values_deleted));
    }
    ck_schema_apply_result_free(&r);
    ck_close(st);
    return code;
}

static int schema_show(cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_fail(EXIT_USAGE, "schema show takes no arguments (see ckstore schema --help)");
    ck_store *st = NULL;
    int code = cli_open(c, &st, CK_OPEN_RDONLY);
    if (code != EXIT_OK)
        return code;
    char *json = NULL;
    int rc = ck_schema_get_json(&json, st);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "schema show");
        ck_close(st);
        return code;
    }
    if (c->format == FORMAT_TEXT) {
        /* Indented JSON reads well enough for people. */
        json_error_t je;
        json_t *v = json_loads(json, 0, &je);
        char *pretty = v != NULL ? json_dumps(v, JSON_INDENT(2)) : NULL;
        puts(pretty != NULL ? pretty : json);
        cli_json_text_free(pretty);
        json_decref(v);
    } else {
        puts(json);
    }
    ck_free(json);
    ck_close(st);
    return EXIT_OK;
}

int cmd_schema(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "schema needs apply or show (see ckstore schema --help)");
    if (strcmp(argv[1], "apply") == 0)
        return schema_apply(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return schema_show(c, argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "unknown schema action '%s' (apply or show)", argv[1]);
}
