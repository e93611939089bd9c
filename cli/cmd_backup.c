/*
 * cmd_backup.c - backup (a consistent copy of the store while it is in use)
 * and compact (the store's files rewritten without residue).
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

const char HELP_BACKUP[] =
    "usage: ckstore [--store DIR] [--key-file FILE] backup DEST --actor A\n"
    "\n"
    "Write a consistent copy of the store into DEST, a new directory (mode 0700;\n"
    "it must not exist), while the store is in use. The data and the per-subject\n"
    "keys are copied entry by entry from one snapshot, so the copy holds nothing\n"
    "of subjects erased before it - not even the stale bytes LMDB leaves in its\n"
    "files; the key slots and the audit log are copied as they are. The copy\n"
    "opens with the same key file or passphrase. The backup is audited first.\n"
    "\n"
    "A backup made BEFORE an erasure still holds that subject (SECURITY.md):\n"
    "keep backups encrypted and short-lived.\n"
    "\n"
    "Prints {\"backup\":\"DEST\"}. Exit 0; 6 when DEST exists; 1 on an I/O error\n"
    "(DEST is then removed).\n";

int cmd_backup(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    int code = cli_actor_option(argc, argv, "backup", &actor);
    if (code != EXIT_OK)
        return code;
    if (optind + 1 != argc || actor == NULL)
        return cli_fail(EXIT_USAGE, "backup needs DEST and --actor A (see ckstore backup --help)");
    const char *dest = argv[optind];
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    int rc = ck_backup(st, dest, actor);
    if (rc == CK_EEXIST)
        code = cli_fail(EXIT_INVALID, "backup: %s exists: give a new directory", dest);
    else if (rc != CK_OK)
        code = cli_fail_rc(rc, st, NULL, "backup");
    else if (c->format == FORMAT_TEXT)
        printf("backup written to %s\n", dest);
    else
        code = cli_print_json(json_pack("{s:s}", "backup", dest));
    ck_close(st);
    return code;
}

const char HELP_COMPACT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] compact --actor A\n"
    "\n"
    "Rewrite the store's data and keyring files so that nothing of erased\n"
    "subjects remains in them: LMDB never zeroes what it frees, so after an\n"
    "erasure the subject's id and look-up keys stay as bytes in the files until\n"
    "overwritten. Both files are copied entry by entry into new files and put in\n"
    "place with an atomic rename. The store must not be open in another process\n"
    "(exit 1, \"store busy\"); opening it waits while a compaction runs. Audited.\n"
    "\n"
    "Prints {\"compacted\":true}. Exit 0; 1 when the store is busy or on an I/O\n"
    "error (the files in place are whole).\n";

int cmd_compact(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    int code = cli_actor_option(argc, argv, "compact", &actor);
    if (code != EXIT_OK)
        return code;
    if (optind != argc || actor == NULL)
        return cli_fail(EXIT_USAGE, "compact needs --actor A (see ckstore compact --help)");
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    int rc = ck_compact(st, actor);
    if (rc != CK_OK)
        code = cli_fail_rc(rc, st, NULL, "compact");
    else if (c->format == FORMAT_TEXT)
        printf("compacted\n");
    else
        code = cli_print_json(json_pack("{s:b}", "compacted", 1));
    ck_close(st);
    return code;
}
