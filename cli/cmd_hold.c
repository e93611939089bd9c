/*
 * cmd_hold.c - hold show, hold expire: the values an erasure kept for a
 * legal obligation.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

const char HELP_HOLD[] =
    "usage: ckstore [--store DIR] [--key-file FILE] hold show ID --actor A\n"
    "       ckstore [--store DIR] [--key-file FILE] hold expire --actor A\n"
    "\n"
    "A purpose with basis legal_obligation may declare a \"hold\" in the schema\n"
    "(docs/schema.md): when a subject is erased, its values of the hold's fields\n"
    "are kept for the days it says, in a hold of their own - sealed under a key\n"
    "of its own, under a random id that shares nothing with the subject, which\n"
    "is erased in full otherwise. The erasure's receipt gives the hold's id.\n"
    "\n"
    "show ID   print the hold (ID: its 32 hexadecimal characters) for the legal\n"
    "          obligation: {\"hold\":\"<id>\",\"purpose\":\"...\",\"basis\":\n"
    "          \"legal_obligation\",\"description\":\"...\",\"kept_at\":\"<time>\",\n"
    "          \"until\":\"<time>\",\"fields\":{\"<name>\":<value>,...}}. Audited\n"
    "          (action \"hold\", the fields read) before anything is shown. Once\n"
    "          its time is over nothing is shown (exit 4).\n"
    "expire    destroy every hold whose time is over, as an erasure destroys a\n"
    "          key: audited, keys and records deleted in one durable commit, the\n"
    "          keyring file scrubbed of every copy of the keys. Prints\n"
    "          {\"expired\":N}. (purge does this too.)\n"
    "\n"
    "Options:\n"
    "  --actor A   who reads, or who expires\n"
    "\n"
    "Exit 0; 2 usage; 3 no such hold (never made, or destroyed); 4 its time is\n"
    "over; 5 a hold was tampered with; 6 a malformed id.\n";

static int hold_show(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    int code = cli_actor_option(argc, argv, "hold show", &actor);
    if (code != EXIT_OK)
        return code;
    if (optind + 1 != argc || actor == NULL)
        return cli_fail(EXIT_USAGE,
                        "hold show needs an ID and --actor A (see ckstore hold --help)");
    const char *id = argv[optind];
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    char *text = NULL;
    int rc = ck_hold_get(&text, st, id, actor);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "hold show");
    } else {
        /* The text holds customer values: printed as the library wrote it
         * (one line of JSON) and wiped by ck_free. */
        if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
            code = cli_fail(EXIT_OTHER, "cannot write to standard output");
    }
    ck_free(text);
    ck_close(st);
    return code;
}

static int hold_expire(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    int code = cli_actor_option(argc, argv, "hold expire", &actor);
    if (code != EXIT_OK)
        return code;
    if (optind != argc || actor == NULL)
        return cli_fail(EXIT_USAGE, "hold expire needs --actor A (see ckstore hold --help)");
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    uint64_t n = 0;
    int rc = ck_hold_expire(&n, st, actor);
    if (rc != CK_OK)
        code = cli_fail_rc(rc, st, NULL, "hold expire");
    else if (c->format == FORMAT_TEXT)
        printf("%llu hold(s) expired and destroyed\n", (unsigned long long)n);
    else
        code = cli_print_json(json_pack("{s:I}", "expired", (json_int_t)n));
    ck_close(st);
    return code;
}

int cmd_hold(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "hold needs show or expire (see ckstore hold --help)");
    if (strcmp(argv[1], "show") == 0)
        return hold_show(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "expire") == 0)
        return hold_expire(c, argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "hold needs show or expire (see ckstore hold --help)");
}
