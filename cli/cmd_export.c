/*
 * cmd_export.c - export: the customer's access and portability export.
 *
 * The export holds the subject's values in full: it goes to standard
 * output only, from the library's buffer (wiped when freed), and no
 * message on standard error quotes any of it.
 */
#include "cli.h"

#include <getopt.h>
#include <string.h>

const char HELP_EXPORT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] export SUBJECT --actor A\n"
    "               [--format json|csv]\n"
    "\n"
    "Everything the store holds on one subject, for the customer's rights of\n"
    "access and portability (GDPR art. 15 and 20). The export is written to\n"
    "the audit log (action export, fsync'ed) before it is printed; if that\n"
    "fails, nothing is printed.\n"
    "\n"
    "SUBJECT is exactly one of --ref R, --subject ID, --lookup FIELD=VALUE,\n"
    "--alias A, or --pseudonym PS --pseudonym-purpose P [--pseudonym-recipient R]\n"
    "(see ckstore put --help).\n"
    "\n"
    "Options:\n"
    "  --actor A          who exports, for the audit log (required)\n"
    "  --format json|csv  json (default): the whole export as one JSON object;\n"
    "                     csv: the consent history only\n"
    "\n"
    "JSON: {\"format\":1,\"generated\":T,\"subject\":\"<32 hex id>\",\"created\":T,\n"
    "  \"fields\":{F:{\"type\",\"sensitivity\",\"identifying\",\"value\",\"updated\"}},\n"
    "  \"lookups\":{\"ref\":N,\"aliases\":N,\"identifying_fields\":[...],\"note\"},\n"
    "  \"consents\":{\"current\":{...},\"history\":[...]},\n"
    "  \"contacts\":{CHANNEL:{\"contacts\":[T,...],\"limit\":N|null}},\n"
    "  \"purposes\":{P:{\"basis\",\"description\",\"benefit\",\"fields\",...,\n"
    "                  \"consent\":STATE,\"may_use\":BOOL}},\n"
    "  \"releases\":[{\"seq\",\"time\",\"actor\",\"action\",\"purpose\",\"recipient\",\n"
    "               \"released\":[...],\"withheld\":{F:REASON}}],\n"
    "  \"history\":[{\"seq\",\"time\",\"actor\",\"action\",\"purpose\",\"detail\"}]}\n"
    "  - every value decrypted and in full; the ref and aliases are kept only as\n"
    "  keyed hashes, so they are counted, not shown; every release of the\n"
    "  subject's data from the audit log, with the fields released and withheld.\n"
    "\n"
    "CSV: the consent history, RFC 4180, lines ended by CRLF: a header\n"
    "  purpose,state,at,expires,fields,recipients,source,notice,collector,recorded\n"
    "  then one line per consent record, oldest first. Lists (fields,\n"
    "  recipients) hold one item per line within their cell. A cell starting\n"
    "  with = + - @ is written with a leading ' so that a spreadsheet does not\n"
    "  take it for a formula.\n"
    "\n"
    "Exit 0; 3 when there is no such subject; 6 when a look-up matches several\n"
    "subjects; 2 for a usage error (the global --format text is refused: the\n"
    "export is machine-readable).\n";

int cmd_export(cli *c, int argc, char **argv)
{
    const char *actor = NULL, *format = NULL;
    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"actor", required_argument, NULL, 'a'},
                                         {"format", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r == 0)
            continue;
        if (ch == 'a')
            actor = optarg;
        else if (ch == 'f' && format == NULL)
            format = optarg;
        else if (ch == 'f')
            return cli_fail(EXIT_USAGE, "export: --format is given twice");
        else
            return cli_bad_option(argv, "export");
    }
    int code = cli_who_check(&w, "export", NULL, NULL);
    if (code != EXIT_OK)
        return code;
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "export takes no argument besides its options");
    if (actor == NULL)
        return cli_fail(EXIT_USAGE, "export needs --actor A");
    unsigned flags = 0;
    if (format == NULL || strcmp(format, "json") == 0)
        flags = 0;
    else if (strcmp(format, "csv") == 0)
        flags = CK_EXPORT_CSV;
    else
        return cli_fail(EXIT_USAGE, "export: --format must be json or csv");
    if (c->format == FORMAT_TEXT)
        return cli_fail(EXIT_USAGE, "export: the export is machine-readable: give --format json "
                                    "or csv after the command, not the global --format text");

    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    char *text = NULL;
    int rc = ck_export(&text, st, &w.who, actor, flags);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "export");
    } else {
        size_t n = strlen(text);
        /* JSON: one line; CSV: its own CRLF line ends */
        if (fwrite(text, 1, n, stdout) != n || (flags == 0 && fputc('\n', stdout) == EOF))
            code = cli_fail(EXIT_OTHER, "cannot write to standard output");
    }
    ck_free(text);
    ck_close(st);
    return code;
}
