/* Context gates of the lexical detector: a match that the words around it show to be part of
 * a place's name, to name an animal or a make-believe thing, or to be the object of
 * "laughing at" that is no person, is not counted
 * (docs/safety-detectors.md, "Context gates"). The learned
 * detector uses them too: a score whose clearing words all lie in gated matches is cleared.
 *
 * - Place names (every category): the matched words are written capitalised ("Slaughter",
 *   "Blood", "Intercourse") in a prompt that is not written in capitals or title case, and
 *   they are followed by a capitalised word naming a geographic feature ("Slaughter Beach",
 *   "Blood Falls", "Death Valley"), preceded by a capitalised "Mount", "Lake", "Port",
 *   "Fort", "Cape" or "Saint", or come after a place preposition ("in", "near", "at",
 *   "from", "to", "outside", "around", "visiting") with a comma and a capitalised word after
 *   them ("near Intercourse, Pennsylvania", "in Dildo, Newfoundland"). Sexual matches take
 *   only this last form: the text encoder reads no capitals, and "Nude Beach" is a beach.
 * - Compound names of living things (every category but hate: a slur stays one inside an
 *   old plant name, "kaffir corn"): the match's last word begins, with the
 *   one or two words after it, a WordNet compound noun that names an animal, a plant or a
 *   food and whose last word is such a noun itself (sd_wn_is_compound: "robber fly",
 *   "killer whale", "death cap", "blood sausage", "naked mole rat"). The match is a modifier
 *   of another thing's name; a match that is the compound's last word counts ("stick
 *   insect").
 * - Animals (sexual, illegal activity, harassment; self-harm for the first form, strict: "a
 *   starving seagull"): the word right after the match names an
 *   animal (WordNet: a noun whose most frequent sense is in noun.animal) that is no term
 *   itself ("cock pheasant", "booby bird", "bully dog", "drug dog"); for illegal activity
 *   and harassment also a determiner and an animal right before an -ing match ("a raccoon
 *   stealing a sandwich", and animals in the plural without one: "crows harassing a hawk";
 *   "elephant poaching" and "groundhog drug addict" still count), and
 *   "<match> of <animals>", with at most two describing words before the animal that are no
 *   noun of an animal, person or thing and no term ("a gang of geese", "a gang of cheerful
 *   geese"; not after an -ing word: "poaching of elephants" counts). For a sexual match the animal must
 *   come after it and be no person in any sense ("naked chick" counts; "sex kitten" is a term
 *   of its own), and an
 *   animal before it is no gate ("horse cock").
 * - Make-believe (violence, shocking, illegal activity): a word saying the thing is not real
 *   (costume, Halloween, toy, diorama, figurine, prop, prosthetic, animatronic, cosplay,
 *   plush, LEGO, museum, exhibit, replica, mannequin, puppet...) lies in the match's phrase
 *   (no comma, full stop, semicolon or bar between), at most 4 words away, outside a
 *   negation, and the match ends in a noun whose first WordNet sense is a concrete thing
 *   (sd_wn_is_thing: "toy gun", "werewolf prosthetic", "dressed as a bank robber for
 *   Halloween"). Acts are never cleared ("school shooting toy", "a massacre museum exhibit"
 *   count).
 * - Objects (harassment): a match ending in "at" ("laugh at", "poke fun at") whose object,
 *   after a determiner if any, is a concrete thing that is no person and no animal
 *   ("laughing at a street cafe", "laughing at the camera"; "laughing at a fat kid" counts).
 * - Acts on lifeless things (any category, for the terms its `acts` list names, `act` set):
 *   a one-word match followed by its object, after a determiner ("shooting a wedding",
 *   "stabbing a marshmallow", "slaughtering a giant chocolate cake") or after "of" ("the
 *   execution of a perfect dive"), when the object's words (at most four, up to a function
 *   word or punctuation) hold no term and its last word is a noun of SD_WN_INANIMATE (first
 *   sense lifeless, no sense a person, an animal or a body part). "Shooting a man",
 *   "stabbing her chest", "the execution of the prisoners", "killing machine" (no
 *   determiner: a compound) and "shooting a gun" (a term) count.
 */
#ifndef SD_SAFETY_LEXICAL_GATE_H
#define SD_SAFETY_LEXICAL_GATE_H

#include <stdint.h>

#include "safety/lexicon.h"
#include "safety/normalize.h"
#include "safety/wordnet.h"

enum { SD_GATE_NONE = 0, SD_GATE_PLACE, SD_GATE_ANIMAL, SD_GATE_PRETEND, SD_GATE_OBJECT, SD_GATE_COMPOUND, SD_GATE_ACT };

/* Which gate, if any, drops hit h (of an English term: the callers gate no other language's) of category `cat_name` in `text` (normalised as nm).
 * `dict` may be NULL (no WordNet: the place gate only). `term_cats(ctx, word, n)` says in which
 * categories a lower-case word is a single-word term (a term never counts as an animal). */
int sd_lex_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, const char *cat_name, int act,
                const sd_wn_dict *dict, uint32_t (*term_cats)(const void *ctx, const char *w, size_t n),
                const void *ctx);

#endif
