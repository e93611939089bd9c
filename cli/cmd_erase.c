/*
 * cmd_erase.c - erase: crypto-shredding of one subject, or of a batch of
 * refs, with their receipts.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char HELP_ERASE[] =
    "usage: ckstore [--store DIR] [--key-file FILE] erase SUBJECT --reason CODE --actor A\n"
    "       ckstore [--store DIR] [--key-file FILE] erase --batch FILE|- --reason CODE\n"
    "               --actor A\n"
    "\n"
    "Erase a subject (GDPR art. 17). SUBJECT is one of --subject ID, --ref R,\n"
    "--lookup FIELD=VALUE, --alias A, or --pseudonym PS with\n"
    "--pseudonym-purpose P [--pseudonym-recipient R].\n"
    "\n"
    "With --batch, erase the subjects whose refs FILE lists, one per line (- for\n"
    "standard input; blank lines are skipped): up to 1024 share one audit\n"
    "append, one keyring commit and one scrub, thousands a second. One receipt\n"
    "per erased subject, as JSON Lines, each with the \"line\" it came from. A\n"
    "ref that names no subject (unknown, already erased, or listed twice) is\n"
    "reported on stderr by its line number and left; the others are erased.\n"
    "\n"
    "In order: the erasure is written to the audit log (fsync'ed); the subject's\n"
    "data key is destroyed and the keyring file scrubbed of every stale copy of\n"
    "it - the point of no return: nothing of the subject can be decrypted any\n"
    "more; then its values, consents, contact counts, look-up entries and record\n"
    "are deleted, and tombstones of its ref and identifying values are kept so\n"
    "that an old file re-imported cannot bring the customer back (see import\n"
    "--recreate-erased).\n"
    "\n"
    "Options:\n"
    "  --reason CODE  why: 1 to 64 characters of [A-Za-z0-9_.:/+=-], e.g.\n"
    "                 art17-request (the audit log holds no free text)\n"
    "  --actor A      who erases\n"
    "  --batch FILE   the refs to erase, one per line (- for standard input)\n"
    "\n"
    "Prints the receipt: {\"erased\":true,\"subject\":\"<audit pseudonym>\",\"at\":\n"
    "\"<time>\",\"reason\":\"...\",\"audit\":{\"seq\":N,\"hash\":\"...\"},\"deleted\":\n"
    "{\"values\":N,\"consents\":N,\"contacts\":N,\"index_entries\":N},\"tombstones\":N,\n"
    "\"keyring_copies_scrubbed\":N,\"holds\":[...]}. The audit pseudonym matches the\n"
    "subject's earlier audit entries and can no longer be computed by anyone.\n"
    "\n"
    "Legal holds: for each purpose whose schema declares a \"hold\" (a legal\n"
    "obligation, e.g. invoices kept 10 years), the subject's values of the hold's\n"
    "fields are kept in a hold of their own, under a random id unlinked to the\n"
    "subject, until the date shown; \"holds\" lists them: {\"hold\":\"<id>\",\n"
    "\"purpose\":\"...\",\"basis\":\"legal_obligation\",\"description\":\"...\",\n"
    "\"until\":\"<time>\",\"fields\":[...]}. See ckstore hold --help.\n"
    "\n"
    "Exit 0; 3 when there is no such subject (erasing twice is this), or, with\n"
    "--batch, when a line named none; 6 for a bad reason code or a malformed\n"
    "line.\n";

/* The refs of a batch: one per line, as read. */
typedef struct batch {
    char *text;   /* the whole input, lines cut in place */
    ck_who *who;  /* one per non-blank line */
    size_t *line; /* its line number */
    size_t n;
    cli *c;
    int code; /* worst outcome so far */
} batch;

static int read_all(char **out, size_t *len, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL)
        return cli_fail(EXIT_NOTFOUND, "erase: cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    int code = p != NULL ? EXIT_OK : cli_fail(EXIT_OTHER, "erase: out of memory");
    for (size_t got = 1; code == EXIT_OK && got > 0;) {
        if (n + 1 >= cap) {
            char *q = realloc(p, cap * 2);
            if (q == NULL) {
                code = cli_fail(EXIT_OTHER, "erase: out of memory");
                break;
            }
            p = q;
            cap *= 2;
        }
        got = fread(p + n, 1, cap - n - 1, f);
        n += got;
    }
    if (code == EXIT_OK && ferror(f))
        code = cli_fail(EXIT_OTHER, "erase: cannot read %s", path);
    if (f != stdin)
        fclose(f);
    if (code != EXIT_OK) {
        free(p);
        return code;
    }
    p[n] = '\0';
    *out = p;
    *len = n;
    return EXIT_OK;
}

static int batch_load(batch *b, const char *path)
{
    size_t len = 0;
    int code = read_all(&b->text, &len, path);
    if (code != EXIT_OK)
        return code;
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += b->text[i] == '\n';
    b->who = calloc(lines, sizeof *b->who);
    b->line = calloc(lines, sizeof *b->line);
    if (b->who == NULL || b->line == NULL)
        return cli_fail(EXIT_OTHER, "erase: out of memory");
    char *p = b->text, *end = b->text + len;
    for (size_t no = 1; p < end; no++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl != NULL ? nl : end;
        if (e > p && e[-1] == '\r')
            e--;
        *e = '\0';
        /* A blank line names nothing; anything else is a ref. */
        bool blank = true;
        for (char *q = p; q < e && blank; q++)
            blank = *q == ' ' || *q == '\t';
        if (!blank) {
            b->who[b->n] = (ck_who){CK_BY_REF, p, (size_t)(e - p), NULL, NULL, NULL};
            b->line[b->n++] = no;
        }
        p = nl != NULL ? nl + 1 : end;
    }
    return EXIT_OK;
}

static void batch_one(void *ctx, size_t i, int rc, const char *receipt)
{
    batch *b = ctx;
    if (rc != CK_OK) {
        int code = cli_exit_code(rc);
        fprintf(stderr, "ckstore: erase: line %zu: %s\n", b->line[i],
                rc == CK_ENOTFOUND ? "no subject has this ref (unknown, already erased, or "
                                     "listed twice): left as it is"
                                   : ck_strerror(rc));
        /* A malformed line outranks a missing subject. */
        if (b->code == EXIT_OK || (b->code == EXIT_NOTFOUND && code != EXIT_NOTFOUND))
            b->code = code;
        return;
    }
    json_t *j = json_loads(receipt, 0, NULL);
    if (j == NULL) {
        b->code = EXIT_OTHER;
        return;
    }
    if (b->c->format == FORMAT_TEXT) {
        printf("line %zu: erased: subject %s at %s, audit entry %lld\n", b->line[i],
               json_string_value(json_object_get(j, "subject")),
               json_string_value(json_object_get(j, "at")),
               (long long)json_integer_value(json_object_get(json_object_get(j, "audit"), "seq")));
        json_decref(j);
        return;
    }
    json_object_set_new(j, "line", json_integer((json_int_t)b->line[i]));
    if (cli_print_json(j) != EXIT_OK)
        b->code = EXIT_OTHER;
}

static int erase_batch(cli *c, const char *path, const char *reason, const char *actor)
{
    batch b;
    memset(&b, 0, sizeof b);
    b.c = c;
    int code = batch_load(&b, path);
    ck_store *st = NULL;
    if (code == EXIT_OK)
        code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        int rc = ck_erase_many(NULL, st, b.who, b.n, reason, actor, batch_one, &b);
        fflush(stdout);
        code = rc != CK_OK ? cli_fail_rc(rc, st, NULL, "erase") : b.code;
    }
    ck_close(st);
    free(b.who);
    free(b.line);
    free(b.text);
    return code;
}

int cmd_erase(cli *c, int argc, char **argv)
{
    const char *reason = NULL, *actor = NULL, *batch_path = NULL;
    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"reason", required_argument, NULL, 'r'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r == 0)
            continue;
        if (ch == 'r')
            reason = optarg;
        else if (ch == 'a')
            actor = optarg;
        else if (ch == 'b')
            batch_path = optarg;
        else
            return cli_bad_option(argv, "erase");
    }
    if (batch_path != NULL) {
        if (w.given > 0)
            return cli_fail(EXIT_USAGE, "erase: --batch takes no subject option");
        if (optind != argc)
            return cli_fail(EXIT_USAGE, "erase takes no argument besides its options");
        if (reason == NULL || actor == NULL)
            return cli_fail(EXIT_USAGE, "erase needs --reason CODE and --actor A");
        return erase_batch(c, batch_path, reason, actor);
    }
    int code = cli_who_check(&w, "erase", NULL, NULL);
    if (code != EXIT_OK)
        return code;
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "erase takes no argument besides its options");
    if (reason == NULL || actor == NULL)
        return cli_fail(EXIT_USAGE, "erase needs --reason CODE and --actor A");

    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    char *receipt = NULL;
    int rc = ck_erase(&receipt, st, &w.who, reason, actor);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "erase");
    } else {
        json_t *j = json_loads(receipt, 0, NULL);
        if (j != NULL && c->format == FORMAT_TEXT) {
            printf(
                "erased: subject %s at %s, audit entry %lld\n",
                json_string_value(json_object_get(j, "subject")),
                json_string_value(json_object_get(j, "at")),
                (long long)json_integer_value(json_object_get(json_object_get(j, "audit"), "seq")));
            json_decref(j);
        } else {
            code = cli_print_json(j);
        }
    }
    ck_free(receipt);
    ck_close(st);
    return code;
}
