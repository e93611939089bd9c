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
    "Prints {\"exported\":N,\"file\":\"FILE\"}. Exit 0; 3 when FILE's directory does not\n"
    "exist; 1 on an I/O error (FILE is then unchanged).\n";

static int tombstones_export(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    int code = cli_actor_option(argc, argv, "tombstones export", &actor);
    if (code != EXIT_OK)
        return code;
    if (optind + 1 != argc || actor == NULL)
        return cli_fail(EXIT_USAGE, "tombstones export needs FILE and --actor A (see ckstore "
                                    "tombstones --help)");
    const char *file = argv[optind];
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
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

const char HELP_RESTORE[] =
    "usage: ckstore [--store DIR] [--key-file FILE] restore BACKUP --actor A\n"
    "                                                [--tombstones FILE]...\n"
    "\n"
    "Put the backup BACKUP (made by 'ckstore backup') in place at the store\n"
    "directory DIR, erasing again every customer erased after the backup was\n"
    "made, before the restored store becomes visible.\n"
    "\n"
    "The backup must open with the key given (exit 4 otherwise, nothing changed)\n"
    "and its audit log must verify (exit 5). DIR may be absent, an empty\n"
    "directory, or a store: then it must open with the same key, be the same\n"
    "store as the backup's (exit 6 otherwise), and be open nowhere else (exit 1,\n"
    "\"store busy\"): nobody can open it while the restore runs.\n"
    "\n"
    "Tombstone replay: the tombstones of the backup, of the store at DIR and of\n"
    "every --tombstones FILE (from 'ckstore tombstones export'; a modified,\n"
    "truncated or forged file, or another store's, is refused with exit 5) are\n"
    "merged into the restored store, and every subject they name is erased again\n"
    "as 'ckstore erase' does (audited, reason restore-replay): named by the\n"
    "tombstone of its id, or of its ref, or - for a subject without a ref - of an\n"
    "identifying value, unless it was created after that erasure. When the store\n"
    "at DIR is lost, give the tombstone files exported from it: without them, the\n"
    "customers erased after the backup come back.\n"
    "\n"
    "The backup is copied entry by entry into DIR.restore-XXXXXX beside DIR, the\n"
    "replay done and audited there (action \"restore\"), the copy compacted when\n"
    "someone was erased, fsync'ed, then exchanged with DIR in one atomic step:\n"
    "after a crash DIR holds the old store or the new one, whole. The old store\n"
    "is kept, renamed DIR.replaced-XXXXXX: it holds everything written after the\n"
    "backup - data, consent changes and audit entries that the restored store does\n"
    "not have. Remove it when it is no longer needed.\n"
    "\n"
    "Options:\n"
    "  --actor A          who restores (audit log)\n"
    "  --tombstones FILE  a tombstone file to replay too (repeatable)\n"
    "\n"
    "Prints {\"restored\":DIR,\"backup\":BACKUP,\"subjects\":N,\"replayed\":N,\n"
    "\"replayed_by\":{\"id\":N,\"ref\":N,\"value\":N,\"unfinished\":N},\"tombstones\":\n"
    "{\"applied\":N,\"backup\":N,\"target\":N,\"files\":N},\"audit\":{\"backup_seq\":N,\n"
    "\"replaced_seq\":N,\"restore_seq\":N},\"kept\":PATH|null,\"warning\":\"...\"}; with\n"
    "--format text, the same as lines and the warning. Exit 0; 4 wrong key; 5 a\n"
    "backup that does not verify or a bad tombstone file; 6 DIR is not a store of\n"
    "the backup's or not empty; 1 busy or an I/O error.\n";

enum { OPT_TOMBSTONES = 0x300, OPT_ACTOR };

#define MAX_TOMBSTONE_FILES 64

int cmd_restore(cli *c, int argc, char **argv)
{
    const char *actor = NULL;
    const char *files[MAX_TOMBSTONE_FILES];
    size_t nfiles = 0;
    static const struct option opts[] = {{"actor", required_argument, NULL, OPT_ACTOR},
                                         {"tombstones", required_argument, NULL, OPT_TOMBSTONES},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == OPT_ACTOR) {
            actor = optarg;
        } else if (ch == OPT_TOMBSTONES) {
            if (nfiles == MAX_TOMBSTONE_FILES)
                return cli_fail(EXIT_USAGE, "restore: at most %d --tombstones files",
                                MAX_TOMBSTONE_FILES);
            files[nfiles++] = optarg;
        } else {
            return cli_bad_option(argv, "restore");
        }
    }
    if (optind + 1 != argc || actor == NULL)
        return cli_fail(EXIT_USAGE,
                        "restore needs BACKUP and --actor A (see ckstore restore --help)");
    const char *backup = argv[optind];
    ck_options o;
    int code = cli_key_options(c, &o);
    if (code != EXIT_OK)
        return code;
    char err[CK_ERRMSG_MAX] = "";
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    ck_restore_options ro = CK_RESTORE_OPTIONS_INIT;
    ro.actor = actor;
    ro.tombstone_files = files;
    ro.n_tombstone_files = nfiles;
    ck_restore_result r = CK_RESTORE_RESULT_INIT;
    int rc = ck_restore(&r, c->store_dir, backup, &o, &ro);
    if (rc != CK_OK) {
        code = rc == CK_EEXIST ? cli_fail(EXIT_INVALID, "restore: %s", err)
                               : cli_fail_rc(rc, NULL, err, "restore");
        if (r.kept != NULL)
            fprintf(stderr, "ckstore: the restored store is in place; the old one is at %s\n",
                    r.kept);
        ck_free(r.kept);
        return code;
    }
    char warning[1024];
    int wn;
    if (r.kept != NULL)
        wn = snprintf(warning, sizeof warning,
                      "the store that was at %s is kept at %s: the restored store does not have "
                      "what was written after the backup (data, consent changes, and %llu audit "
                      "entries after entry %llu of its log); remove it when it is no longer "
                      "needed",
                      c->store_dir, r.kept,
                      (unsigned long long)(r.target_audit_seq > r.backup_audit_seq
                                               ? r.target_audit_seq - r.backup_audit_seq
                                               : 0),
                      (unsigned long long)r.backup_audit_seq);
    else
        wn = snprintf(warning, sizeof warning,
                      "the restored store has nothing written after the backup: its audit log "
                      "ends at entry %llu of the backup's, followed by the restore's entries",
                      (unsigned long long)r.backup_audit_seq);
    if (wn < 0 || (size_t)wn >= sizeof warning)
        snprintf(warning, sizeof warning,
                 "the restored store has nothing written after the backup");
    if (c->format == FORMAT_TEXT) {
        printf("restored %s into %s\n", backup, c->store_dir);
        printf("subjects: %llu; erased again by tombstone replay: %llu (by id %llu, by ref %llu, "
               "by identifying value %llu, unfinished erasures %llu)\n",
               (unsigned long long)r.subjects, (unsigned long long)r.replayed,
               (unsigned long long)r.replayed_by_id, (unsigned long long)r.replayed_by_ref,
               (unsigned long long)r.replayed_by_value, (unsigned long long)r.replayed_unfinished);
        printf("tombstones applied: %llu (backup %llu, replaced store %llu, files %llu)\n",
               (unsigned long long)r.tombstones, (unsigned long long)r.tombstones_backup,
               (unsigned long long)r.tombstones_target, (unsigned long long)r.tombstones_files);
        printf("audit: the restore is entry %llu of the restored log\n",
               (unsigned long long)r.audit_seq);
        printf("warning: %s\n", warning);
    } else {
        json_t *j = json_pack(
            "{s:s,s:s,s:I,s:I,s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I,s:I},s:{s:I,s:I,s:I},s:o,s:s}",
            "restored", c->store_dir, "backup", backup, "subjects", (json_int_t)r.subjects,
            "replayed", (json_int_t)r.replayed, "replayed_by", "id", (json_int_t)r.replayed_by_id,
            "ref", (json_int_t)r.replayed_by_ref, "value", (json_int_t)r.replayed_by_value,
            "unfinished", (json_int_t)r.replayed_unfinished, "tombstones", "applied",
            (json_int_t)r.tombstones, "backup", (json_int_t)r.tombstones_backup, "target",
            (json_int_t)r.tombstones_target, "files", (json_int_t)r.tombstones_files, "audit",
            "backup_seq", (json_int_t)r.backup_audit_seq, "replaced_seq",
            (json_int_t)r.target_audit_seq, "restore_seq", (json_int_t)r.audit_seq, "kept",
            r.kept != NULL ? json_string(r.kept) : json_null(), "warning", warning);
        code = cli_print_json(j);
    }
    ck_free(r.kept);
    return code;
}
