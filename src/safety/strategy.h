/* Safety-context strategies that produce text (method.md §2.3).
 *
 *   append:            prompt + ", " + the context texts of the fired categories (bank
 *                      order, joined by ", ")
 *   substitute:        every flagged span (detection evidence) replaced by the bank's
 *                      substitute for its term in that category, or dropped when the bank
 *                      has none (or an empty one); separators left dangling are tidied
 *   substitute_append: substitute, then append (the suggested default)
 *   project:           the text is the prompt, unchanged; e_s = E(prompt) with the flagged
 *                      token positions' states moved (below)
 *
 * The result is the text to encode as e_s (for `project`, the text E(p) is computed from);
 * it is also what the safety report shows.
 *
 * `project` (method.md §2.3) keeps E(p) and moves only the flagged token positions: each
 * flagged position's state h loses its component along the unsafe concept directions,
 *     h <- h - sum_i (h . q_i) q_i
 * where q_1..q_r is an orthonormal basis (modified Gram-Schmidt, below) of the concept
 * directions; every other position is left bit-identical. The directions are the fired
 * categories' concept-description embeddings (semantic.h: sd_semantic_concepts); the
 * positions come from the detectors' evidence (sd_project_positions).
 */
#ifndef SD_SAFETY_STRATEGY_H
#define SD_SAFETY_STRATEGY_H

#include "safety/bank.h"
#include "safety/detector.h"

#include "text/tokenizer.h"

typedef enum {
  SD_STRATEGY_APPEND = 0,
  SD_STRATEGY_SUBSTITUTE,
  SD_STRATEGY_SUBSTITUTE_APPEND,
  SD_STRATEGY_PROJECT
} sd_strategy;

/* The strategy names, for error messages. */
#define SD_STRATEGY_NAMES "append, substitute, substitute+append, project"

/* "append", "substitute", "substitute+append", "project" -> strategy; -1 when unknown. */
int sd_strategy_parse(const char *name);
const char *sd_strategy_name(sd_strategy s);

/* Build the safe text for `prompt` given detections (n_det of them, OR-combined: their
 * evidence and fired categories are merged). *out is malloc'ed. With no fired category
 * the prompt is returned unchanged.
 *
 * Invariants (method.md §2.3): only *localised* evidence — a non-empty byte span — is
 * replaced or dropped, so no word outside such a span is ever lost. A fired category with
 * no localised evidence (a detector that fired on the prompt as a whole) gets its context
 * appended even under `substitute`, and its text is never deleted.
 * The same as sd_safety_text_fit with no tokenizer (no window). */
int sd_safety_text(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy s,
                   char **out);

/* sd_safety_text whose result fits the encoder's window: when the text would take more than
 * `room` tokens of `tok` (75 for SD's 77-position encoder), the prompt part's tail is trimmed
 * at a word boundary until prompt part + ", " + contexts fits; the appended contexts are
 * never trimmed. tok NULL or room <= 0: no fitting. */
int sd_safety_text_fit(const sd_bank *bank, const char *prompt, const sd_detection *det, int n_det, sd_strategy s,
                       const sd_tokenizer *tok, int room, char **out);

/* The encoder's window on `text`: when it tokenizes into at most `room` tokens, *cut =
 * strlen(text); else *cut is the end of the word that holds the room-th token (the first
 * word boundary — a byte after an ASCII space or punctuation — at which the prefix reaches
 * room tokens), so the detectors judge every word the encoder sees at least in part. *ntok
 * (may be NULL) receives the token count of the whole text. */
int sd_window_cut(const sd_tokenizer *tok, const char *text, int room, size_t *cut, size_t *ntok);

/* ---- project ------------------------------------------------------------------------- */

/* Default tolerance of sd_orthonormal_basis: a direction whose part outside the span of the
 * directions before it is under this fraction of its length adds nothing to the basis. */
#define SD_PROJECT_TOL 1e-3f

/* Orthonormal basis of the n directions dirs[n, D] (row-major): modified Gram-Schmidt,
 * each direction orthogonalised twice against the basis so far ("twice is enough"), in
 * double. A zero direction, or one whose residual is <= tol * its length (collinear with,
 * or in the span of, the earlier ones), is skipped. q receives rank rows of D floats (room
 * for n rows needed). A non-finite value is SD_E_ARG. */
int sd_orthonormal_basis(const float *dirs, int n, int D, float tol, float *q, int *rank);

/* Remove from h[D] its component along the orthonormal rows q[rank, D]:
 * h <- h - sum_i (h . q_i) q_i, applied one direction at a time (modified Gram-Schmidt
 * order; the same in exact arithmetic), dot products in double. Idempotent up to rounding. */
void sd_project_out(float *h, int D, const float *q, int rank);

/* Apply sd_project_out to the positions pos[npos] of states[seq, D]; every other row is
 * untouched. Positions outside 0..seq-1 are SD_E_ARG. */
int sd_project_tokens(float *states, int seq, int D, const int *pos, int npos, const float *q, int rank);

/* The framed token positions (BOS = 0; what sd_tokenize_prompt(tok, prompt, ., ctx, .)
 * gives) of the flagged spans of `prompt`: for each evidence entry of a fired category, its
 * `token` when set (semantic, token-level), else the tokens that overlap its byte span
 * [start, end) (found by tokenizing the prompt up to start and up to end and comparing with
 * the whole prompt's tokens; evidence that is not localised — an empty span and no token, a
 * detector that fired on the prompt as a whole — gives every word token). Positions
 * truncated away (past ctx - 2 word tokens) are dropped. *pos (malloc'ed, ascending,
 * distinct) and *n; *n may be 0. */
int sd_project_positions(const sd_tokenizer *tok, const char *prompt, const sd_detection *det, int n_det, int ctx,
                         int **pos, int *n);

#endif
