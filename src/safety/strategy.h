/* Safety-context strategies that produce text (method.md §2.3).
 *
 *   append:            prompt + ", " + the context texts of the fired categories (bank
 *                      order, joined by ", ")
 *   substitute:        every flagged span (detection evidence) replaced by the bank's
 *                      substitute for its term in that category, or dropped when the bank
 *                      has none (or an empty one); separators left dangling are tidied
 *   substitute_append: substitute, then append (the suggested default)
 *
 * `project` works on the text encoder's token states (remove the flagged positions'
 * component along the unsafe directions) and belongs to the encoder side; not here.
 * The result is the text to encode as e_s; it is also what the safety report shows.
 */
#ifndef SD_SAFETY_STRATEGY_H
#define SD_SAFETY_STRATEGY_H

#include "safety/bank.h"
#include "safety/detector.h"

typedef enum { SD_STRATEGY_APPEND = 0, SD_STRATEGY_SUBSTITUTE, SD_STRATEGY_SUBSTITUTE_APPEND } sd_strategy;

/* "append", "substitute", "substitute+append" -> strategy; -1 when unknown. */
int sd_strategy_parse(const char *name);
const char *sd_strategy_name(sd_strategy s);

/* Build the safe text for `prompt` given detections (n_det of them, OR-combined: their
 * evidence and fired categories are merged). *out is malloc'ed. With no fired category
 * the prompt is returned unchanged. */
int sd_safety_text(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy s,
                   char **out);

#endif
