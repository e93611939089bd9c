/*
 * cmd_tcf.c - ckstore tcf decode: IAB TCF v2 consent strings.
 *
 * Needs no store and no key: decoding is a pure function of the string.
 */
#include "cli.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* Room for the longest string the library accepts, surrounding whitespace
 * (a trailing newline, say) and one byte more to tell "too long". */
#define TCF_READ_MAX ((size_t)CK_TCF_TEXT_MAX + 4096)

const char HELP_TCF[] =
    "usage: ckstore [--format json|text] tcf decode STRING|-\n"
    "\n"
    "Decode an IAB Transparency and Consent Framework v2 TC string (docs/tcf.md).\n"
    "No store or key is needed.\n"
    "\n"
    "decode STRING  print the decoded string as one JSON object: version, created,\n"
    "               lastUpdated (RFC 3339 UTC), cmpId, cmpVersion, consentScreen,\n"
    "               consentLanguage, vendorListVersion, policyVersion,\n"
    "               isServiceSpecific, useNonStandardTexts, specialFeatureOptins,\n"
    "               purposeConsents, purposeLegitimateInterests, purposeOneTreatment,\n"
    "               publisherCountryCode, vendorConsents, vendorLegitimateInterests,\n"
    "               publisherRestrictions [{purposeId, restrictionType, vendorIds}],\n"
    "               vendorsDisclosed, vendorsAllowed, publisherConsents,\n"
    "               publisherLegitimateInterests, numCustomPurposes,\n"
    "               publisherCustomConsents, publisherCustomLegitimateInterests.\n"
    "               Id lists are ascending; absent segments give empty lists.\n"
    "               With --format text the object is indented.\n"
    "decode -       read one string from standard input (surrounding whitespace\n"
    "               is ignored). Use -- before a STRING that starts with '-'.\n"
    "\n"
    "A malformed string is refused with the reason, e.g. \"core segment: truncated\n"
    "at bit 213 (vendor consents: MaxVendorId)\" (exit 6). Strings longer than\n"
    "65536 bytes are refused too.\n";

/* Read all of standard input (at most TCF_READ_MAX bytes) into buf. */
static int read_stdin(char *buf, size_t *len)
{
    size_t n = 0;
    *len = 0;
    for (;;) {
        size_t got = fread(buf + n, 1, TCF_READ_MAX - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin))
                return cli_fail(EXIT_OTHER, "tcf: cannot read standard input");
            break;
        }
        if (n == TCF_READ_MAX)
            return cli_fail(EXIT_INVALID, "tcf: the TC string is longer than %u bytes",
                            (unsigned)CK_TCF_TEXT_MAX);
    }
    *len = n;
    return EXIT_OK;
}

static int print_decoded(const cli *c, const char *json)
{
    if (c->format == FORMAT_TEXT) {
        json_error_t je;
        json_t *v = json_loads(json, 0, &je);
        if (v == NULL)
            return cli_fail(EXIT_OTHER, "tcf: out of memory");
        int rc = json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(v);
        if (rc != 0 || fputc('\n', stdout) == EOF)
            return cli_fail(EXIT_OTHER, "cannot write to standard output");
        return EXIT_OK;
    }
    if (puts(json) == EOF)
        return cli_fail(EXIT_OTHER, "cannot write to standard output");
    return EXIT_OK;
}

static int tcf_decode(cli *c, int argc, char **argv)
{
    int first = 1;
    if (argc == 3 && strcmp(argv[1], "--") == 0)
        first = 2;
    if (argc != first + 1)
        return cli_fail(EXIT_USAGE, "tcf decode needs one STRING, or - for standard input "
                                    "(see ckstore tcf --help)");
    const char *arg = argv[first];
    char *buf = NULL;
    const char *tc = arg;
    size_t len = strlen(arg);

    if (first == 1 && strcmp(arg, "-") == 0) {
        buf = malloc(TCF_READ_MAX);
        if (buf == NULL)
            return cli_fail(EXIT_OTHER, "tcf: out of memory");
        int code = read_stdin(buf, &len);
        if (code != EXIT_OK) {
            free(buf);
            return code;
        }
        tc = buf;
        while (len > 0 && isspace((unsigned char)tc[0])) {
            tc++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)tc[len - 1]))
            len--;
    }

    char *json = NULL;
    char err[CK_ERRMSG_MAX];
    int rc = ck_tcf_decode_json(&json, tc, len, err, sizeof err);
    free(buf);
    if (rc != CK_OK)
        return cli_fail(cli_exit_code(rc), "tcf: %s", err[0] != '\0' ? err : ck_strerror(rc));
    int code = print_decoded(c, json);
    ck_free(json);
    return code;
}

int cmd_tcf(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "tcf needs decode (see ckstore tcf --help)");
    if (strcmp(argv[1], "decode") == 0)
        return tcf_decode(c, argc - 1, argv + 1);
    return cli_fail(EXIT_USAGE, "unknown tcf action '%s' (decode)", argv[1]);
}
