/*
 * cmd_data.c - put, import, alias; and the subject selection that every
 * command naming one subject shares.
 *
 * Values are customer data: no message here quotes one. Arguments are named
 * by their position or their field name instead.
 */
#include "cli.h"
#include "jalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* import reads its input in chunks of this size, never whole. */
#define IMPORT_CHUNK ((size_t)1 << 20)
/* ck_import_options' largest batch_lines. */
#define IMPORT_BATCH_MAX 1048576UL

const char HELP_PUT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] put SUBJECT [--create]\n"
    "               FIELD=VALUE... FIELD:=JSON... FIELD=...\n"
    "\n"
    "Set or delete fields of one subject, all or none.\n"
    "\n"
    "SUBJECT is exactly one of:\n"
    "  --ref R              the CRM's customer number\n"
    "  --subject ID         the internal id (32 hex characters)\n"
    "  --alias A            an alias of the subject\n"
    "  --lookup FIELD=VALUE the value of an identifying field (e.g. email)\n"
    "  --pseudonym PS --pseudonym-purpose P [--pseudonym-recipient R]\n"
    "                       a pseudonym, in the context that made it\n"
    "  --create             with --ref only: create the subject when the ref is\n"
    "                       unknown (without it an unknown ref is exit 3)\n"
    "\n"
    "Fields (at least one; each field at most once):\n"
    "  FIELD=VALUE   VALUE is text, read as the field's type: a string as it is,\n"
    "                an int (age=42), a float, a bool (true/false), a date\n"
    "                (YYYY-MM-DD), a timestamp (RFC 3339), bytes (base64)\n"
    "  FIELD:=JSON   VALUE is raw JSON: interests:=[\"wine\",\"cheese\"], age:=42\n"
    "  FIELD=        (nothing after =) or FIELD:=null deletes the field's value\n"
    "\n"
    "Prints {\"subject\":\"<32 hex id>\"}. A value of the wrong type or an\n"
    "unknown field changes nothing and exits 6, naming the field (never the\n"
    "value); no such subject exits 3.\n";

const char HELP_IMPORT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] import FILE|- [--source TEXT]\n"
    "               [--actor A] [--batch N] [--recreate-erased]\n"
    "\n"
    "Import profiles and consents from JSON Lines (FILE, or standard input for\n"
    "-), one subject per line:\n"
    "  {\"ref\":\"C-1\",\"fields\":{\"email\":\"...\",\"city\":\"Paris\"},\n"
    "   \"consent\":{\"marketing.email\":true,\"analytics\":{\"state\":\"objected\"}}}\n"
    "\"ref\" is required; a ref seen before updates its subject (the fields given\n"
    "are set, the others kept; the consents given are appended). A consent value\n"
    "is true (granted), false (refused) or an object with \"state\" and optional\n"
    "\"fields\", \"recipients\", \"expires\", \"source\", \"notice\", \"collector\".\n"
    "\n"
    "Each line is atomic: a bad line (bad JSON, not an object, unknown key, field\n"
    "or purpose, wrong type, impossible date, bad consent value, no ref) writes\n"
    "nothing and is reported on standard error as\n"
    "  ckstore: import: line N: REASON\n"
    "(the reason never quotes a value). Blank lines are skipped. The file is\n"
    "read in 1 MiB chunks, so its size is not limited by memory.\n"
    "\n"
    "Options:\n"
    "  --source TEXT  evidence source of the consents whose line names none\n"
    "                 (default: the file's base name, or \"stdin\")\n"
    "  --actor A      the audit log's actor (default: import)\n"
    "  --batch N      lines per commit, 1 to 1048576 (default 4096)\n"
    "  --recreate-erased\n"
    "                 a line whose ref belonged to an erased subject makes a NEW\n"
    "                 subject with only the line's consents; without it such a line\n"
    "                 is rejected (erase leaves a tombstone of the ref)\n"
    "\n"
    "Prints {\"imported\":N,\"rejected\":M,\"created\":C,\"updated\":U,\"consents\":K}:\n"
    "imported = created + updated, the lines written; consents = the consent\n"
    "records appended. On a terminal, a progress line is shown on standard error\n"
    "once the import has run for a second.\n"
    "\n"
    "Exit 0 when no line was rejected, 6 when some were (the good ones are\n"
    "imported), 3 when FILE does not exist or no schema was applied. A hard\n"
    "error (disk full, I/O) stops the import: the batches committed before it\n"
    "stay, their counts are printed, and the exit code is the error's.\n";

const char HELP_ALIAS[] =
    "usage: ckstore [--store DIR] [--key-file FILE] alias add|remove SUBJECT ALIAS\n"
    "\n"
    "Give a subject an alias - a handle the customer chose (a loyalty card, an\n"
    "app handle), 1 to 256 bytes, unique in the store - or remove one. A subject\n"
    "with an alias can then be named by --alias ALIAS, with no identifying field.\n"
    "\n"
    "SUBJECT is exactly one of --ref R, --subject ID, --alias A,\n"
    "--lookup FIELD=VALUE, or --pseudonym PS --pseudonym-purpose P\n"
    "[--pseudonym-recipient R] (see ckstore put --help).\n"
    "\n"
    "add     prints {\"added\":true}; adding an alias the subject already has is\n"
    "        not an error. An alias held by another subject exits 6.\n"
    "remove  prints {\"removed\":true}; exit 3 if the subject does not hold it.\n"
    "\n"
    "No such subject exits 3.\n";

/* ------------------------------------------------------------------------ */
/* Shared: options and subject selection                                    */
/* ------------------------------------------------------------------------ */

int cli_bad_option(char **argv, const char *cmd)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    /* "--opt=value": never echo the value */
    size_t n = strcspn(arg, "=");
    if (optopt != 0 && optopt < 0x100 && arg[0] == '-' && arg[1] != '-')
        return cli_fail(EXIT_USAGE, "%s: unknown option -%c (see ckstore %s --help)", cmd, optopt,
                        cmd);
    return cli_fail(EXIT_USAGE,
                    "%s: unknown option %.*s, or it needs an argument (see ckstore %s --help)", cmd,
                    (int)(n > 64 ? 64 : n), arg, cmd);
}

int cli_actor_option(int argc, char **argv, const char *cmd, const char **actor)
{
    static const struct option opts[] = {{"actor", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'a')
            *actor = optarg;
        else
            return cli_bad_option(argv, cmd);
    }
    return EXIT_OK;
}

int cli_who_option(cli_who *w, int opt, char *arg)
{
    switch (opt) {
    case CLI_OPT_SUBJECT:
        w->who.by = CK_BY_ID;
        break;
    case CLI_OPT_REF:
        w->who.by = CK_BY_REF;
        break;
    case CLI_OPT_ALIAS:
        w->who.by = CK_BY_ALIAS;
        break;
    case CLI_OPT_PSEUDONYM:
        w->who.by = CK_BY_PSEUDONYM;
        break;
    case CLI_OPT_LOOKUP: {
        char *eq = strchr(arg, '=');
        if (eq == NULL || eq == arg)
            return cli_fail(EXIT_USAGE, "--lookup needs FIELD=VALUE, FIELD an identifying field "
                                        "such as email");
        *eq = '\0';
        w->who.by = CK_BY_LOOKUP;
        w->who.field = arg;
        arg = eq + 1;
        break;
    }
    case CLI_OPT_PS_PURPOSE:
        w->ps_purpose = arg;
        return EXIT_OK;
    case CLI_OPT_PS_RECIPIENT:
        w->ps_recipient = arg;
        return EXIT_OK;
    default:
        return -1;
    }
    w->who.value = arg;
    w->who.len = strlen(arg);
    w->given++;
    return EXIT_OK;
}

int cli_who_check(cli_who *w, const char *cmd, const char *purpose, const char *recipient)
{
    if (w->given != 1)
        return cli_fail(EXIT_USAGE,
                        "%s: name the subject with exactly one of --subject, --ref, --lookup, "
                        "--pseudonym, --alias",
                        cmd);
    if (w->who.len == 0)
        return cli_fail(EXIT_USAGE, "%s: the subject reference is empty", cmd);
    bool ps_ctx = w->ps_purpose != NULL || w->ps_recipient != NULL;
    if (w->who.by != CK_BY_PSEUDONYM) {
        if (ps_ctx)
            return cli_fail(EXIT_USAGE,
                            "%s: --pseudonym-purpose and --pseudonym-recipient go with "
                            "--pseudonym only",
                            cmd);
        return EXIT_OK;
    }
    w->who.purpose = w->ps_purpose != NULL ? w->ps_purpose : purpose;
    w->who.recipient = ps_ctx ? w->ps_recipient : recipient;
    if (w->who.purpose == NULL)
        return cli_fail(EXIT_USAGE,
                        "%s: --pseudonym needs the context it was made in: "
                        "--pseudonym-purpose P (and --pseudonym-recipient R if it was made for "
                        "a recipient)",
                        cmd);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* put                                                                      */
/* ------------------------------------------------------------------------ */

/* Add argument `i` (FIELD=VALUE, FIELD:=JSON or FIELD=) to `obj`. */
static int put_arg(json_t *obj, const char *arg, int i)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return cli_fail(EXIT_USAGE,
                        "put: argument %d is not FIELD=VALUE, FIELD:=JSON or FIELD= "
                        "(see ckstore put --help)",
                        i);
    bool raw = eq > arg && eq[-1] == ':';
    size_t flen = (size_t)(eq - arg) - (raw ? 1u : 0u);
    if (flen == 0)
        return cli_fail(EXIT_USAGE, "put: argument %d has no field name before =", i);
    if (flen > 256)
        return cli_fail(EXIT_USAGE, "put: argument %d: the field name is too long", i);
    char field[257];
    memcpy(field, arg, flen);
    field[flen] = '\0';
    if (json_object_get(obj, field) != NULL)
        return cli_fail(EXIT_USAGE, "put: field %s is given twice", field);
    const char *val = eq + 1;
    json_t *v;
    if (raw) {
        json_error_t je;
        v = json_loads(val, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
        if (v == NULL)
            /* je.text may quote the value: give the position only */
            return cli_fail(EXIT_INVALID,
                            "put: field %s: the value after := is not valid JSON "
                            "(column %d)",
                            field, je.column);
    } else if (*val == '\0') {
        v = json_null();
    } else {
        v = json_string(val);
        if (v == NULL)
            return cli_fail(EXIT_INVALID, "put: field %s: the value is not valid UTF-8", field);
    }
    if (json_object_set_new(obj, field, v) != 0)
        return cli_fail(EXIT_INVALID, "put: field %s: not a valid field name", field);
    return EXIT_OK;
}

int cmd_put(cli *c, int argc, char **argv)
{
    cli_who w = CLI_WHO_INIT;
    bool create = false;
    static const struct option opts[] = {
        CLI_WHO_OPTIONS, {"create", no_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r == EXIT_OK)
            continue;
        if (r > 0)
            return r;
        if (ch == 'c')
            create = true;
        else
            return cli_bad_option(argv, "put");
    }
    int code = cli_who_check(&w, "put", NULL, NULL);
    if (code != EXIT_OK)
        return code;
    if (create && w.who.by != CK_BY_REF)
        return cli_fail(EXIT_USAGE, "put: --create goes with --ref only");
    if (optind >= argc)
        return cli_fail(EXIT_USAGE, "put: give at least one FIELD=VALUE (see ckstore put --help)");

    json_t *obj = json_object();
    if (obj == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    for (int i = optind; i < argc; i++) {
        code = put_arg(obj, argv[i], i - optind + 1);
        if (code != EXIT_OK) {
            json_decref(obj);
            return code;
        }
    }
    char *json = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (json == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    size_t len = strlen(json);

    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        unsigned char id[CK_SUBJECT_ID_BYTES];
        int rc = ck_put_json(id, st, &w.who, json, len, create ? CK_PUT_CREATE : 0u);
        if (rc != CK_OK) {
            code = cli_fail_rc(rc, st, NULL, "put");
        } else {
            char hex[2 * CK_SUBJECT_ID_BYTES + 1];
            ck_subject_id_hex(hex, id);
            if (c->format == FORMAT_TEXT)
                printf("subject: %s\n", hex);
            else
                code = cli_print_json(json_pack("{s:s}", "subject", hex));
        }
        ck_close(st);
    }
    sodium_memzero(json, len); /* it holds the values */
    cli_json_text_free(json);
    return code;
}

/* ------------------------------------------------------------------------ */
/* alias                                                                    */
/* ------------------------------------------------------------------------ */

int cmd_alias(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "alias needs add or remove (see ckstore alias --help)");
    bool add;
    if (strcmp(argv[1], "add") == 0)
        add = true;
    else if (strcmp(argv[1], "remove") == 0)
        add = false;
    else
        return cli_fail(EXIT_USAGE, "unknown alias action '%.32s' (add or remove)", argv[1]);
    const char *what = add ? "alias add" : "alias remove";
    argc--;
    argv++;

    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS, {NULL, 0, NULL, 0}};
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r < 0)
            return cli_bad_option(argv, what);
    }
    int code = cli_who_check(&w, what, NULL, NULL);
    if (code != EXIT_OK)
        return code;
    if (optind + 1 != argc)
        return cli_fail(EXIT_USAGE, "%s needs one ALIAS (see ckstore alias --help)", what);
    const char *alias = argv[optind];

    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    int rc = add ? ck_alias_add(st, &w.who, alias, strlen(alias))
                 : ck_alias_remove(st, &w.who, alias, strlen(alias));
    if (rc == CK_EEXIST) {
        /* cli_exit_code says 1 for CK_EEXIST; here it is the input's fault */
        code = cli_fail(EXIT_INVALID, "%s: the alias is already held by another subject", what);
    } else if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, what);
    } else if (c->format == FORMAT_TEXT) {
        printf("alias %s\n", add ? "added" : "removed");
    } else {
        code = cli_print_json(json_pack("{s:b}", add ? "added" : "removed", 1));
    }
    ck_close(st);
    return code;
}

/* ------------------------------------------------------------------------ */
/* import                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct import_ui {
    bool tty;              /* stderr is a terminal: show progress */
    struct timespec start; /* monotonic */
    double last_shown;     /* seconds since start of the last progress line */
    int shown_len;         /* width of the progress line on screen, 0 = none */
} import_ui;

static double since(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Erase the progress line, so that a message starts on a clean line. */
static void progress_clear(import_ui *ui)
{
    if (ui->shown_len > 0) {
        fprintf(stderr, "\r%*s\r", ui->shown_len, "");
        ui->shown_len = 0;
    }
}

static void progress(import_ui *ui, const ck_importer *imp)
{
    if (!ui->tty)
        return;
    double t = since(&ui->start);
    if (t < 1.0 || t - ui->last_shown < 0.25)
        return;
    ui->last_shown = t;
    ck_import_stats s;
    ck_import_stats_get(imp, &s);
    int n = fprintf(stderr, "\rimport: %" PRIu64 " lines, %.0f/s", s.lines, (double)s.lines / t);
    if (n > 1 && n - 1 < ui->shown_len) /* pad over a longer previous line */
        fprintf(stderr, "%*s", ui->shown_len - (n - 1), "");
    if (n > 1 && n - 1 > ui->shown_len)
        ui->shown_len = n - 1;
    fflush(stderr);
}

static void on_reject(void *ctx, uint64_t line, const char *reason)
{
    import_ui *ui = ctx;
    progress_clear(ui);
    fprintf(stderr, "ckstore: import: line %" PRIu64 ": %s\n", line, reason);
}

static int print_import_stats(const cli *c, const ck_import_stats *s)
{
    if (c->format == FORMAT_TEXT) {
        printf("imported %" PRIu64 " (created %" PRIu64 ", updated %" PRIu64 "), rejected %" PRIu64
               ", consents %" PRIu64 "\n",
               s->imported, s->created, s->updated, s->rejected, s->consents);
        return EXIT_OK;
    }
    return cli_print_json(json_pack("{s:I, s:I, s:I, s:I, s:I}", "imported",
                                    (json_int_t)s->imported, "rejected", (json_int_t)s->rejected,
                                    "created", (json_int_t)s->created, "updated",
                                    (json_int_t)s->updated, "consents", (json_int_t)s->consents));
}

/* Feed the whole of `fd` to `imp`, `IMPORT_CHUNK` bytes at a time through
 * `buf`. Returns CK_OK, the importer's error, or CK_EIO with *read_errno
 * set. */
static int import_stream(ck_importer *imp, int fd, char *buf, import_ui *ui, int *read_errno)
{
    *read_errno = 0;
    for (;;) {
        ssize_t got = read(fd, buf, IMPORT_CHUNK);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            *read_errno = errno;
            return CK_EIO;
        }
        if (got == 0)
            return CK_OK;
        int rc = ck_import_feed(imp, buf, (size_t)got);
        if (rc != CK_OK)
            return rc;
        progress(ui, imp);
    }
}

int cmd_import(cli *c, int argc, char **argv)
{
    const char *source = NULL, *actor = NULL;
    unsigned long batch = 0;
    unsigned flags = 0;
    static const struct option opts[] = {{"source", required_argument, NULL, 's'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"recreate-erased", no_argument, NULL, 'r'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            source = optarg;
            break;
        case 'a':
            actor = optarg;
            break;
        case 'r':
            flags |= CK_IMPORT_RECREATE_ERASED;
            break;
        case 'b': {
            char *end;
            errno = 0;
            batch = strtoul(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' || batch == 0 ||
                batch > IMPORT_BATCH_MAX)
                return cli_fail(EXIT_USAGE, "import: --batch must be 1 to %lu", IMPORT_BATCH_MAX);
            break;
        }
        default:
            return cli_bad_option(argv, "import");
        }
    }
    if (optind + 1 != argc)
        return cli_fail(EXIT_USAGE, "import needs one FILE, or - for standard input "
                                    "(see ckstore import --help)");
    const char *path = argv[optind];
    bool use_stdin = strcmp(path, "-") == 0;
    if (source == NULL) {
        const char *slash = strrchr(path, '/');
        source = use_stdin ? "stdin" : slash != NULL && slash[1] != '\0' ? slash + 1 : path;
    }
    if (source[0] == '\0' || strlen(source) > 256)
        return cli_fail(EXIT_USAGE, "import: --source is 1 to 256 bytes");
    if (actor != NULL && (actor[0] == '\0' || strlen(actor) > 256))
        return cli_fail(EXIT_USAGE, "import: --actor is 1 to 256 bytes");

    int fd = use_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cli_fail(errno == ENOENT ? EXIT_NOTFOUND : EXIT_OTHER, "import: cannot open %s: %s",
                        path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (!use_stdin)
            close(fd);
        return cli_fail(EXIT_USAGE, "import: %s is a directory", path);
    }

    /* Guarded memory: the chunks hold customer data, wiped when freed. */
    char *buf = sodium_malloc(IMPORT_CHUNK);
    if (buf == NULL) {
        if (!use_stdin)
            close(fd);
        return cli_fail(EXIT_OTHER, "out of memory");
    }
    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK) {
        sodium_free(buf);
        if (!use_stdin)
            close(fd);
        return code;
    }
    import_ui ui = {0};
    ui.tty = isatty(STDERR_FILENO) != 0;
    clock_gettime(CLOCK_MONOTONIC, &ui.start);
    ck_import_options o = CK_IMPORT_OPTIONS_INIT;
    o.actor = actor;
    o.source = source;
    o.batch_lines = (unsigned)batch;
    o.flags = flags;
    o.on_reject = on_reject;
    o.ctx = &ui;
    ck_importer *imp = NULL;
    int rc = ck_import_begin(&imp, st, &o);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "import");
        ck_close(st);
        sodium_free(buf);
        if (!use_stdin)
            close(fd);
        return code;
    }

    int read_errno = 0;
    ck_import_stats s;
    rc = import_stream(imp, fd, buf, &ui, &read_errno);
    if (read_errno != 0) {
        /* Do not commit the batch the read error cut short: what follows is
         * unknown. The batches committed before stay. */
        ck_import_stats_get(imp, &s);
        ck_import_free(imp);
    } else {
        /* Also after a feed error: finish reports it and the counts. */
        rc = ck_import_finish(imp, &s);
    }
    sodium_free(buf);
    if (!use_stdin)
        close(fd);
    progress_clear(&ui);

    code = print_import_stats(c, &s);
    if (read_errno != 0)
        code = cli_fail(EXIT_OTHER, "import: cannot read %s: %s (the lines before were imported)",
                        path, strerror(read_errno));
    else if (rc != CK_OK)
        code = cli_fail_rc(rc, st, NULL, "import stopped");
    else if (s.rejected > 0)
        code = cli_fail(EXIT_INVALID, "import: %" PRIu64 " line%s rejected", s.rejected,
                        s.rejected == 1 ? "" : "s");
    ck_close(st);
    return code;
}
