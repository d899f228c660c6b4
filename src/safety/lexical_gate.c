/* Context gates of the lexical detector: place names, compound names of living things, animals,
 * make-believe, objects. See lexical_gate.h. */
#include "safety/lexical_gate.h"

#include <string.h>

#include "safety/funcwords.h"

/* The piece's letters as lower-case ASCII (folded code points), or 0 when it is no word of
 * ASCII letters (or too long for buf). */
static size_t word_at(const sd_norm *nm, int p, char *buf, size_t cap) {
  if (p < 0 || p >= nm->np || nm->ps[p].kind != SD_PIECE_WORD) return 0;
  const sd_piece *ps = &nm->ps[p];
  size_t n = 0;
  for (int i = ps->a; i < ps->b; i++) {
    int32_t c = nm->v[i].cp;
    if (c < 'a' || c > 'z' || n + 1 >= cap) return 0;
    buf[n++] = (char)c;
  }
  buf[n] = 0;
  return n;
}

static int is_one_of(const char *w, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (!strcmp(w, list[i])) return 1;
  return 0;
}

/* Capitalised as written: the first letter upper-case, the others lower-case. */
static int titled(const sd_norm *nm, int p) {
  if (p < 0 || p >= nm->np || nm->ps[p].kind != SD_PIECE_WORD) return 0;
  const sd_piece *ps = &nm->ps[p];
  if (!nm->v[ps->a].upper) return 0;
  for (int i = ps->a + 1; i < ps->b; i++)
    if (nm->v[i].upper) return 0;
  return 1;
}

/* Pieces p-1 and p are separated by whitespace only (spaces), or by one comma and spaces. */
static int sep_is(const sd_norm *nm, const char *text, int p, int comma) {
  if (p <= 0 || p >= nm->np) return 0;
  size_t s = nm->v[nm->ps[p - 1].b - 1].s1, e = nm->v[nm->ps[p].a].s0;
  int commas = 0, spaces = 0;
  for (size_t i = s; i < e; i++) {
    if (text[i] == ',') commas++;
    else if (text[i] == ' ' || text[i] == '\t') spaces++;
    else return 0;
  }
  return comma ? commas == 1 : commas == 0 && spaces > 0;
}

static const char *const GEO_AFTER[] = {
    "beach",   "beaches", "falls",  "bay",     "island",  "islands",  "isle",   "lake",   "lakes",
    "river",   "creek",   "brook",  "valley",  "canyon",  "gorge",    "mountain", "mountains", "hill",
    "hills",   "peak",    "point",  "cape",    "cove",    "harbour",  "harbor", "springs", "road",
    "street",  "avenue",  "lane",   "county",  "pass",    "ridge",    "bluff",  "glacier", "desert",
    "forest",  "woods",   "swamp",  "marsh",   "pond",    "reservoir", "gulch", "hollow", "sound",
    "inlet",   "lagoon",  "strait", "fjord",   "heights", "crossing", "junction", "township", "parish",
    "village", "borough", NULL};
static const char *const GEO_BEFORE[] = {"mount", "lake", "port", "fort", "cape", "saint", "st", "isle", NULL};
static const char *const PLACE_PREP[] = {"in", "near", "at", "from", "to", "outside", "around", "visiting", NULL};
static const char *const DETERMINERS[] = {"a",    "an",   "the",  "two",   "three", "some", "many", "this",
                                          "that", "my",   "his",  "her",   "their", "our",  "your", "every",
                                          "each", "these", "those", "several", NULL};

/* The prompt is prose: fewer than half of its other words of two letters or more are
 * capitalised (a title-case or all-capitals prompt shows nothing by its capitals). */
static int prose(const sd_norm *nm, int p0, int p1) {
  int words = 0, caps = 0;
  for (int p = 0; p < nm->np; p++) {
    if (p >= p0 - 1 && p <= p1) continue;
    const sd_piece *ps = &nm->ps[p];
    if (ps->kind != SD_PIECE_WORD || ps->b - ps->a < 2) continue;
    words++;
    caps += nm->v[ps->a].upper != 0;
  }
  return 2 * caps < words;
}

/* `features`: the geographic-feature forms ("Blood Falls", "Mount Doom") count too; the
 * sexual category takes only the "in Dildo, Newfoundland" form, since the encoder reads no
 * capitals and "Nude Beach" would otherwise clear a nude beach. */
static int place_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, int features) {
  char w[32];
  for (int p = h->p0; p < h->p1; p++)
    if (!titled(nm, p)) return 0;
  if (!prose(nm, h->p0, h->p1)) return 0;
  if (features && h->p1 < nm->np && titled(nm, h->p1) && sep_is(nm, text, h->p1, 0) && word_at(nm, h->p1, w, sizeof w) &&
      is_one_of(w, GEO_AFTER))
    return 1;
  if (features && h->p0 > 0 && titled(nm, h->p0 - 1) && sep_is(nm, text, h->p0, 0) && word_at(nm, h->p0 - 1, w, sizeof w) &&
      is_one_of(w, GEO_BEFORE))
    return 1;
  return h->p0 > 0 && h->p1 < nm->np && sep_is(nm, text, h->p0, 0) && word_at(nm, h->p0 - 1, w, sizeof w) &&
         is_one_of(w, PLACE_PREP) && sep_is(nm, text, h->p1, 1) && titled(nm, h->p1);
}

/* Piece p names an animal (`strict`: and no person) and is no term of any category. */
static int animal_at(const sd_norm *nm, int p, const sd_wn_dict *dict, int strict,
                     uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx) {
  char w[64];
  size_t n = word_at(nm, p, w, sizeof w);
  return n && sd_wn_is_animal(dict, w, n, strict) && !term_cats(ctx, w, n);
}

static int animal_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, int agent, const sd_wn_dict *dict,
                       uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx) {
  char last[64], w[32];
  size_t nl = word_at(nm, h->p1 - 1, last, sizeof last);
  int ing = nl > 4 && !strcmp(last + nl - 3, "ing");
  /* the match names a kind of animal: "cock pheasant", "bully dog" */
  if (h->p1 < nm->np && nm->ps[h->p1].gap <= 2 && (nm->ps[h->p1].gap == 1 || sep_is(nm, text, h->p1, 0)) &&
      animal_at(nm, h->p1, dict, !agent, term_cats, ctx))
    return 1;
  if (!agent) return 0;
  /* an animal does it: "a raccoon stealing" (not "elephant poaching", nor a noun: "groundhog
   * drug addict" is still a drug addict) */
  if (ing && h->p0 > 1 && sep_is(nm, text, h->p0, 0) && animal_at(nm, h->p0 - 1, dict, 0, term_cats, ctx) &&
      sep_is(nm, text, h->p0 - 1, 0) && word_at(nm, h->p0 - 2, w, sizeof w) && is_one_of(w, DETERMINERS))
    return 1;
  /* animals in the plural do it, no determiner needed ("crows harassing a hawk", "monkeys
   * stealing sunglasses"): a compound takes the singular ("elephant poaching") */
  char pl[64];
  size_t np = ing && h->p0 > 0 && sep_is(nm, text, h->p0, 0) ? word_at(nm, h->p0 - 1, pl, sizeof pl) : 0;
  if (np > 3 && pl[np - 1] == 's' && !sd_wn_dict_has(dict, SD_WN_ANIMALS, pl) &&
      animal_at(nm, h->p0 - 1, dict, 0, term_cats, ctx))
    return 1;
  /* "a gang of geese", "a gang of cheerful geese": after "of", at most two describing words
   * (no animal, person or thing of WordNet's nouns, no term) before the animal */
  if (ing || h->p1 + 1 >= nm->np || !sep_is(nm, text, h->p1, 0) || !word_at(nm, h->p1, w, sizeof w) || strcmp(w, "of"))
    return 0;
  for (int p = h->p1 + 1; p <= h->p1 + 3 && p < nm->np && sep_is(nm, text, p, 0); p++) {
    if (animal_at(nm, p, dict, 0, term_cats, ctx)) return 1;
    char d[64];
    size_t n = word_at(nm, p, d, sizeof d);
    if (!n || sd_wn_is_person(dict, d, n) || sd_wn_is_thing(dict, d, n) || term_cats(ctx, d, n)) return 0;
  }
  return 0;
}

/* Words that say the scene is make-believe: a costume, a toy, a prop, an exhibit. */
static const char *const PRETEND[] = {
    "costume",  "costumes",   "costumed",  "halloween", "toy",       "toys",        "diorama",   "dioramas",
    "figurine", "figurines",  "prop",      "props",     "prosthetic", "prosthetics", "animatronic", "animatronics",
    "cosplay",  "cosplayer",  "cosplayers", "plush",    "plushie",   "lego",        "museum",    "exhibit",
    "exhibition", "replica",  "replicas",  "mannequin", "puppet",    "puppets",     "playmobil", "nerf",
    NULL};

/* A phrase boundary (a comma, full stop, semicolon, bar or line break) lies between pieces
 * p-1 and p. */
static int boundary(const sd_norm *nm, const char *text, int p) {
  size_t s = nm->v[nm->ps[p - 1].b - 1].s1, e = nm->v[nm->ps[p].a].s0;
  for (size_t i = s; i < e; i++)
    if (strchr(",.;|\n", text[i])) return 1;
  return 0;
}

#define PRETEND_REACH 4 /* words between the match and the cue, at most */

/* One of PRETEND, outside a negation's scope, lies in the match's phrase within
 * PRETEND_REACH words of it: "toy soldiers", "a werewolf prosthetic", "a sword in a museum
 * case" (not "a massacre, museum"). */
static int pretend(const sd_norm *nm, const char *text, const sd_lex_hit *h) {
  char w[32];
  for (int dir = -1; dir <= 1; dir += 2)
    for (int k = 1; k <= PRETEND_REACH + 1; k++) {
      int p = dir < 0 ? h->p0 - k : h->p1 - 1 + k;
      if (p < 0 || p >= nm->np || boundary(nm, text, dir < 0 ? p + 1 : p)) break;
      if (!nm->ps[p].neg && word_at(nm, p, w, sizeof w) && is_one_of(w, PRETEND)) return 1;
    }
  return 0;
}

#define OBJECT_WORDS 4 /* words of an object after its determiner, at most */

/* The object phrase starting at piece p: at most OBJECT_WORDS words joined by spaces, up to a
 * function word, a punctuation mark or the end. Returns the piece of its last word (the head),
 * or -1 when there is none, one of its words is a term of any category, or the phrase goes on
 * past OBJECT_WORDS words (its head unknown). `thing`, when not NULL: whether one of its words
 * is a concrete thing (SD_WN_THINGS). */
static int object_head(const sd_norm *nm, const char *text, int p, const sd_wn_dict *dict,
                       uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx, int *thing) {
  char w[64];
  int head = -1, k = 0;
  for (; k < OBJECT_WORDS && p < nm->np && (head < 0 || sep_is(nm, text, p, 0)); k++, p++) {
    size_t n = word_at(nm, p, w, sizeof w);
    if (!n || sd_en_function_word(w, n)) break;
    if (term_cats(ctx, w, n)) return -1;
    if (thing) *thing |= sd_wn_is_thing(dict, w, n);
    head = p;
  }
  if (k == OBJECT_WORDS && p < nm->np && sep_is(nm, text, p, 0) && word_at(nm, p, w, sizeof w) &&
      !sd_en_function_word(w, strlen(w)))
    return -1;
  return head;
}

/* "laughing at the camera": a match ending in "at" whose object (after a determiner, if any)
 * is a concrete thing: a place or an object is not the target of harassment ("laughing at a
 * street cafe", "laughing at a computer screen"; "laughing at a fat kid", "at a man", "at his
 * stutter", "at a disabled child's wheelchair" count). The object is read by object_head (a
 * punctuation mark ends it, an apostrophe too); none of its words is a term, one of them is a
 * concrete thing,
 * and its last word, the head, is no person and no animal in any sense: the head decides
 * ("a computer" is also a person who computes, "a computer screen" is a screen; "a sidewalk
 * cafe table" is a table, whose first sense is a table of data). */
static int object_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, const sd_wn_dict *dict,
                       uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx) {
  char w[64];
  if (word_at(nm, h->p1 - 1, w, sizeof w) != 2 || strcmp(w, "at")) return 0;
  int p = h->p1;
  if (p < nm->np && sep_is(nm, text, p, 0) && word_at(nm, p, w, sizeof w) && is_one_of(w, DETERMINERS)) p++;
  if (p >= nm->np || !sep_is(nm, text, p, 0)) return 0;
  int thing = 0, head = object_head(nm, text, p, dict, term_cats, ctx, &thing);
  size_t n = head < 0 ? 0 : word_at(nm, head, w, sizeof w);
  return n && thing && !sd_wn_is_person(dict, w, n) && !sd_wn_is_animal(dict, w, n, 0);
}

/* The match's last word begins a compound noun of SD_WN_COMPOUNDS with the one or two words
 * after it (spaces between, nothing else): an animal, plant or food named by a modifier that
 * only looks like the term ("robber fly", "killer whale", "death cap", "blood sausage",
 * "naked mole rat", "spider monkeys"). A match that is the compound's last word is kept: a
 * "stick insect" is an insect, a "giant cockroach" a cockroach. */
static int compound_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, const sd_wn_dict *dict) {
  char buf[96];
  size_t n = word_at(nm, h->p1 - 1, buf, sizeof buf);
  for (int k = 0; n && k < 2 && h->p1 + k < nm->np && sep_is(nm, text, h->p1 + k, 0); k++) {
    buf[n++] = ' ';
    size_t m = word_at(nm, h->p1 + k, buf + n, sizeof buf - n);
    if (!m) break;
    n += m;
    if (sd_wn_is_compound(dict, buf, n)) return 1;
  }
  return 0;
}

/* "a photographer shooting a wedding", "kids slaughtering a giant chocolate cake", "the
 * execution of a perfect dive": a one-word match of the category's `acts` whose object is a
 * lifeless thing. The object follows the match after a determiner ("shooting a wedding"), or
 * after "of" with or without one ("the execution of the plan", "the killing of innocents");
 * it is read by object_head (none of its words a term of any category), and its last word (the
 * head noun) is in SD_WN_INANIMATE: no person, animal or body part in any sense ("shooting a
 * man", "stabbing her chest", "slaughtering the cattle" count). Without a determiner or
 * "of" the next word may make a compound ("execution chamber", "killing machine"): no gate. */
static int act_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, const sd_wn_dict *dict,
                    uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx) {
  char w[64];
  int p = h->p1;
  if (h->p1 != h->p0 + 1 || !sep_is(nm, text, p, 0) || !word_at(nm, p, w, sizeof w)) return 0;
  int of = !strcmp(w, "of");
  if (of && (!sep_is(nm, text, ++p, 0) || !word_at(nm, p, w, sizeof w))) return 0;
  if (is_one_of(w, DETERMINERS)) {
    if (!sep_is(nm, text, ++p, 0)) return 0;
  } else if (!of) {
    return 0;
  }
  int head = object_head(nm, text, p, dict, term_cats, ctx, NULL);
  size_t n = head < 0 ? 0 : word_at(nm, head, w, sizeof w);
  return n && sd_wn_is_inanimate(dict, w, n);
}

int sd_lex_gate(const sd_norm *nm, const char *text, const sd_lex_hit *h, const char *cat_name, int act,
                const sd_wn_dict *dict, uint32_t (*term_cats)(const void *, const char *, size_t), const void *ctx) {
  if (h->p0 < 0 || h->p1 <= h->p0 || h->p1 > nm->np) return SD_GATE_NONE;
  for (int p = h->p0; p < h->p1; p++)
    if (nm->ps[p].kind != SD_PIECE_WORD) return SD_GATE_NONE; /* emoji, CJK */
  int sexual = cat_name && !strcmp(cat_name, "sexual");
  if (place_gate(nm, text, h, !sexual)) return SD_GATE_PLACE;
  if (!dict || !cat_name) return SD_GATE_NONE;
  /* not hate: a slur stays one inside an old name of a plant ("kaffir corn") */
  if (strcmp(cat_name, "hate") && compound_gate(nm, text, h, dict)) return SD_GATE_COMPOUND;
  int agent = !strcmp(cat_name, "illegal activity") || !strcmp(cat_name, "harassment");
  /* self-harm: a self-harm word describing an animal ("a starving seagull", "a lonely
   * wolf") is no person harming themselves */
  int selfharm = !strcmp(cat_name, "self-harm");
  if ((sexual || agent || selfharm) && animal_gate(nm, text, h, agent, dict, term_cats, ctx)) return SD_GATE_ANIMAL;
  if (!strcmp(cat_name, "harassment") && object_gate(nm, text, h, dict, term_cats, ctx)) return SD_GATE_OBJECT;
  if (act && act_gate(nm, text, h, dict, term_cats, ctx)) return SD_GATE_ACT;
  char head[64];
  size_t nh = word_at(nm, h->p1 - 1, head, sizeof head);
  if ((!strcmp(cat_name, "violence") || !strcmp(cat_name, "shocking") || !strcmp(cat_name, "illegal activity")) &&
      nh && sd_wn_is_thing(dict, head, nh) && pretend(nm, text, h))
    return SD_GATE_PRETEND;
  return SD_GATE_NONE;
}
