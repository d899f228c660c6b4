/* The lexical detector's context gates (src/safety/lexical_gate.h): a match that the words
 * around it show to be part of a place's name, an animal's, a make-believe thing, the
 * object of "laughing at" that is no person, or an act on a lifeless thing. Each benign prompt below was
 * flagged before the gates; each flagged one is the look-alike the gate must leave alone.
 * Uses only the detector interface. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "safety/bank.h"
#include "safety/lexical.h"
#include "safety/wordnet.h"
#include "testutil.h"

static sd_bank *g_bank;
static sd_detector *g_det;

static int setup(void **state) {
  (void)state;
  return sd_test_default_lexical("wordnet-gate.txt", 0, &g_bank, &g_det);
}

static int teardown(void **state) {
  (void)state;
  sd_detector_free(g_det);
  sd_bank_free(g_bank);
  return 0;
}

#define BENIGN(p) sd_test_expect_fired(g_det, g_bank, (p), 0)
#define FLAGGED(p, cat) sd_test_expect_fired(g_det, g_bank, (p), sd_test_cat_bit(g_bank, (cat)))

static void test_place_names(void **state) {
  (void)state;
  BENIGN("horseshoe crabs on Slaughter Beach, Delaware at dawn, nature photography");
  BENIGN("Blood Falls in Antarctica, red iron-rich water staining the glacier, aerial photograph");
  BENIGN("sunrise over Death Valley, sand dunes, long shadows");
  BENIGN("vintage travel postcard of the harbour in Dildo, Newfoundland, fishing boats");
  BENIGN("Amish horse and buggy on a country road near Intercourse, Pennsylvania");
  /* the same words written as words, in a title-case prompt, or sexual before a feature */
  FLAGGED("a slaughter on the beach at dawn", "violence");
  FLAGGED("Blood Falls From The Ceiling Of The Haunted House", "violence");
  FLAGGED("BLOOD FALLS on the victim", "violence");
  FLAGGED("a woman at Nude Beach, photograph", "sexual");
  FLAGGED("a naked woman in Paris, France", "sexual");
  FLAGGED("intercourse in a hotel room, Pennsylvania", "sexual");
}

static void test_animals(void **state) {
  (void)state;
  if (!sd_wn_dictionary(NULL)) skip(); /* the animal gate needs WordNet's nouns */
  BENIGN("a cock pheasant strutting through an autumn stubble field, gouache");
  BENIGN("a gang of geese chasing a jogger through a park, funny cartoon style");
  BENIGN("A gang of cheerful geese waddling across a country road");
  BENIGN("a gang of wild turkeys in a suburban backyard");
  BENIGN("a raccoon stealing a sandwich from a picnic basket, funny wildlife photo");
  BENIGN("American Bully dog playing fetch in a park");
  BENIGN("a police drug dog sniffing luggage at the airport");
  BENIGN("A starving seagull eyeing a tourist's fries on a boardwalk"); /* self-harm: an animal */
  BENIGN("Crows harassing a red-tailed hawk in flight, wildlife photo");  /* plural animals */
  BENIGN("monkeys stealing sunglasses from tourists at a temple");
  /* people, animals as victims or objects, an animal before a sexual word, the words
   * WordNet also gives a person's or an adjective's sense */
  FLAGGED("a man stealing a car at night", "illegal activity");
  FLAGGED("elephant poaching in the savanna", "illegal activity");
  FLAGGED("poaching of elephants in the savanna", "illegal activity");
  FLAGGED("a gang of armed thugs with their dogs", "illegal activity");
  FLAGGED("a gang of masked robbers, geese in the background", "illegal activity");
  FLAGGED("groundhog drug addict lying on the bed", "illegal activity");
  FLAGGED("a young male thief sitting on a bench", "illegal activity");
  FLAGGED("a bully shoving a kid into a locker", "harassment");
  FLAGGED("horse cock", "sexual");
  FLAGGED("a sex kitten on a bed", "sexual");
  FLAGGED("a naked chick on a bed", "sexual");
  FLAGGED("a naked redhead on a bed", "sexual");
  FLAGGED("body paint human form, nude", "sexual");
  FLAGGED("a starving man on a park bench", "self-harm");
  FLAGGED("bullies harassing a kid in the hallway", "harassment");
  FLAGGED("poachers stealing ivory in the savanna", "illegal activity");
  FLAGGED("a lonely wolf howling at the moon", "self-harm"); /* "wolf": a man, in a sense */
}

static void test_make_believe(void **state) {
  (void)state;
  if (!sd_wn_dictionary(NULL)) skip(); /* the gate needs WordNet's nouns */
  BENIGN("a man holding a toy gun, studio photo");
  BENIGN("special effects makeup artist sculpting a silicone werewolf prosthetic, workshop");
  BENIGN("a toddler dressed as a bank robber for Halloween, adorable");
  BENIGN("a group of friends in zombie costumes at a party, face paint");
  /* acts are not things; the cue must be in the match's phrase and within reach; negated */
  FLAGGED("school shooting toy", "violence");
  FLAGGED("a massacre museum exhibit", "violence");
  FLAGGED("a bloody corpse, halloween", "shocking");
  FLAGGED("a zombie eating a man alive, a scene with no costume", "shocking");
  FLAGGED("a zombie eating a man alive in the street at night, later a costume", "shocking");
}

static void test_compound_names(void **state) {
  (void)state;
  if (!sd_wn_dictionary(NULL)) skip(); /* the gate needs WordNet's compound nouns */
  /* each flagged without the gate */
  BENIGN("a death adder coiled on red sand, wildlife photo");
  BENIGN("blood sausage and mashed potatoes on a wooden board, food photography");
  BENIGN("a nude mouse in a research lab cage");
  BENIGN("a dagger fern in a shady garden");
  BENIGN("a spider orchid in a meadow");
  BENIGN("a horny frog basking on a rock");
  BENIGN("robber flies perched on a twig, macro photography");
  /* the term as the compound's last word (a kind of it), apart from the compound's other word,
   * across a comma, or a slur inside a plant's old name */
  FLAGGED("a giant cockroach crawling on a kitchen counter", "shocking");
  FLAGGED("blood on the sausage, a crime scene", "violence");
  FLAGGED("a death, cap on the floor", "shocking");
  FLAGGED("a field of kaffir corn", "hate");
}

static void test_objects(void **state) {
  (void)state;
  if (!sd_wn_dictionary(NULL)) skip();
  BENIGN("a woman in a hijab laughing at a street cafe in Istanbul");
  BENIGN("friends laughing at the camera, candid photo");
  FLAGGED("kids laughing at a fat kid", "harassment");
  FLAGGED("people laughing at a homeless man", "harassment");
  FLAGGED("laughing at his stutter", "harassment");
  /* the head of the object decides: "computer" is also a person, "table" first a table of data */
  BENIGN("a boy laughing at a computer screen, digital painting");
  BENIGN("a woman laughing at a sidewalk cafe table");
  FLAGGED("laughing at a computer nerd", "harassment");
  FLAGGED("laughing at a disabled child's wheelchair", "harassment");
  FLAGGED("classmates poking fun at a girl", "harassment");
}

/* The bank's `acts` on a lifeless object (after a determiner, or after "of"); a person, an
 * animal, a body part, a building or vehicle, a term in the object, or no determiner (a
 * compound) keep the match. */
static void test_acts_on_things(void **state) {
  (void)state;
  if (!sd_wn_dictionary(NULL)) skip();
  BENIGN("a photographer shooting a wedding in a vineyard, golden hour");
  BENIGN("kids slaughtering a giant chocolate cake at a birthday party");
  BENIGN("stabbing a marshmallow with a stick over a campfire");
  BENIGN("the execution of the plan was flawless");
  BENIGN("the execution of a difficult ballet move on stage");
  BENIGN("firefighters fighting a fire in a warehouse");
  BENIGN("a conductor punching a ticket on a vintage train");
  FLAGGED("a man shooting a woman in the street", "violence");
  FLAGGED("the execution of the prisoners at dawn", "violence");
  FLAGGED("the killing of innocents, war photo", "violence");
  FLAGGED("a man stabbing her chest", "violence");          /* a body part */
  FLAGGED("slaughtering the cattle in a barn", "violence");  /* animals */
  FLAGGED("a man shooting a school bus", "violence");        /* a vehicle, where people are */
  FLAGGED("a man shooting the mosque", "violence");          /* a building */
  FLAGGED("a killing machine robot", "violence");            /* no determiner: a compound */
  FLAGGED("an execution chamber in a prison", "violence");
  FLAGGED("shooting a gun at a crowd", "violence");          /* a term in the object */
  FLAGGED("shooting a loaded gun", "violence");
  FLAGGED("a man murdering a cake", "violence");             /* not one of the bank's acts */
  FLAGGED("stabbing a very big fat old chocolate cake man", "violence"); /* the object runs on */
}

/* A bank's `acts` must name terms of the category: a typo is refused with the section named. */
static void test_acts_must_be_terms(void **state) {
  (void)state;
  sd_bank *b = NULL;
  sd_detector *d = NULL;
  assert_int_equal(sd_test_text_lexical("[v]\nterms = shoot, stab\nacts = shoot, =stab\n", &b, &d), SD_OK);
  sd_detector_free(d);
  sd_bank_free(b);
  d = NULL;
  int rc = sd_test_text_lexical("[v]\nterms = shoot\nacts = shot\n", &b, &d);
  if (rc != SD_E_FORMAT || !strstr(sd_errmsg(), "[v]") || !strstr(sd_errmsg(), "acts: 'shot'"))
    fail_msg("rc %d, \"%s\"", rc, sd_errmsg());
  assert_null(d);
  sd_bank_free(b);
}

/* WordNet's animals: first senses, unranked senses without a person's, no everyday adjectives
 * ("fly", "tabby": rare adjectives, animals), irregular plurals. */
static void test_animal_nouns(void **state) {
  (void)state;
  const sd_wn_dict *d = sd_wn_dictionary(NULL);
  if (!d) skip();
  const char *yes[] = {"pheasant", "raccoon", "dog", "geese", "foxes", "puppies", "cats", "fly", "beetles", "tabby"};
  const char *no[] = {"redhead", "male", "young", "human", "giant", "woman", "table"};
  for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
    if (!sd_wn_is_animal(d, yes[i], strlen(yes[i]), 0)) fail_msg("%s: want an animal", yes[i]);
  for (size_t i = 0; i < sizeof no / sizeof *no; i++)
    if (sd_wn_is_animal(d, no[i], strlen(no[i]), 0)) fail_msg("%s: want no animal", no[i]);
  assert_false(sd_wn_is_animal(d, "dog", 3, 1)); /* a cad, in a sense */
  assert_false(sd_wn_is_animal(d, "chick", 5, 1));
  assert_true(sd_wn_is_animal(d, "pheasant", 8, 1));
  const char *things[] = {"sword", "skull", "robber", "gun", "zombies"}, *acts[] = {"shooting", "massacre", "murder"};
  assert_true(sd_wn_is_person(d, "robber", 6));
  assert_false(sd_wn_is_person(d, "camera", 6));
  for (size_t i = 0; i < sizeof things / sizeof *things; i++)
    if (!sd_wn_is_thing(d, things[i], strlen(things[i]))) fail_msg("%s: want a thing", things[i]);
  for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
    if (sd_wn_is_thing(d, acts[i], strlen(acts[i]))) fail_msg("%s: want no thing", acts[i]);
  /* compound names of animals, plants and foods; not a drug, a weapon, a person or a Latin
   * binomial whose last word is no noun of its own */
  const char *comp[] = {"robber fly", "robber flies", "killer whale", "death cap", "blood sausage", "naked mole rat"};
  const char *notcomp[] = {"crack cocaine", "machine gun", "serial killer", "cannabis sativa", "robber", "death"};
  for (size_t i = 0; i < sizeof comp / sizeof *comp; i++)
    if (!sd_wn_is_compound(d, comp[i], strlen(comp[i]))) fail_msg("%s: want a compound", comp[i]);
  for (size_t i = 0; i < sizeof notcomp / sizeof *notcomp; i++)
    if (sd_wn_is_compound(d, notcomp[i], strlen(notcomp[i]))) fail_msg("%s: want no compound", notcomp[i]);
  /* lifeless things: first sense lifeless, no person, animal or body part, no building or
   * vehicle first */
  const char *still[] = {"cake", "plan", "wedding", "lanterns", "film", "marshmallow", "ticket"};
  const char *alive[] = {"chest", "hand", "crowd", "city", "cattle", "mosque", "bus", "house", "woman", "dog"};
  for (size_t i = 0; i < sizeof still / sizeof *still; i++)
    if (!sd_wn_is_inanimate(d, still[i], strlen(still[i]))) fail_msg("%s: want a lifeless thing", still[i]);
  for (size_t i = 0; i < sizeof alive / sizeof *alive; i++)
    if (sd_wn_is_inanimate(d, alive[i], strlen(alive[i]))) fail_msg("%s: want no lifeless thing", alive[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_place_names), cmocka_unit_test(test_animals),
                                     cmocka_unit_test(test_make_believe), cmocka_unit_test(test_compound_names),
                                     cmocka_unit_test(test_objects), cmocka_unit_test(test_acts_on_things),
                                     cmocka_unit_test(test_acts_must_be_terms),
                                     cmocka_unit_test(test_animal_nouns)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
