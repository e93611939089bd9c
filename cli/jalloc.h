/* jalloc.h - Jansson frees wiped (jalloc.c). */
#ifndef CK_CLI_JALLOC_H
#define CK_CLI_JALLOC_H

/* Make Jansson wipe every block it frees, for the whole process. Call once,
 * before any JSON is parsed or built. */
void cli_json_wipe_on_free(void);

/* Free text that json_dumps made: through Jansson's free function (which
 * wipes it), never free(). NULL is a no-op. */
void cli_json_text_free(char *text);

#endif /* CK_CLI_JALLOC_H */
