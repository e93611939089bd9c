/*
 * main.c - ckstore command-line tool: global options, dispatch, helpers.
 *
 *   ckstore [--store DIR] [--key-file FILE] [--format json|text] COMMAND ...
 *
 * Secrets never come from the command line: the key is a file named by
 * --key-file / CKSTORE_KEY_FILE, or a passphrase from CKSTORE_PASSPHRASE or a
 * no-echo prompt on a terminal.
 */
#include "cli.h"
#include "jalloc.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define SECRET_MAX 4096

static const char USAGE[] =
    "usage: ckstore [--store DIR] [--key-file FILE] [--format json|text] COMMAND [ARGS]\n"
    "\n"
    "A consent-aware customer-knowledge store: profiles encrypted at rest, released\n"
    "only for the purposes the customer agreed to.\n"
    "\n"
    "Global options:\n"
    "  --store DIR        the store directory (default: $CKSTORE_DIR)\n"
    "  --key-file FILE    the key file (default: $CKSTORE_KEY_FILE); otherwise the\n"
    "                     passphrase comes from $CKSTORE_PASSPHRASE or a prompt\n"
    "  --format FMT       json (default, machine output) or text\n"
    "  --help             this text; COMMAND --help for a command's own\n"
    "  --version          the version\n"
    "\n"
    "Commands:\n";

static const char EXIT_CODES[] =
    "\n"
    "Exit codes: 0 success, 1 other error, 2 usage, 3 not found, 4 wrong key,\n"
    "unsafe key file or access refused, 5 integrity failure (tampering,\n"
    "corruption), 6 invalid input.\n";

static const cli_command COMMANDS[] = {
    {"init", "create a store (and its key file)", HELP_INIT, cmd_init},
    {"passwd", "add, change or remove key slots", HELP_PASSWD, cmd_passwd},
    {"stats", "figures about a store", HELP_STATS, cmd_stats},
    {"schema", "apply or show the fields and purposes", HELP_SCHEMA, cmd_schema},
    {"put", "set or delete fields of one subject", HELP_PUT, cmd_put},
    {"import", "import profiles and consents from JSON Lines", HELP_IMPORT, cmd_import},
    {"alias", "add or remove a subject's alias", HELP_ALIAS, cmd_alias},
    {"consent", "record consent (grant, withdraw, refuse, object) or show it", HELP_CONSENT,
     cmd_consent},
    {"get", "release a subject's fields for a purpose", HELP_GET, cmd_get},
    {"segment", "release every matching subject for a purpose", HELP_SEGMENT, cmd_segment},
    {"contact", "count a contact, or set a subject's contact cap", HELP_CONTACT, cmd_contact},
    {"erase", "erase a subject (crypto-shredding) and print a receipt", HELP_ERASE, cmd_erase},
    {"export", "everything held on a subject: the customer's access export", HELP_EXPORT,
     cmd_export},
    {"hold", "read or expire the values an erasure kept for a legal obligation", HELP_HOLD,
     cmd_hold},
    {"backup", "write a consistent copy of the store while it is in use", HELP_BACKUP, cmd_backup},
    {"compact", "rewrite the store's files so nothing of erased subjects remains", HELP_COMPACT,
     cmd_compact},
    {"purge", "apply field retention and consent expiry", HELP_PURGE, cmd_purge},
    {"tombstones", "export the erased subjects' tombstones to a file", HELP_TOMBSTONES,
     cmd_tombstones},
    {"restore", "put a backup in place, erasing again whoever was erased since", HELP_RESTORE,
     cmd_restore},
    {"audit", "the audit log: entries, report, verification, checkpoints", HELP_AUDIT, cmd_audit},
    {"tcf", "decode IAB TCF v2 consent strings", HELP_TCF, cmd_tcf},
};

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("ckstore: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_exit_code(int rc)
{
    switch (rc) {
    case CK_OK:
        return EXIT_OK;
    case CK_ENOTFOUND:
        return EXIT_NOTFOUND;
    case CK_EKEY:
    case CK_EDENIED:
        return EXIT_ACCESS;
    case CK_EINTEGRITY:
    case CK_EFORMAT:
        return EXIT_INTEGRITY;
    case CK_EINVAL:
    case CK_ELIMIT:
    case CK_EAMBIGUOUS:
        return EXIT_INVALID;
    default:
        return EXIT_OTHER;
    }
}

int cli_fail_rc(int rc, ck_store *st, const char *detail, const char *what)
{
    const char *d = st != NULL ? ck_errmsg(st) : detail;
    if (d != NULL && d[0] != '\0')
        return cli_fail(cli_exit_code(rc), "%s: %s", what, d);
    return cli_fail(cli_exit_code(rc), "%s: %s", what, ck_strerror(rc));
}

void cli_hex(char *out, const unsigned char *p, size_t n)
{
    sodium_bin2hex(out, 2 * n + 1, p, n);
}

int cli_print_json(json_t *v)
{
    if (v == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    int rc = json_dumpf(v, stdout, JSON_COMPACT);
    json_decref(v);
    fputc('\n', stdout);
    if (rc != 0 || fflush(stdout) != 0)
        return cli_fail(EXIT_OTHER, "cannot write to standard output");
    return EXIT_OK;
}

void cli_free_secret(char *p, size_t len)
{
    (void)len;
    if (p != NULL)
        sodium_free(p); /* wipes */
}

/* Read one line from the terminal with echo off into guarded memory. */
static int prompt_line(char *buf, size_t max, size_t *len, const char *prompt)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (tty == NULL)
        return -1;
    struct termios old, noecho;
    int fd = fileno(tty);
    bool restore = tcgetattr(fd, &old) == 0;
    if (restore) {
        noecho = old;
        noecho.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
        noecho.c_lflag |= ICANON;
        tcsetattr(fd, TCSAFLUSH, &noecho);
    }
    fputs(prompt, tty);
    fflush(tty);
    size_t n = 0;
    int ch;
    int rc = 0;
    while ((ch = fgetc(tty)) != EOF && ch != '\n') {
        if (n + 1 >= max) {
            rc = -2;
            continue; /* drain the line */
        }
        buf[n++] = (char)ch;
    }
    if (ch == EOF && n == 0)
        rc = -1;
    buf[n] = '\0';
    *len = n;
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputc('\n', tty);
    fclose(tty);
    return rc;
}

int cli_read_secret(char **out, size_t *out_len, const char *env_name, const char *prompt,
                    bool confirm)
{
    *out = NULL;
    *out_len = 0;
    char *buf = sodium_malloc(SECRET_MAX);
    if (buf == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    char *env = env_name != NULL ? getenv(env_name) : NULL;
    size_t n = 0;
    if (env != NULL) {
        n = strlen(env);
        if (n == 0 || n >= SECRET_MAX) {
            sodium_free(buf);
            return cli_fail(EXIT_INVALID, "%s must hold 1 to %d bytes", env_name, SECRET_MAX - 1);
        }
        memcpy(buf, env, n);
        /* Do not leave the secret in this process's environment, where a
         * child process or a core dump would find it. */
        sodium_memzero(env, n);
        unsetenv(env_name);
    } else if (isatty(STDIN_FILENO)) {
        int r = prompt_line(buf, SECRET_MAX, &n, prompt);
        if (r != 0 || n == 0) {
            sodium_free(buf);
            return cli_fail(r == -2 ? EXIT_INVALID : EXIT_USAGE,
                            r == -2 ? "passphrase too long" : "no passphrase given");
        }
        if (confirm) {
            char *again = sodium_malloc(SECRET_MAX);
            size_t n2 = 0;
            if (again == NULL) {
                sodium_free(buf);
                return cli_fail(EXIT_OTHER, "out of memory");
            }
            r = prompt_line(again, SECRET_MAX, &n2, "Repeat: ");
            bool same = r == 0 && n2 == n && sodium_memcmp(again, buf, n) == 0;
            sodium_free(again);
            if (!same) {
                sodium_free(buf);
                return cli_fail(EXIT_INVALID, "the passphrases do not match");
            }
        }
    } else {
        sodium_free(buf);
        return EXIT_OK; /* nothing available: *out stays NULL */
    }
    *out = buf;
    *out_len = n;
    return EXIT_OK;
}

int cli_get_passphrase(cli *c, const char *prompt, bool confirm)
{
    if (c->passphrase_tried)
        return EXIT_OK;
    c->passphrase_tried = true;
    return cli_read_secret(&c->passphrase, &c->passphrase_len, "CKSTORE_PASSPHRASE", prompt,
                           confirm);
}

int cli_key_options(cli *c, ck_options *o)
{
    *o = (ck_options)CK_OPTIONS_INIT;
    if (c->store_dir == NULL)
        return cli_fail(EXIT_USAGE, "no store: give --store DIR or set CKSTORE_DIR");
    if (c->key_file == NULL) {
        int r = cli_get_passphrase(c, "Passphrase: ", false);
        if (r != EXIT_OK)
            return r;
        if (c->passphrase == NULL)
            return cli_fail(EXIT_USAGE, "no key: give --key-file FILE, or set CKSTORE_KEY_FILE "
                                        "or CKSTORE_PASSPHRASE, or run on a terminal");
    }
    o->key_file = c->key_file;
    o->passphrase = c->passphrase;
    o->passphrase_len = c->passphrase_len;
    return EXIT_OK;
}

int cli_open(cli *c, ck_store **out, unsigned flags)
{
    char err[CK_ERRMSG_MAX];
    *out = NULL;
    ck_options o;
    int r = cli_key_options(c, &o);
    if (r != EXIT_OK)
        return r;
    o.flags = flags;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    err[0] = '\0';
    int rc = ck_open(out, c->store_dir, &o);
    if (rc != CK_OK)
        return cli_fail_rc(rc, NULL, err, "cannot open the store");
    if (ck_audit_recovered(*out) > 0)
        fprintf(stderr, "ckstore: warning: the audit log ended in a torn entry (a crash during "
                        "a write); it was truncated and the repair logged\n");
    return EXIT_OK;
}

static void print_usage(FILE *f)
{
    fputs(USAGE, f);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs(EXIT_CODES, f);
}

int main(int argc, char **argv)
{
    cli c = {0};
    c.prog = "ckstore";
    c.store_dir = getenv("CKSTORE_DIR");
    c.key_file = getenv("CKSTORE_KEY_FILE");
    c.format = FORMAT_JSON;

    if (sodium_init() < 0)
        return cli_fail(EXIT_OTHER, "cannot initialise libsodium");
    cli_json_wipe_on_free(); /* before any JSON: it carries customer values */

    static const struct option opts[] = {
        {"store", required_argument, NULL, 's'},  {"key-file", required_argument, NULL, 'k'},
        {"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    int ch;
    /* "+": stop at the first non-option, the command name. */
    while ((ch = getopt_long(argc, argv, "+s:k:f:hV", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            c.store_dir = optarg;
            break;
        case 'k':
            c.key_file = optarg;
            break;
        case 'f':
            if (strcmp(optarg, "json") == 0)
                c.format = FORMAT_JSON;
            else if (strcmp(optarg, "text") == 0)
                c.format = FORMAT_TEXT;
            else
                return cli_fail(EXIT_USAGE, "--format must be json or text");
            break;
        case 'h':
            print_usage(stdout);
            return EXIT_OK;
        case 'V':
            printf("ckstore %s\n", ck_version());
            return EXIT_OK;
        default:
            print_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(COMMANDS[i].name, name) != 0)
            continue;
        int sub_argc = argc - optind;
        char **sub_argv = argv + optind;
        for (int j = 1; j < sub_argc; j++) {
            if (strcmp(sub_argv[j], "--help") == 0 || strcmp(sub_argv[j], "-h") == 0) {
                fputs(COMMANDS[i].help, stdout);
                fputs(EXIT_CODES, stdout);
                return EXIT_OK;
            }
        }
        optind = 0; /* reset getopt for the command's own options */
        int rc = COMMANDS[i].run(&c, sub_argc, sub_argv);
        cli_free_secret(c.passphrase, c.passphrase_len);
        if (fflush(stdout) != 0 && rc == EXIT_OK)
            rc = cli_fail(EXIT_OTHER, "cannot write to standard output");
        return rc;
    }
    cli_fail(EXIT_USAGE, "unknown command '%s' (see ckstore --help)", name);
    return EXIT_USAGE;
}
