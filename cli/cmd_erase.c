/*
 * cmd_erase.c - erase: crypto-shredding of one subject, with its receipt.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

const char HELP_ERASE[] =
    "usage: ckstore [--store DIR] [--key-file FILE] erase SUBJECT --reason CODE --actor A\n"
    "\n"
    "Erase a subject (GDPR art. 17). SUBJECT is one of --subject ID, --ref R,\n"
    "--lookup FIELD=VALUE, --alias A, or --pseudonym PS with\n"
    "--pseudonym-purpose P [--pseudonym-recipient R].\n"
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
    "\n"
    "Prints the receipt: {\"erased\":true,\"subject\":\"<audit pseudonym>\",\"at\":\n"
    "\"<time>\",\"reason\":\"...\",\"audit\":{\"seq\":N,\"hash\":\"...\"},\"deleted\":\n"
    "{\"values\":N,\"consents\":N,\"contacts\":N,\"index_entries\":N},\"tombstones\":N,\n"
    "\"keyring_copies_scrubbed\":N}. The audit pseudonym matches the subject's\n"
    "earlier audit entries and can no longer be computed by anyone.\n"
    "\n"
    "Exit 0; 3 when there is no such subject (erasing twice is this); 6 for a bad\n"
    "reason code.\n";

int cmd_erase(cli *c, int argc, char **argv)
{
    const char *reason = NULL, *actor = NULL;
    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"reason", required_argument, NULL, 'r'},
                                         {"actor", required_argument, NULL, 'a'},
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
        else
            return cli_bad_option(argv, "erase");
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
