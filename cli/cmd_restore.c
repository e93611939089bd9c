/*
 * cmd_restore.c - tombstones export (the erasures' suppression list, kept
 * apart from the store) and restore (a backup put in place, with the
 * tombstones replayed).
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

const char HELP_TOMBSTONES[] =
    "usage: ckstore [--store DIR] [--key-file FILE] tombstones export FILE --actor A\n"
    "\n"
    "Write the store's tombstones to FILE. An erasure leaves tombstones - keyed\n"
    "hashes of the subject's ref, identifying values and id, with the time of the\n"
    "erasure - so that neither a re-import nor a restore of an older backup\n"
    "brings the customer back. Kept in a file apart from the store, they survive\n"
    "its loss: give the file to 'ckstore restore --tombstones FILE'. Export again\n"
    "after erasures (for example nightly, next to the backups).\n"
    "\n"
    "The file holds no value in clear; it is versioned and carries a MAC under a\n"
    "key derived from the store's root key, so a modified, truncated or forged\n"
    "file is refused by restore. Its tags can be compared only under this store's\n"
    "key (a backup or restore of it shares that key). FILE is replaced\n"
    "atomically (mode 0600). Audited.\n"
    "\n"
    "Prints {\"exported\":N,\"file\":\"FILE\"}. Exit 0; 1 on an I/O error (FILE is then\n"
    "unchanged).\n";

static int tombstones_export(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    static const struct option opts[] = {{"actor", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'a')
            actor = optarg;
        else
            return cli_bad_option(argv, "tombstones export");
    }
    if (optind + 1 != argc || actor == NULL)
        return cli_fail(EXIT_USAGE, "tombstones export needs FILE and --actor A (see ckstore "
                                    "tombstones --help)");
    const char *file = argv[optind];
    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    uint64_t n = 0;
    int rc = ck_tombstones_export(&n, st, file, actor);
    if (rc != CK_OK)
        code = cli_fail_rc(rc, st, NULL, "tombstones export");
    else if (c->format == FORMAT_TEXT)
        printf("%llu tombstones written to %s\n", (unsigned long long)n, file);
    else
        code = cli_print_json(json_pack("{s:I,s:s}", "exported", (json_int_t)n, "file", file));
    ck_close(st);
    return code;
}

int cmd_tombstones(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "tombstones needs a subcommand: export (see ckstore "
                                    "tombstones --help)");
    if (strcmp(argv[1], "export") == 0)
        return tombstones_export(c, argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE,
                    "unknown tombstones subcommand '%s' (see ckstore tombstones --help)", argv[1]);
}
