/*
 * cli.h - shared pieces of the ckstore command-line tool.
 *
 * The tool is libckstore's first client: it includes only the public header
 * (plus libsodium for guarded memory of its own secrets, and Jansson).
 */
#ifndef CK_CLI_H
#define CK_CLI_H

#include "ckstore.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Exit codes (DESIGN.md section 8). */
enum {
    EXIT_OK = 0,
    EXIT_OTHER = 1,
    EXIT_USAGE = 2,
    EXIT_NOTFOUND = 3,
    EXIT_ACCESS = 4,
    EXIT_INTEGRITY = 5,
    EXIT_INVALID = 6
};

typedef enum { FORMAT_JSON, FORMAT_TEXT } cli_format;

/* Global options and state, passed to every command. */
typedef struct cli {
    const char *prog;
    const char *store_dir; /* --store or CKSTORE_DIR */
    const char *key_file;  /* --key-file or CKSTORE_KEY_FILE */
    cli_format format;
    char *passphrase; /* guarded memory, or NULL */
    size_t passphrase_len;
    bool passphrase_tried;
} cli;

/* A command: name, one-line summary, its --help text, its body. */
typedef struct cli_command {
    const char *name;
    const char *summary;
    const char *help;
    int (*run)(cli *c, int argc, char **argv);
} cli_command;

/* Print "ckstore: <message>" to stderr and return `code`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report a library failure: the code's text and the store's detail (or
 * `detail` when there is no handle), and return the matching exit code. */
int cli_fail_rc(int rc, ck_store *st, const char *detail, const char *what);
/* Exit code for a library status. */
int cli_exit_code(int rc);

/* Read the passphrase: CKSTORE_PASSPHRASE (wiped from the environment once
 * read) or, on a terminal, a no-echo prompt. `confirm` asks twice. Leaves
 * c->passphrase NULL when neither is available. */
int cli_get_passphrase(cli *c, const char *prompt, bool confirm);
/* Read a new passphrase from `env_name` or a prompt (twice) into guarded
 * memory; caller frees with cli_free_secret. */
int cli_read_secret(char **out, size_t *out_len, const char *env_name, const char *prompt,
                    bool confirm);
void cli_free_secret(char *p, size_t len);

/* The key the global options give (a passphrase is read now if needed),
 * in `o` (from CK_OPTIONS_INIT); the store directory must be named. */
int cli_key_options(cli *c, ck_options *o);
/* Open the store named by the global options with the key they give. */
int cli_open(cli *c, ck_store **out, unsigned flags);

/* Print a JSON value (one line) to stdout and free it. */
int cli_print_json(json_t *v);
/* Lower-case hex of `n` bytes into out (2n+1 bytes). */
void cli_hex(char *out, const unsigned char *p, size_t n);

/* Commands. */
int cmd_init(cli *c, int argc, char **argv);
int cmd_passwd(cli *c, int argc, char **argv);
int cmd_stats(cli *c, int argc, char **argv);

extern const char HELP_INIT[];
extern const char HELP_PASSWD[];
extern const char HELP_STATS[];

/* Schema (cmd_schema.c). */
int cmd_schema(cli *c, int argc, char **argv);
extern const char HELP_SCHEMA[];

/* Backup (cmd_backup.c). */
int cmd_backup(cli *c, int argc, char **argv);
extern const char HELP_BACKUP[];
int cmd_compact(cli *c, int argc, char **argv);
extern const char HELP_COMPACT[];

/* Tombstones and restore (cmd_restore.c). */
int cmd_tombstones(cli *c, int argc, char **argv);
extern const char HELP_TOMBSTONES[];
int cmd_restore(cli *c, int argc, char **argv);
extern const char HELP_RESTORE[];

/* Erasure (cmd_erase.c). */
int cmd_erase(cli *c, int argc, char **argv);
extern const char HELP_ERASE[];

/* Retention and consent expiry (cmd_purge.c). */
int cmd_purge(cli *c, int argc, char **argv);
extern const char HELP_PURGE[];

/* Legal holds (cmd_hold.c). */
int cmd_hold(cli *c, int argc, char **argv);
extern const char HELP_HOLD[];

/* Subject selection, shared by the commands that name one subject
 * (cmd_data.c): exactly one of --subject ID, --ref R, --lookup FIELD=VALUE,
 * --pseudonym PS, --alias A. A pseudonym's context is the command's own
 * --purpose (and --recipient) unless --pseudonym-purpose P and
 * --pseudonym-recipient R name it. Put CLI_WHO_OPTIONS in the command's
 * getopt_long table and hand every option to cli_who_option first. */
enum {
    CLI_OPT_SUBJECT = 0x200,
    CLI_OPT_REF,
    CLI_OPT_LOOKUP,
    CLI_OPT_PSEUDONYM,
    CLI_OPT_ALIAS,
    CLI_OPT_PS_PURPOSE,
    CLI_OPT_PS_RECIPIENT
};
#define CLI_WHO_OPTIONS                                                                            \
    {"subject", required_argument, NULL, CLI_OPT_SUBJECT},                                         \
        {"ref", required_argument, NULL, CLI_OPT_REF},                                             \
        {"lookup", required_argument, NULL, CLI_OPT_LOOKUP},                                       \
        {"pseudonym", required_argument, NULL, CLI_OPT_PSEUDONYM},                                 \
        {"alias", required_argument, NULL, CLI_OPT_ALIAS},                                         \
        {"pseudonym-purpose", required_argument, NULL, CLI_OPT_PS_PURPOSE},                        \
    {                                                                                              \
        "pseudonym-recipient", required_argument, NULL, CLI_OPT_PS_RECIPIENT                       \
    }

typedef struct cli_who {
    ck_who who;
    int given; /* selectors seen */
    const char *ps_purpose, *ps_recipient;
} cli_who;

#define CLI_WHO_INIT                                                                               \
    {                                                                                              \
        {CK_BY_ID, NULL, 0, NULL, NULL, NULL}, 0, NULL, NULL                                       \
    }

/* Take option `opt` with argument `arg` (--lookup's '=' is cut in place).
 * Returns -1 when `opt` is not a subject option, else EXIT_OK or
 * EXIT_USAGE (reported). */
int cli_who_option(cli_who *w, int opt, char *arg);
/* Check that exactly one selector was given and set a pseudonym's context
 * (`purpose`/`recipient`: the command's own, or NULL). EXIT_OK, or
 * EXIT_USAGE reported with `cmd` in the message. */
int cli_who_check(cli_who *w, const char *cmd, const char *purpose, const char *recipient);
/* Report an unknown option or a missing argument (opterr = 0 mode) and
 * return EXIT_USAGE. `argv`, `cmd`: the command's. */
int cli_bad_option(char **argv, const char *cmd);
/* Parse a command whose only option is --actor A into *actor (left as it
 * is when not given); positional arguments stay from optind on. EXIT_OK,
 * or EXIT_USAGE reported (cli_bad_option) with `cmd` in the message. */
int cli_actor_option(int argc, char **argv, const char *cmd, const char **actor);

/* put, import, alias (cmd_data.c). */
int cmd_put(cli *c, int argc, char **argv);
int cmd_import(cli *c, int argc, char **argv);
int cmd_alias(cli *c, int argc, char **argv);
extern const char HELP_PUT[];
extern const char HELP_IMPORT[];
extern const char HELP_ALIAS[];

/* consent, get, segment, contact (cmd_release.c). */
int cmd_consent(cli *c, int argc, char **argv);
int cmd_get(cli *c, int argc, char **argv);
int cmd_segment(cli *c, int argc, char **argv);
int cmd_contact(cli *c, int argc, char **argv);
extern const char HELP_CONSENT[];
extern const char HELP_GET[];
extern const char HELP_SEGMENT[];
extern const char HELP_CONTACT[];

/* The customer's access and portability export (cmd_export.c). */
int cmd_export(cli *c, int argc, char **argv);
extern const char HELP_EXPORT[];

/* Audit log, verify, checkpoint (cmd_audit.c). */
int cmd_audit(cli *c, int argc, char **argv);
extern const char HELP_AUDIT[];

/* IAB TCF v2 consent strings (cmd_tcf.c): no store needed. */
int cmd_tcf(cli *c, int argc, char **argv);
extern const char HELP_TCF[];

#endif /* CK_CLI_H */
