/* Emoji names for the lexical detector: data/emoji/emoji-names.tsv (generated from
 * emojibase-data by tools/concepts/gen_emoji_names.py) maps each emoji sequence to its
 * English label and tags ("1F52B  water pistol  gun, handgun, pistol, revolver, ..."). The
 * detector matches those names against the concept bank's terms, so 🔫 is "gun" for a bank
 * that lists gun.
 *
 * File format: UTF-8, one emoji per line, '#' lines are comments:
 *   HEX[-HEX...] <TAB> label <TAB> tag, tag, ...
 * The sequence is written without variation selectors (FE0E, FE0F) and skin-tone modifiers
 * (1F3FB-1F3FF): both are ignored when a prompt is matched. The file is checked (code points
 * in range, at most SD_EMOJI_MAX_CPS per sequence, a label, valid UTF-8, no control
 * characters, lines of at most 4096 bytes, at most 16 MiB and SD_EMOJI_MAX_ENTRIES lines);
 * every error names the file and line.
 */
#ifndef SD_SAFETY_EMOJI_H
#define SD_SAFETY_EMOJI_H

#include <stddef.h>
#include <stdint.h>

#define SD_EMOJI_MAX_CPS 16
#define SD_EMOJI_MAX_ENTRIES 20000

typedef struct sd_emoji_table sd_emoji_table;

int sd_emoji_parse(const char *text, size_t len, const char *name, sd_emoji_table **out);
int sd_emoji_load(const char *path, sd_emoji_table **out);
void sd_emoji_free(sd_emoji_table *t);

/* The table of data/emoji/emoji-names.tsv ($SAFESD_DATA_DIR, the source tree, the install
 * prefix), loaded once per process and shared (never freed). NULL when it cannot be loaded;
 * *why (when why is not NULL) then says why. */
const sd_emoji_table *sd_emoji_default(const char **why);

int sd_emoji_count(const sd_emoji_table *t);
/* The longest emoji starting at cps[0] (of n code points): its index, and in *used the number
 * of code points it covers (variation selectors and skin tones inside or right after it
 * included). -1 when none starts there. A lone ASCII character is never an emoji. */
int sd_emoji_match(const sd_emoji_table *t, const int32_t *cps, int n, int *used);
/* The sequence as UTF-8 without variation selectors and skin tones (the form a bank term
 * that is an emoji is matched in). */
const char *sd_emoji_key(const sd_emoji_table *t, int i);
/* Names: 0 is the label, 1.. the tags. NULL past the last. */
const char *sd_emoji_name(const sd_emoji_table *t, int i, int k);

#endif
