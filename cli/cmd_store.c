/*
 * cmd_store.c - init, passwd, stats.
 */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char HELP_INIT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] init [--kdf-cost COST] [--no-passphrase]\n"
    "\n"
    "Create a new, empty store in DIR (made mode 0700 if missing).\n"
    "\n"
    "A random 32-byte root key is made and wrapped in key slots:\n"
    "  - a key-file slot when --key-file (or CKSTORE_KEY_FILE) is given; a missing\n"
    "    key file is created with 32 random bytes, mode 0600;\n"
    "  - a passphrase slot (Argon2id) when CKSTORE_PASSPHRASE is set, or, on a\n"
    "    terminal with no key file, from a prompt (asked twice).\n"
    "\n"
    "Options:\n"
    "  --kdf-cost COST   Argon2id cost of the passphrase slot: interactive,\n"
    "                    moderate (default) or sensitive\n"
    "  --no-passphrase   do not ask for a passphrase on a terminal\n"
    "\n"
    "Prints {\"store\":DIR,\"store_id\":HEX,\"format\":N,\"slots\":[...],\n"
    "\"key_file_created\":BOOL}.\n";

const char HELP_PASSWD[] =
    "usage: ckstore [--store DIR] [--key-file FILE] passwd ACTION\n"
    "\n"
    "Add, change or remove the store's key slots. The root key is rewrapped; no\n"
    "data is touched. The store is opened with the current key as usual.\n"
    "\n"
    "Actions (one or more, applied in this order):\n"
    "  --set-passphrase          add or replace the passphrase slot; the new\n"
    "                            passphrase comes from CKSTORE_NEW_PASSPHRASE or a\n"
    "                            prompt (asked twice). The old one stops working.\n"
    "  --kdf-cost COST           its Argon2id cost (interactive, moderate, sensitive)\n"
    "  --set-key-file FILE       add or replace the key-file slot with FILE\n"
    "                            (created, mode 0600, if it does not exist)\n"
    "  --remove-passphrase       remove the passphrase slot\n"
    "  --remove-key-file         remove the key-file slot\n"
    "\n"
    "The last slot cannot be removed. Prints {\"slots\":[...]}.\n";

const char HELP_STATS[] =
    "usage: ckstore [--store DIR] [--key-file FILE] stats\n"
    "\n"
    "Print figures about the store: format, store id, subjects and values held,\n"
    "file and map sizes, key slots.\n";

static int parse_cost(const char *s, ck_kdf_cost *out)
{
    if (strcmp(s, "interactive") == 0)
        *out = CK_KDF_INTERACTIVE;
    else if (strcmp(s, "moderate") == 0)
        *out = CK_KDF_MODERATE;
    else if (strcmp(s, "sensitive") == 0)
        *out = CK_KDF_SENSITIVE;
    else
        return cli_fail(EXIT_USAGE, "--kdf-cost must be interactive, moderate or sensitive");
    return EXIT_OK;
}

static json_t *slots_json(unsigned slots)
{
    json_t *a = json_array();
    if (slots & (1u << CK_SLOT_KEY_FILE))
        json_array_append_new(a, json_string("key_file"));
    if (slots & (1u << CK_SLOT_PASSPHRASE))
        json_array_append_new(a, json_string("passphrase"));
    return a;
}

int cmd_init(cli *c, int argc, char **argv)
{
    ck_kdf_cost cost = CK_KDF_DEFAULT;
    bool no_pass = false;
    static const struct option opts[] = {{"kdf-cost", required_argument, NULL, 'c'},
                                         {"no-passphrase", no_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'c') {
            int r = parse_cost(optarg, &cost);
            if (r != EXIT_OK)
                return r;
        } else if (ch == 'n') {
            no_pass = true;
        } else {
            return EXIT_USAGE;
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "init takes no arguments (see ckstore init --help)");
    if (c->store_dir == NULL)
        return cli_fail(EXIT_USAGE, "no store: give --store DIR or set CKSTORE_DIR");

    /* A passphrase from the environment always; from a prompt only when no
     * key file is given (a key file alone is a complete setup). */
    if (getenv("CKSTORE_PASSPHRASE") != NULL || (c->key_file == NULL && !no_pass)) {
        int r = cli_get_passphrase(c, "New passphrase: ", true);
        if (r != EXIT_OK)
            return r;
    }
    if (c->key_file == NULL && c->passphrase == NULL)
        return cli_fail(EXIT_USAGE, "no key: give --key-file FILE (created if missing), or set "
                                    "CKSTORE_PASSPHRASE, or run on a terminal");

    bool created = c->key_file != NULL && access(c->key_file, F_OK) != 0;
    char err[CK_ERRMSG_MAX] = "";
    ck_options o = CK_OPTIONS_INIT;
    o.key_file = c->key_file;
    o.passphrase = c->passphrase;
    o.passphrase_len = c->passphrase_len;
    o.kdf_cost = cost;
    o.flags = CK_INIT_CREATE_KEY_FILE;
    o.errbuf = err;
    o.errbuf_max = sizeof err;
    ck_store *st = NULL;
    int rc = ck_init(&st, c->store_dir, &o);
    if (rc != CK_OK)
        return cli_fail_rc(rc, NULL, err, "cannot create the store");

    ck_stats s = CK_STATS_INIT;
    rc = ck_stats_get(&s, st);
    if (rc != CK_OK) {
        int code = cli_fail_rc(rc, st, NULL, "cannot read the new store");
        ck_close(st);
        return code;
    }
    ck_close(st);
    char id[2 * CK_STORE_ID_BYTES + 1];
    cli_hex(id, s.store_id, sizeof s.store_id);
    if (c->format == FORMAT_TEXT) {
        printf("created store %s (id %s, format %u)%s\n", c->store_dir, id, (unsigned)s.format,
               created ? "; new key file written, mode 0600: keep a copy offline" : "");
        return EXIT_OK;
    }
    return cli_print_json(json_pack("{s:s, s:s, s:I, s:o, s:b}", "store", c->store_dir, "store_id",
                                    id, "format", (json_int_t)s.format, "slots",
                                    slots_json(s.slots), "key_file_created", created));
}

int cmd_passwd(cli *c, int argc, char **argv)
{
    bool set_pass = false, rm_pass = false, rm_kf = false;
    const char *new_kf = NULL;
    ck_kdf_cost cost = CK_KDF_DEFAULT;
    static const struct option opts[] = {{"set-passphrase", no_argument, NULL, 'p'},
                                         {"kdf-cost", required_argument, NULL, 'c'},
                                         {"set-key-file", required_argument, NULL, 'k'},
                                         {"remove-passphrase", no_argument, NULL, 'P'},
                                         {"remove-key-file", no_argument, NULL, 'K'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            set_pass = true;
            break;
        case 'c': {
            int r = parse_cost(optarg, &cost);
            if (r != EXIT_OK)
                return r;
            break;
        }
        case 'k':
            new_kf = optarg;
            break;
        case 'P':
            rm_pass = true;
            break;
        case 'K':
            rm_kf = true;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc || (!set_pass && !new_kf && !rm_pass && !rm_kf))
        return cli_fail(EXIT_USAGE, "passwd needs an action (see ckstore passwd --help)");
    if ((set_pass && rm_pass) || (new_kf && rm_kf))
        return cli_fail(EXIT_USAGE, "cannot both set and remove the same slot");

    ck_store *st = NULL;
    int code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;

    char *np = NULL;
    size_t np_len = 0;
    int rc = CK_OK;
    const char *what = NULL;
    if (set_pass) {
        code = cli_read_secret(&np, &np_len, "CKSTORE_NEW_PASSPHRASE", "New passphrase: ", true);
        if (code != EXIT_OK)
            goto done;
        if (np == NULL) {
            code = cli_fail(EXIT_USAGE, "no new passphrase: set CKSTORE_NEW_PASSPHRASE or run on "
                                        "a terminal");
            goto done;
        }
        rc = ck_slot_set_passphrase(st, np, np_len, cost);
        what = "cannot set the passphrase";
    }
    if (rc == CK_OK && new_kf != NULL) {
        unsigned flags = access(new_kf, F_OK) != 0 ? CK_INIT_CREATE_KEY_FILE : 0u;
        rc = ck_slot_set_key_file(st, new_kf, flags);
        what = "cannot set the key file";
    }
    if (rc == CK_OK && rm_pass) {
        rc = ck_slot_remove(st, CK_SLOT_PASSPHRASE);
        what = "cannot remove the passphrase slot";
    }
    if (rc == CK_OK && rm_kf) {
        rc = ck_slot_remove(st, CK_SLOT_KEY_FILE);
        what = "cannot remove the key-file slot";
    }
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, what);
        goto done;
    }
    ck_stats s = CK_STATS_INIT;
    rc = ck_stats_get(&s, st);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot read the slots");
        goto done;
    }
    if (c->format == FORMAT_TEXT) {
        printf("key slots:%s%s\n", (s.slots & (1u << CK_SLOT_KEY_FILE)) ? " key_file" : "",
               (s.slots & (1u << CK_SLOT_PASSPHRASE)) ? " passphrase" : "");
        code = EXIT_OK;
    } else {
        code = cli_print_json(json_pack("{s:o}", "slots", slots_json(s.slots)));
    }
done:
    cli_free_secret(np, np_len);
    ck_close(st);
    return code;
}

int cmd_stats(cli *c, int argc, char **argv)
{
    (void)argv;
    if (argc != 1)
        return cli_fail(EXIT_USAGE, "stats takes no arguments");
    ck_store *st = NULL;
    int code = cli_open(c, &st, CK_OPEN_RDONLY);
    if (code != EXIT_OK)
        return code;
    ck_stats s = CK_STATS_INIT;
    int rc = ck_stats_get(&s, st);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "cannot read statistics");
        ck_close(st);
        return code;
    }
    ck_close(st);
    char id[2 * CK_STORE_ID_BYTES + 1];
    cli_hex(id, s.store_id, sizeof s.store_id);
    if (c->format == FORMAT_TEXT) {
        printf("store        %s\nstore id     %s\nformat       %u\nsubjects     %llu\n"
               "values       %llu\ndata file    %llu bytes (%llu in use, map %llu)\n"
               "keyring file %llu bytes\nkey slots   %s%s\n",
               c->store_dir, id, (unsigned)s.format, (unsigned long long)s.subjects,
               (unsigned long long)s.values, (unsigned long long)s.data_file_bytes,
               (unsigned long long)s.data_used_bytes, (unsigned long long)s.map_bytes,
               (unsigned long long)s.keyring_file_bytes,
               (s.slots & (1u << CK_SLOT_KEY_FILE)) ? " key_file" : "",
               (s.slots & (1u << CK_SLOT_PASSPHRASE)) ? " passphrase" : "");
        return EXIT_OK;
    }
    json_t *slots = slots_json(s.slots);
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "store",
                          c->store_dir, "store_id", id, "format", (json_int_t)s.format, "subjects",
                          (json_int_t)s.subjects, "values", (json_int_t)s.values, "data_file_bytes",
                          (json_int_t)s.data_file_bytes, "data_used_bytes",
                          (json_int_t)s.data_used_bytes, "map_bytes", (json_int_t)s.map_bytes,
                          "keyring_file_bytes", (json_int_t)s.keyring_file_bytes, "slots", slots);
    if (o != NULL && (s.slots & (1u << CK_SLOT_PASSPHRASE)))
        json_object_set_new(o, "kdf",
                            json_pack("{s:s, s:I, s:I}", "alg", "argon2id13", "opslimit",
                                      (json_int_t)s.kdf_opslimit, "memlimit",
                                      (json_int_t)s.kdf_memlimit));
    return cli_print_json(o);
}
