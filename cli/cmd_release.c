/*
 * cmd_release.c - consent, get, segment, contact: recording what the
 * customer agreed to, and releasing data for a purpose.
 *
 * Released values are printed on standard output only; no message on
 * standard error quotes a value.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char HELP_CONSENT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] consent ACTION SUBJECT [OPTIONS]\n"
    "\n"
    "  consent grant|withdraw|refuse|object SUBJECT --purpose P --actor A\n"
    "          [--fields F1,F2,...] [--recipient X]... [--expires DATE|TIME]\n"
    "          [--source TEXT] [--notice TEXT] [--collector TEXT]\n"
    "  consent show SUBJECT\n"
    "  consent tcf SUBJECT --tc STRING|- --actor A\n"
    "\n"
    "Record a consent decision of one subject for one purpose, or show its\n"
    "consents. Records are append-only: the newest is the current state, the\n"
    "older ones its history. Withdrawing is as easy as granting.\n"
    "\n"
    "SUBJECT is exactly one of --ref R, --subject ID, --alias A,\n"
    "--lookup FIELD=VALUE, --pseudonym PS (made for --purpose; another context\n"
    "with --pseudonym-purpose P [--pseudonym-recipient R]).\n"
    "\n"
    "grant      the customer agrees (state granted)\n"
    "withdraw   the customer takes a consent back (withdrawn)\n"
    "refuse     the customer said no (refused)\n"
    "object     the customer objects to a legitimate interest (objected)\n"
    "  --purpose P        a purpose of the schema (required)\n"
    "  --actor A          who records it, for the audit log (required)\n"
    "  --fields F1,F2     the scope: some of the purpose's fields (default: all of\n"
    "                     them). A special field is released only when the\n"
    "                     scope names it.\n"
    "  --recipient X      a recipient the consent covers (repeat for several);\n"
    "                     without any, it covers use inside the company only\n"
    "  --expires WHEN     a date YYYY-MM-DD (the consent holds through that whole\n"
    "                     day, UTC) or an RFC 3339 time (2027-11-22T18:00:00+01:00,\n"
    "                     the instant it stops holding); default: never\n"
    "  --source TEXT      evidence: where it was collected (form, channel)\n"
    "  --notice TEXT      evidence: the version of the notice shown\n"
    "  --collector TEXT   evidence: who collected it\n"
    "  Prints {\"recorded\":true,\"purpose\":P,\"state\":S}.\n"
    "\n"
    "show       print {\"current\":{\"<purpose>\":{record},...},\"history\":[...]},\n"
    "           each record {\"purpose\",\"state\",\"fields\",\"recipients\",\n"
    "           \"expires\",\"at\",\"source\",\"notice\",\"collector\",\"tc_string\"},\n"
    "           history oldest first (tc_string: the TC string a record was mapped\n"
    "           from).\n"
    "\n"
    "tcf        record what an IAB TCF v2 TC string (the euconsent-v2 value) says\n"
    "           for each purpose of the schema that declares \"tcf\" (docs/tcf.md):\n"
    "           a consent purpose is granted or refused, a legitimate-interest\n"
    "           purpose granted or objected. The records are dated with the\n"
    "           string's lastUpdated and keep the string as evidence. A purpose\n"
    "           whose current record is newer, or came from this same string,\n"
    "           is left unchanged.\n"
    "  --tc STRING        the TC string; - reads it from standard input\n"
    "                     (surrounding whitespace ignored)\n"
    "  --actor A          who records it, for the audit log (required)\n"
    "  Prints {\"at\":TIME,\"applied\":[{\"purpose\":P,\"state\":S},...],\n"
    "  \"unchanged\":[{\"purpose\":P,\"state\":S,\"reason\":R},...]}.\n"
    "  A malformed TC string, or a schema with no purpose declaring \"tcf\":\n"
    "  exit 6, nothing written.\n"
    "\n"
    "Unknown purpose, or a scope field the purpose does not declare: exit 6.\n"
    "No such subject: exit 3.\n";

const char HELP_GET[] =
    "usage: ckstore [--store DIR] [--key-file FILE] get --purpose P --actor A\n"
    "               [--recipient X] [--fields F1,F2,...] SUBJECT\n"
    "\n"
    "Release what purpose P may see of one subject, deny by default: a field is\n"
    "released only when the purpose declares it and its legal basis holds\n"
    "(consent: a granted, unexpired consent whose scope and recipients cover the\n"
    "request; legitimate interest: no objection; contract, legal obligation).\n"
    "Every release is written to the audit log (field names, never values).\n"
    "\n"
    "  --purpose P       the purpose asking (required)\n"
    "  --actor A         who asks (required)\n"
    "  --recipient X     who receives; only a consent naming X covers it\n"
    "  --fields F1,F2    the fields wanted (default: all the purpose's fields)\n"
    "\n"
    "SUBJECT is exactly one of:\n"
    "  --subject ID          the internal id (32 hex characters)\n"
    "  --ref R               the CRM's customer number\n"
    "  --lookup FIELD=VALUE  an identifying field's value (email: any case)\n"
    "  --pseudonym PS        the pseudonym a previous answer gave, in this\n"
    "                        purpose (and recipient) context; another context with\n"
    "                        --pseudonym-purpose P [--pseudonym-recipient R]\n"
    "  --alias A             an alias of the subject\n"
    "\n"
    "Prints {\"subject\":\"<pseudonym>\",\"purpose\":P,\"released\":{field:value,...},\n"
    "\"withheld\":{field:reason,...}}. The pseudonym is stable for this purpose (and\n"
    "recipient) and unlinkable across contexts. Reasons: not_in_purpose,\n"
    "no_consent, refused, withdrawn, expired, recipient, objected,\n"
    "special_category, contact_cap, retention, unset - the first that applies,\n"
    "so a withheld field never reveals whether a value exists.\n"
    "With --format text: one line per field, \"field: value\" or\n"
    "\"field: (withheld: reason)\".\n"
    "\n"
    "Unknown purpose or field: exit 6. No such subject (or a pseudonym of\n"
    "another context): exit 3. Several subjects share the looked-up value: 6.\n";

const char HELP_SEGMENT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] segment --purpose P --actor A\n"
    "               [--recipient X] [--where PRED]... [--fields F1,F2,...]\n"
    "               [--limit N]\n"
    "\n"
    "Release, for purpose P, every subject for whom the purpose is lawful and\n"
    "every predicate holds: one answer per line (JSON Lines), each as ckstore\n"
    "get prints it, each audited. A predicate only sees a field that the purpose\n"
    "may read for that subject: a subject whose field is withheld does not\n"
    "match (filtering on it would leak it).\n"
    "\n"
    "  --purpose P, --actor A, --recipient X, --fields F1,F2   as for get\n"
    "  --where PRED   repeatable, all must hold; PRED is one of\n"
    "                   FIELD=VALUE    equal (a list field: has the item)\n"
    "                   FIELD~PREFIX   a string starting with PREFIX\n"
    "                   FIELD>=VALUE   at least (int, float, date, timestamp)\n"
    "                   FIELD<=VALUE   at most\n"
    "                 VALUE is read as the field's type as released (a date\n"
    "                 minimised to its year is an int)\n"
    "  --limit N      at most N subjects\n"
    "\n"
    "With --format text: \"subject: PSEUDONYM\" then one indented line per field.\n"
    "Unknown purpose or field, a value that does not parse, an operator that does\n"
    "not apply to the field: exit 6.\n";

const char HELP_CONTACT[] =
    "usage: ckstore [--store DIR] [--key-file FILE] contact record SUBJECT\n"
    "               --channel C [--inbound] --actor A\n"
    "       ckstore [--store DIR] [--key-file FILE] contact limit SUBJECT\n"
    "               --channel C --count N|none --actor A\n"
    "\n"
    "Contact pressure. A purpose that declares a contact channel caps how often a\n"
    "subject is contacted through it (e.g. 2 e-mails in 30 days); once the cap is\n"
    "reached, the channel's address field is withheld (contact_cap) for the\n"
    "purposes that declare the channel, until the window slides.\n"
    "\n"
    "SUBJECT is exactly one of --ref R, --subject ID, --alias A,\n"
    "--lookup FIELD=VALUE, or --pseudonym PS --pseudonym-purpose P\n"
    "[--pseudonym-recipient R].\n"
    "  --channel C   email, sms, phone or post\n"
    "  --actor A     who records it, for the audit log (required)\n"
    "\n"
    "record   count one contact of the subject on the channel, now.\n"
    "         Prints {\"recorded\":true,\"channel\":C}.\n"
    "         --inbound: the CUSTOMER made this contact (wrote in, called). It\n"
    "         does not count toward the cap; it keeps the channel's address field\n"
    "         alive: its retention (see purge) counts from the later of its last\n"
    "         write and the last inbound contact. Prints {\"recorded\":true,\n"
    "         \"channel\":C,\"inbound\":true}.\n"
    "limit    the customer's own cap: at most N contacts per window (0: do not\n"
    "         contact), or none to remove it. It can only lower the purposes'\n"
    "         caps. Prints {\"channel\":C,\"limit\":N} (null for none).\n";

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Split "a,b,c" in place into a malloc'ed array of its items. */
static int split_list(const char ***out, size_t *n, char *s, const char *cmd, const char *opt)
{
    size_t cnt = 1;
    for (const char *p = s; *p != '\0'; p++)
        cnt += *p == ',';
    const char **v = calloc(cnt, sizeof *v);
    if (v == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    size_t i = 0;
    for (char *p = s;; i++) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p == '\0') {
            free(v);
            return cli_fail(EXIT_USAGE, "%s: %s: an empty name in the list", cmd, opt);
        }
        v[i] = p;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = v;
    *n = i + 1;
    return EXIT_OK;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : d[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (years >= 1). */
static int64_t days_from_civil(int y, int m, int d)
{
    int64_t yy = y - (m <= 2);
    int64_t era = yy / 400; /* yy >= 0 */
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* `width` ASCII digits at s, or -1. */
static int num(const char *s, int width)
{
    int v = 0;
    for (int i = 0; i < width; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DD" at s (10 bytes there): days since the epoch of a real
 * calendar date in 0001..9999, or false. */
static bool parse_ymd(const char *s, int64_t *days)
{
    int y = num(s, 4), m = num(s + 5, 2), d = num(s + 8, 2);
    if (s[4] != '-' || s[7] != '-' || y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return false;
    *days = days_from_civil(y, m, d);
    return true;
}

/*
 * --expires: a date YYYY-MM-DD holds through that whole day, UTC, so it
 * expires at the next midnight: (days + 1) * 86400. An RFC 3339 time
 * (YYYY-MM-DDTHH:MM:SS[.F](Z|+HH:MM|-HH:MM)) is the instant itself, to the
 * second. The result must be after the epoch (0 means "never").
 */
static bool parse_expires(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t days;
    if (n < 10 || !parse_ymd(s, &days))
        return false;
    if (n == 10) {
        *out = (days + 1) * 86400;
        return *out > 0;
    }
    if (n < 20 || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return false;
    int hh = num(s + 11, 2), mi = num(s + 14, 2), ss = num(s + 17, 2);
    if (hh < 0 || hh > 23 || mi < 0 || mi > 59 || ss < 0 || ss > 59)
        return false;
    size_t i = 19;
    if (s[i] == '.') {
        size_t digits = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
        if (digits == 0 || digits > 9)
            return false;
    }
    int offset = 0;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        offset = 0;
    } else if ((s[i] == '+' || s[i] == '-') && n - i == 6 && s[i + 3] == ':') {
        int oh = num(s + i + 1, 2), om = num(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return false;
        offset = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    } else {
        return false;
    }
    *out = days * 86400 + hh * 3600 + mi * 60 + ss - (int64_t)offset * 60;
    return *out > 0;
}

/* A non-negative decimal integer up to `max`, or false. */
static bool parse_count(const char *s, unsigned long long max, unsigned long long *out)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* Print a string for people: as it is, unless it holds control characters
 * (a value could move the terminal's cursor): then JSON-escaped. */
static void print_text_value(json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        bool plain = true;
        for (size_t i = 0; i < n && plain; i++)
            plain = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
        if (plain) {
            fwrite(s, 1, n, stdout);
            return;
        }
    }
    json_dumpf(v, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Print one answer: the library's JSON line, or for people one line per
 * field (indented under a "subject:" line when `with_subject`). */
static int print_result(const cli *c, const ck_result *r, bool with_subject)
{
    char *json = NULL;
    if (ck_result_json(&json, r) != CK_OK)
        return cli_fail(EXIT_OTHER, "out of memory");
    if (c->format == FORMAT_JSON) {
        puts(json);
        ck_free(json);
        return EXIT_OK;
    }
    json_t *root = json_loads(json, 0, NULL);
    ck_free(json);
    json_t *released = json_object_get(root, "released");
    if (root == NULL || released == NULL) {
        json_decref(root);
        return cli_fail(EXIT_OTHER, "cannot read the answer");
    }
    const char *indent = with_subject ? "  " : "";
    if (with_subject)
        printf("subject: %s\n", ck_result_subject(r));
    for (size_t i = 0; i < ck_result_count(r); i++) {
        const ck_field_result *f = ck_result_field(r, i);
        if (f->reason != CK_RELEASED) {
            printf("%s%s: (withheld: %s)\n", indent, f->field, ck_reason_name(f->reason));
            continue;
        }
        printf("%s%s: ", indent, f->field);
        print_text_value(json_object_get(released, f->field));
        putchar('\n');
    }
    json_decref(root);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* consent                                                                  */
/* ------------------------------------------------------------------------ */

static void consent_record_text(json_t *rec)
{
    const char *keys[] = {"state",  "fields", "recipients", "expires",  "at",
                          "source", "notice", "collector",  "tc_string"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(rec, keys[i]);
        if (v == NULL || (json_is_array(v) && json_array_size(v) == 0))
            continue;
        printf(" %s=", keys[i]);
        if (json_is_array(v)) {
            size_t j;
            json_t *it;
            json_array_foreach(v, j, it)
            {
                if (j > 0)
                    putchar(',');
                print_text_value(it);
            }
        } else {
            print_text_value(v);
        }
    }
    putchar('\n');
}

static int consent_show(cli *c, int argc, char **argv)
{
    cli_who w = CLI_WHO_INIT;
    static const struct option opts[] = {CLI_WHO_OPTIONS, {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r < 0)
            return cli_bad_option(argv, "consent show");
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "consent show takes no arguments besides the subject");
    int code = cli_who_check(&w, "consent show", NULL, NULL);
    if (code != EXIT_OK)
        return code;
    ck_store *st = NULL;
    code = cli_open(c, &st, CK_OPEN_RDONLY);
    if (code != EXIT_OK)
        return code;
    char *json = NULL;
    int rc = ck_consent_json(&json, st, &w.who);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, "consent show");
    } else if (c->format == FORMAT_JSON) {
        puts(json);
    } else {
        json_t *root = json_loads(json, 0, NULL);
        json_t *cur = json_object_get(root, "current"), *hist = json_object_get(root, "history");
        const char *purpose;
        json_t *rec;
        size_t i;
        printf("current:%s\n", json_object_size(cur) == 0 ? " none" : "");
        json_object_foreach(cur, purpose, rec)
        {
            printf("  %s:", purpose);
            consent_record_text(rec);
        }
        printf("history:%s\n", json_array_size(hist) == 0 ? " none" : "");
        json_array_foreach(hist, i, rec)
        {
            printf("  %s:", json_string_value(json_object_get(rec, "purpose")));
            consent_record_text(rec);
        }
        json_decref(root);
    }
    ck_free(json);
    ck_close(st);
    return code;
}

static int consent_record(cli *c, int argc, char **argv, ck_consent_state state,
                          const char *state_name, const char *what)
{
    cli_who w = CLI_WHO_INIT;
    ck_consent rec = CK_CONSENT_INIT;
    const char *actor = NULL;
    const char **fields = NULL, **recipients = NULL;
    size_t nfields = 0, nrecipients = 0;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"purpose", required_argument, NULL, 'p'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"fields", required_argument, NULL, 'f'},
                                         {"recipient", required_argument, NULL, 'r'},
                                         {"expires", required_argument, NULL, 'e'},
                                         {"source", required_argument, NULL, 's'},
                                         {"notice", required_argument, NULL, 'n'},
                                         {"collector", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    /* Every --recipient takes an argument: there are fewer than argc. */
    recipients = calloc((size_t)argc, sizeof *recipients);
    if (recipients == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    int code = EXIT_OK;
    int ch;
    while (code == EXIT_OK && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r >= 0) {
            code = r;
            continue;
        }
        switch (ch) {
        case 'p':
            rec.purpose = optarg;
            break;
        case 'a':
            actor = optarg;
            break;
        case 'f':
            if (fields != NULL)
                code = cli_fail(EXIT_USAGE, "%s: --fields is given twice", what);
            else
                code = split_list(&fields, &nfields, optarg, what, "--fields");
            break;
        case 'r':
            recipients[nrecipients++] = optarg;
            break;
        case 'e':
            if (!parse_expires(optarg, &rec.expires))
                code = cli_fail(EXIT_USAGE,
                                "%s: --expires needs a real date YYYY-MM-DD or an RFC 3339 "
                                "time (2027-11-22T18:00:00Z), after 1970-01-01",
                                what);
            break;
        case 's':
            rec.source = optarg;
            break;
        case 'n':
            rec.notice = optarg;
            break;
        case 'c':
            rec.collector = optarg;
            break;
        default:
            code = cli_bad_option(argv, what);
            break;
        }
    }
    if (code == EXIT_OK && optind != argc)
        code = cli_fail(EXIT_USAGE,
                        "%s takes no arguments besides its options (see ckstore "
                        "consent --help)",
                        what);
    if (code == EXIT_OK && (rec.purpose == NULL || actor == NULL))
        code = cli_fail(EXIT_USAGE, "%s needs --purpose P and --actor A", what);
    if (code == EXIT_OK)
        code = cli_who_check(&w, what, rec.purpose, NULL);
    ck_store *st = NULL;
    if (code == EXIT_OK)
        code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        rec.state = state;
        rec.fields = fields;
        rec.nfields = nfields;
        rec.recipients = recipients;
        rec.nrecipients = nrecipients;
        int rc = ck_consent_record(st, &w.who, &rec, actor);
        if (rc != CK_OK)
            code = cli_fail_rc(rc, st, NULL, what);
        else if (c->format == FORMAT_TEXT)
            printf("consent recorded: %s %s\n", rec.purpose, state_name);
        else
            code = cli_print_json(json_pack("{s:b, s:s, s:s}", "recorded", 1, "purpose",
                                            rec.purpose, "state", state_name));
        ck_close(st);
    }
    free(fields);
    free(recipients);
    return code;
}

/* Room for the longest TC string the library takes, surrounding
 * whitespace and one byte more to tell "too long". */
#define TC_READ_MAX ((size_t)CK_TCF_TEXT_MAX + 4096)

/* Read a TC string from standard input into a new buffer (*out, to free),
 * trimmed of surrounding whitespace: *tc and *len point into it. */
static int read_tc_stdin(char **out, const char **tc, size_t *len)
{
    size_t n = 0;
    char *buf = malloc(TC_READ_MAX);
    *out = NULL;
    if (buf == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    for (;;) {
        size_t got = fread(buf + n, 1, TC_READ_MAX - n, stdin);
        n += got;
        if (got == 0) {
            if (ferror(stdin)) {
                free(buf);
                return cli_fail(EXIT_OTHER, "consent tcf: cannot read standard input");
            }
            break;
        }
        if (n == TC_READ_MAX) {
            free(buf);
            return cli_fail(EXIT_INVALID, "consent tcf: the TC string is longer than %u bytes",
                            (unsigned)CK_TCF_TEXT_MAX);
        }
    }
    const char *p = buf;
    while (n > 0 && isspace((unsigned char)p[0])) {
        p++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    *out = buf;
    *tc = p;
    *len = n;
    return EXIT_OK;
}

static int print_tcf_result(const cli *c, const ck_tcf_result *r)
{
    if (c->format == FORMAT_TEXT) {
        for (size_t i = 0; i < r->count; i++) {
            const ck_tcf_outcome *o = &r->outcomes[i];
            const char *state = o->state == CK_CONSENT_GRANTED   ? "granted"
                                : o->state == CK_CONSENT_REFUSED ? "refused"
                                                                 : "objected";
            if (o->action == CK_TCF_APPLIED)
                printf("%s: %s\n", o->purpose, state);
            else
                printf("%s: unchanged (%s; the string says %s)\n", o->purpose,
                       o->action == CK_TCF_OLDER ? "older than the current record"
                                                 : "already recorded from this string",
                       state);
        }
        return EXIT_OK;
    }
    char *json = NULL;
    if (ck_tcf_result_json(&json, r) != CK_OK)
        return cli_fail(EXIT_OTHER, "out of memory");
    int code =
        puts(json) == EOF ? cli_fail(EXIT_OTHER, "cannot write to standard output") : EXIT_OK;
    ck_free(json);
    return code;
}

static int consent_tcf(cli *c, int argc, char **argv)
{
    cli_who w = CLI_WHO_INIT;
    const char *actor = NULL, *tc = NULL;
    char *buf = NULL;
    size_t len = 0;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"tc", required_argument, NULL, 't'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    int code = EXIT_OK;
    int ch;
    while (code == EXIT_OK && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r >= 0) {
            code = r;
            continue;
        }
        switch (ch) {
        case 't':
            if (tc != NULL)
                code = cli_fail(EXIT_USAGE, "consent tcf: --tc is given twice");
            tc = optarg;
            break;
        case 'a':
            actor = optarg;
            break;
        default:
            code = cli_bad_option(argv, "consent tcf");
            break;
        }
    }
    if (code != EXIT_OK)
        return code;
    if (optind != argc)
        return cli_fail(EXIT_USAGE, "consent tcf takes no arguments besides its options (see "
                                    "ckstore consent --help)");
    if (tc == NULL || actor == NULL)
        return cli_fail(EXIT_USAGE, "consent tcf needs --tc STRING|- and --actor A");
    code = cli_who_check(&w, "consent tcf", NULL, NULL);
    if (code != EXIT_OK)
        return code;
    len = strlen(tc);
    if (strcmp(tc, "-") == 0) {
        code = read_tc_stdin(&buf, &tc, &len);
        if (code != EXIT_OK)
            return code;
    }
    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        ck_tcf_result res = CK_TCF_RESULT_INIT;
        int rc = ck_consent_tcf(&res, st, &w.who, tc, len, actor);
        if (rc != CK_OK)
            code = cli_fail_rc(rc, st, NULL, "consent tcf");
        else
            code = print_tcf_result(c, &res);
        ck_tcf_result_free(&res);
        ck_close(st);
    }
    free(buf);
    return code;
}

int cmd_consent(cli *c, int argc, char **argv)
{
    static const struct {
        const char *name, *what, *state_name;
        ck_consent_state state;
    } actions[] = {{"grant", "consent grant", "granted", CK_CONSENT_GRANTED},
                   {"withdraw", "consent withdraw", "withdrawn", CK_CONSENT_WITHDRAWN},
                   {"refuse", "consent refuse", "refused", CK_CONSENT_REFUSED},
                   {"object", "consent object", "objected", CK_CONSENT_OBJECTED}};
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "consent needs grant, withdraw, refuse, object, show or tcf "
                                    "(see ckstore consent --help)");
    optind = 0;
    opterr = 0;
    if (strcmp(argv[1], "show") == 0)
        return consent_show(c, argc - 1, argv + 1);
    if (strcmp(argv[1], "tcf") == 0)
        return consent_tcf(c, argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(argv[1], actions[i].name) == 0)
            return consent_record(c, argc - 1, argv + 1, actions[i].state, actions[i].state_name,
                                  actions[i].what);
    return cli_fail(EXIT_USAGE,
                    "unknown consent action '%.32s' (grant, withdraw, refuse, object, show or "
                    "tcf)",
                    argv[1]);
}

/* ------------------------------------------------------------------------ */
/* get                                                                      */
/* ------------------------------------------------------------------------ */

int cmd_get(cli *c, int argc, char **argv)
{
    cli_who w = CLI_WHO_INIT;
    ck_request req = CK_REQUEST_INIT;
    const char **fields = NULL;
    size_t nfields = 0;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"purpose", required_argument, NULL, 'p'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"recipient", required_argument, NULL, 'r'},
                                         {"fields", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    int code = EXIT_OK;
    int ch;
    opterr = 0;
    while (code == EXIT_OK && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r >= 0) {
            code = r;
            continue;
        }
        switch (ch) {
        case 'p':
            req.purpose = optarg;
            break;
        case 'a':
            req.actor = optarg;
            break;
        case 'r':
            req.recipient = optarg;
            break;
        case 'f':
            if (fields != NULL)
                code = cli_fail(EXIT_USAGE, "get: --fields is given twice");
            else
                code = split_list(&fields, &nfields, optarg, "get", "--fields");
            break;
        default:
            code = cli_bad_option(argv, "get");
            break;
        }
    }
    if (code == EXIT_OK && optind != argc)
        code = cli_fail(EXIT_USAGE, "get takes no arguments besides its options (see ckstore get "
                                    "--help)");
    if (code == EXIT_OK && (req.purpose == NULL || req.actor == NULL))
        code = cli_fail(EXIT_USAGE, "get needs --purpose P and --actor A");
    if (code == EXIT_OK)
        code = cli_who_check(&w, "get", req.purpose, req.recipient);
    ck_store *st = NULL;
    if (code == EXIT_OK)
        code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        req.subject = w.who;
        req.fields = fields;
        req.nfields = nfields;
        ck_result *res = NULL;
        int rc = ck_release(&res, st, &req);
        if (rc != CK_OK)
            code = cli_fail_rc(rc, st, NULL, "get");
        else
            code = print_result(c, res, false);
        ck_result_free(res);
        ck_close(st);
    }
    free(fields);
    return code;
}

/* ------------------------------------------------------------------------ */
/* segment                                                                  */
/* ------------------------------------------------------------------------ */

/* FIELD>=V, FIELD<=V, FIELD~V, FIELD=V: the first operator character after
 * the field name decides, so the two-character operators win over "=". */
static int parse_where(ck_predicate *p, char *s)
{
    size_t i = strcspn(s, "<>~=");
    if (s[i] == '\0' || i == 0)
        return cli_fail(EXIT_USAGE, "segment: --where needs FIELD=VALUE, FIELD~PREFIX, "
                                    "FIELD>=VALUE or FIELD<=VALUE");
    const char *value = s + i + 1;
    switch (s[i]) {
    case '>':
    case '<':
        if (s[i + 1] != '=')
            return cli_fail(EXIT_USAGE, "segment: --where: the comparisons are >= and <=");
        p->op = s[i] == '>' ? CK_PRED_GE : CK_PRED_LE;
        value++;
        break;
    case '~':
        p->op = CK_PRED_PREFIX;
        break;
    default:
        p->op = CK_PRED_EQ;
        break;
    }
    s[i] = '\0';
    p->field = s;
    p->value = value;
    p->len = strlen(value);
    return EXIT_OK;
}

int cmd_segment(cli *c, int argc, char **argv)
{
    ck_segment_request req = CK_SEGMENT_INIT;
    const char **fields = NULL;
    size_t nfields = 0, nwhere = 0;
    static const struct option opts[] = {{"purpose", required_argument, NULL, 'p'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"recipient", required_argument, NULL, 'r'},
                                         {"fields", required_argument, NULL, 'f'},
                                         {"where", required_argument, NULL, 'w'},
                                         {"limit", required_argument, NULL, 'l'},
                                         {NULL, 0, NULL, 0}};
    /* Every --where takes an argument: there are fewer than argc. */
    ck_predicate *where = calloc((size_t)argc, sizeof *where);
    if (where == NULL)
        return cli_fail(EXIT_OTHER, "out of memory");
    int code = EXIT_OK;
    int ch;
    opterr = 0;
    while (code == EXIT_OK && (ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            req.purpose = optarg;
            break;
        case 'a':
            req.actor = optarg;
            break;
        case 'r':
            req.recipient = optarg;
            break;
        case 'f':
            if (fields != NULL)
                code = cli_fail(EXIT_USAGE, "segment: --fields is given twice");
            else
                code = split_list(&fields, &nfields, optarg, "segment", "--fields");
            break;
        case 'w':
            code = parse_where(&where[nwhere], optarg);
            nwhere++;
            break;
        case 'l': {
            unsigned long long n;
            if (!parse_count(optarg, UINT64_MAX, &n) || n == 0)
                code = cli_fail(EXIT_USAGE, "segment: --limit needs a positive number");
            else
                req.limit = (uint64_t)n;
            break;
        }
        default:
            code = cli_bad_option(argv, "segment");
            break;
        }
    }
    if (code == EXIT_OK && optind != argc)
        code = cli_fail(EXIT_USAGE, "segment takes no arguments besides its options (see ckstore "
                                    "segment --help)");
    if (code == EXIT_OK && (req.purpose == NULL || req.actor == NULL))
        code = cli_fail(EXIT_USAGE, "segment needs --purpose P and --actor A");
    ck_store *st = NULL;
    if (code == EXIT_OK)
        code = cli_open(c, &st, 0);
    if (code == EXIT_OK) {
        req.where = where;
        req.nwhere = nwhere;
        req.fields = fields;
        req.nfields = nfields;
        ck_cursor *cur = NULL;
        int rc = ck_segment(&cur, st, &req);
        const ck_result *res;
        while (rc == CK_OK && code == EXIT_OK && (rc = ck_segment_next(cur, &res)) == CK_OK)
            code = print_result(c, res, true);
        if (code == EXIT_OK && rc != CK_ENOTFOUND)
            code = cli_fail_rc(rc, st, NULL, "segment");
        ck_cursor_free(cur);
        ck_close(st);
    }
    free(fields);
    free(where);
    return code;
}

/* ------------------------------------------------------------------------ */
/* contact                                                                  */
/* ------------------------------------------------------------------------ */

int cmd_contact(cli *c, int argc, char **argv)
{
    if (argc < 2)
        return cli_fail(EXIT_USAGE, "contact needs record or limit (see ckstore contact --help)");
    bool is_limit;
    if (strcmp(argv[1], "record") == 0)
        is_limit = false;
    else if (strcmp(argv[1], "limit") == 0)
        is_limit = true;
    else
        return cli_fail(EXIT_USAGE, "unknown contact action '%.32s' (record or limit)", argv[1]);
    const char *what = is_limit ? "contact limit" : "contact record";
    argc--;
    argv++;

    cli_who w = CLI_WHO_INIT;
    const char *channel = NULL, *actor = NULL;
    int count = INT_MIN; /* not given */
    bool inbound = false;
    static const struct option opts[] = {CLI_WHO_OPTIONS,
                                         {"channel", required_argument, NULL, 'c'},
                                         {"actor", required_argument, NULL, 'a'},
                                         {"count", required_argument, NULL, 'n'},
                                         {"inbound", no_argument, NULL, 'i'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    optind = 0;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int r = cli_who_option(&w, ch, optarg);
        if (r > 0)
            return r;
        if (r == EXIT_OK)
            continue;
        switch (ch) {
        case 'c':
            channel = optarg;
            if (strcmp(channel, "email") != 0 && strcmp(channel, "sms") != 0 &&
                strcmp(channel, "phone") != 0 && strcmp(channel, "post") != 0)
                return cli_fail(EXIT_USAGE, "%s: --channel must be email, sms, phone or post",
                                what);
            break;
        case 'a':
            actor = optarg;
            break;
        case 'i':
            if (is_limit)
                return cli_fail(EXIT_USAGE, "contact limit takes no --inbound");
            inbound = true;
            break;
        case 'n': {
            unsigned long long n;
            if (!is_limit)
                return cli_fail(EXIT_USAGE, "contact record takes no --count");
            if (strcmp(optarg, "none") == 0)
                count = -1;
            else if (parse_count(optarg, INT_MAX, &n))
                count = (int)n;
            else
                return cli_fail(EXIT_USAGE, "contact limit: --count needs a number (0: do not "
                                            "contact) or none");
            break;
        }
        default:
            return cli_bad_option(argv, what);
        }
    }
    if (optind != argc)
        return cli_fail(EXIT_USAGE,
                        "%s takes no arguments besides its options (see ckstore "
                        "contact --help)",
                        what);
    if (channel == NULL || actor == NULL)
        return cli_fail(EXIT_USAGE, "%s needs --channel C and --actor A", what);
    if (is_limit && count == INT_MIN)
        return cli_fail(EXIT_USAGE, "contact limit needs --count N or --count none");
    int code = cli_who_check(&w, what, NULL, NULL);
    if (code != EXIT_OK)
        return code;

    ck_store *st = NULL;
    code = cli_open(c, &st, 0);
    if (code != EXIT_OK)
        return code;
    int rc = is_limit ? ck_contact_limit(st, &w.who, channel, count, actor)
                      : ck_contact_record_v2(st, &w.who, channel, inbound ? CK_CONTACT_INBOUND : 0u,
                                             actor);
    if (rc != CK_OK) {
        code = cli_fail_rc(rc, st, NULL, what);
    } else if (c->format == FORMAT_TEXT) {
        if (!is_limit)
            printf("%scontact recorded on %s\n", inbound ? "inbound " : "", channel);
        else if (count < 0)
            printf("no contact limit of its own on %s\n", channel);
        else
            printf("contact limit on %s: %d\n", channel, count);
    } else if (!is_limit && inbound) {
        code = cli_print_json(
            json_pack("{s:b, s:s, s:b}", "recorded", 1, "channel", channel, "inbound", 1));
    } else if (!is_limit) {
        code = cli_print_json(json_pack("{s:b, s:s}", "recorded", 1, "channel", channel));
    } else {
        code = cli_print_json(json_pack("{s:s, s:o}", "channel", channel, "limit",
                                        count < 0 ? json_null() : json_integer(count)));
    }
    ck_close(st);
    return code;
}
