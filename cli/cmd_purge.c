/*
 * cmd_purge.c - purge: field retention and consent expiry (ck_purge).
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

const char HELP_PURGE[] =
    "usage: ckstore [--store DIR] [--key-file FILE] [--format json|text] purge\n"
    "               [--dry-run] [--batch N] --actor A\n"
    "\n"
    "Apply field retention and consent expiry to every subject, at the store's\n"
    "clock:\n"
    "  - a value of a field with \"retention_days\" is deleted once it is that many\n"
    "    days old, counted from its last write - for a field that is the address\n"
    "    field of a purpose's contact channel, from the later of that and the\n"
    "    customer's last inbound contact on the channel (contact record\n"
    "    --inbound). An identifying field's look-up entry goes with it.\n"
    "    These are the values get and segment already withhold (retention).\n"
    "  - a granted consent whose expiry has passed is closed by a new record in\n"
    "    state \"expired\" (same scope, recipients and expiry; source \"purge\";\n"
    "    collector A). get keeps saying \"expired\"; a new grant supersedes it.\n"
    "    Purging twice adds nothing.\n"
    "  - a legal hold (an erasure's kept values) whose time is over is destroyed\n"
    "    as hold expire does: audited, its key deleted, the keyring scrubbed.\n"
    "\n"
    "Subjects are taken in batches, each committed on its own; before a batch\n"
    "commits, its audit entries are written and fsync'ed: one \"purge\" entry per\n"
    "subject changed (its audit pseudonym, the fields removed, the counts) and\n"
    "one \"consent\" entry per consent closed. If it stops (an error, a crash), the\n"
    "batches done stay done and running it again finishes the job.\n"
    "\n"
    "Options:\n"
    "  --dry-run   compute the same figures and change nothing: the store is\n"
    "              opened read-only and not even the audit log is written\n"
    "  --batch N   subjects per transaction, 1 to 65536 (default 512)\n"
    "  --actor A   who purges (the audit entries' actor; required)\n"
    "\n"
    "Prints {\"dry_run\":false,\"values_removed\":N,\"consents_expired\":M,\n"
    "\"subjects\":K,\"holds_expired\":H,\"by_field\":{\"note\":n,...},\n"
    "\"by_purpose\":{\"news\":m,...}}: K subjects changed, H legal holds destroyed;\n"
    "by_field and by_purpose name only what was removed or expired. Names and\n"
    "counts only, never a value or a ref. --format text prints the same for\n"
    "people.\n"
    "\n"
    "A deleted value stays as ciphertext in free pages of the data file until\n"
    "LMDB reuses them: run compact afterwards when it must be gone from the\n"
    "disk (SECURITY.md).\n"
    "\n"
    "Exit 0 (also when nothing was due); 2 usage; 4 a read-only store.\n";

static void print_counts(const json_t *o)
{
    const char *name;
    const json_t *v;
    bool first = true;
    if (json_object_size(o) == 0)
        return;
    fputs(" (", stdout);
    json_object_foreach((json_t *)o, name, v)
    {
        printf("%s%s: %lld", first ? "" : ", ", name, (long long)json_integer_value(v));
        first = false;
    }
    fputc(')', stdout);
}

static int print_text(const char *figures)
{
    json_t *j = json_loads(figures, 0, NULL);
    if (j == NULL)
        return cli_fail(EXIT_OTHER, "purge: cannot read the figures");
    bool dry = json_is_true(json_object_get(j, "dry_run"));
    if (dry)
        puts("dry run: nothing was changed; a purge now would do this:");
    printf("values %s: %lld", dry ? "to remove" : "removed",
           (long long)json_integer_value(json_object_get(j, "values_removed")));
    print_counts(json_object_get(j, "by_field"));
    printf("\nconsents %s: %lld", dry ? "to mark expired" : "marked expired",
           (long long)json_integer_value(json_object_get(j, "consents_expired")));
    print_counts(json_object_get(j, "by_purpose"));
    printf("\nsubjects %s: %lld\n", dry ? "concerned" : "changed",
           (long long)json_integer_value(json_object_get(j, "subjects")));
    printf("legal holds %s: %lld\n", dry ? "to destroy" : "destroyed",
           (long long)json_integer_value(json_object_get(j, "holds_expired")));
    json_decref(j);
    return EXIT_OK;
}

int cmd_purge(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    ck_purge_options o = CK_PURGE_OPTIONS_INIT;
    static const struct option opts[] = {{"dry-run", no_argument, NULL, 'n'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            o.flags |= CK_PURGE_DRY_RUN;
            break;
        case 'b': {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || errno != 0 || n == 0 ||
                n > 65536)
                return cli_fail(EXIT_USAGE, "purge: --batch needs a number from 1 to 65536");
            o.batch_subjects = (unsigned)n;
            break;
        }
        case 'a':
            actor = optarg;
            break;
        default:
            return cli_bad_option(argv, "purge");
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "purge takes no argument besides its options");
    if (actor == NULL)
        return cli_fail(EXIT_USAGE, "purge needs --actor A");

    ck_store *st = NULL;
    /* A dry run cannot write, by construction. */
    int code = cli_open(c, &st, (o.flags & CK_PURGE_DRY_RUN) != 0 ? CK_OPEN_RDONLY : 0u);
    if (code != EXIT_OK)
        return code;
    char *figures = NULL;
    int rc = ck_purge(&figures, st, &o, actor);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "purge");
    } else if (c->format == FORMAT_TEXT) {
        code = print_text(figures);
    } else if (puts(figures) == EOF) {
        code = cli_fail(EXIT_OTHER, "cannot write to standard output");
    }
    ck_free(figures);
    ck_close(st);
    return code;
}
