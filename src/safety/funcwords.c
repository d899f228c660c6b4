/* English function words (funcwords.h). */
#include "safety/funcwords.h"

#include <string.h>

static const char *const words[] = {
    /* articles, determiners, quantifiers */
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all", "both", "either",
    "neither", "no", "many", "much", "more", "most", "few", "less", "least", "such", "what", "which", "whose",
    /* pronouns */
    "i", "me", "my", "mine", "myself", "you", "your", "yours", "yourself", "he", "him", "his", "himself", "she",
    "her", "hers", "herself", "it", "its", "itself", "we", "us", "our", "ours", "they", "them", "their", "theirs",
    "themselves", "who", "whom", "one",
    /* prepositions */
    "of", "in", "on", "at", "to", "for", "with", "by", "from", "after", "before", "during", "into", "onto", "over",
    "under", "about", "as", "above", "below", "across", "along", "among", "around", "behind", "beneath", "beside",
    "between", "beyond", "down", "inside", "near", "off", "out", "outside", "past", "since", "through", "till",
    "toward", "towards", "until", "up", "upon", "via", "within", "without",
    /* conjunctions */
    "and", "or", "but", "nor", "so", "yet", "if", "because", "although", "though", "unless", "while", "when",
    "where", "whether", "than", "then",
    /* auxiliaries */
    "is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did", "have", "has", "had", "will",
    "would", "shall", "should", "can", "could", "may", "might", "must",
    /* adverbs */
    "not", "very", "too", "also", "just", "only", "here", "there", "now", "ever", "never", "again", "still",
    "even", NULL};

/* The commonest function words of the other Latin-script bank languages (es, fr, de, it, pt):
 * articles, pronouns, prepositions, conjunctions, auxiliaries. */
static const char *const other[] = {
    /* es */
    "el", "la", "los", "las", "lo", "un", "una", "unos", "unas", "y", "o", "u", "de", "del", "al", "en", "con",
    "por", "para", "sin", "sobre", "entre", "que", "se", "su", "sus", "mi", "mis", "tu", "tus", "te", "le", "les",
    "nos", "os", "es", "son", "era", "fue", "muy", "mas", "como", "pero", "si", "ya", "yo", "ella", "ellos",
    /* fr */
    "le", "les", "un", "une", "des", "du", "au", "aux", "et", "ou", "en", "dans", "sur", "sous", "avec", "sans",
    "pour", "par", "ce", "cet", "cette", "ces", "mon", "ma", "mes", "ton", "ta", "tes", "son", "sa", "ses", "je",
    "il", "elle", "on", "ils", "elles", "nous", "vous", "qui", "que", "est", "sont", "ne", "pas", "se", "si",
    /* de */
    "der", "die", "das", "den", "dem", "des", "ein", "eine", "einen", "einem", "einer", "und", "oder", "mit",
    "von", "zu", "zum", "zur", "im", "am", "auf", "aus", "bei", "nach", "vor", "ist", "sind", "ich", "du", "er",
    "sie", "es", "wir", "ihr", "mein", "dein", "sein",
    /* it */
    "il", "lo", "la", "gli", "le", "un", "uno", "una", "di", "da", "in", "con", "su", "per", "tra", "fra", "del",
    "della", "dei", "nel", "nella", "al", "alla", "e", "ed", "che", "non", "mi", "ti", "ci", "si", "io", "lui",
    "lei", "noi", "voi", "sono", "ha", "ho",
    /* pt */
    "o", "os", "a", "as", "um", "uma", "uns", "umas", "do", "da", "dos", "das", "no", "na", "nos", "nas", "em",
    "ao", "aos", "pelo", "pela", "com", "sem", "que", "se", "seu", "sua", "meu", "minha", "ele", "ela", "eu",
    "voce", "foi", "muito", NULL};

/* Dutch, Swedish, Polish, Turkish and Indonesian (ASCII ones; a word that is also everyday
 * English, such as "men" or "door", is left out by the caller's test). */
static const char *const more[] = {
    /* nl */
    "het", "een", "op", "bij", "naar", "uit", "voor", "zijn", "niet", "ook", "maar", "wordt", "onder", "tegen",
    "deze", "wat", "nog", "heel", "mijn", "hun", "aan", "tot", "zonder", "tussen", "worden", "heeft",
    /* sv */
    "och", "att", "det", "som", "ett", "med", "av", "till", "inte", "jag", "hon", "vi", "ni", "vid", "efter",
    "utan", "mycket", "eller", "hos", "mot", "denna", "detta",
    /* pl */
    "w", "z", "na", "do", "nie", "jest", "od", "po", "przy", "dla", "bez", "jak", "ale", "oraz", "pod", "nad",
    "przez", "ze", "we", "sie",
    /* tr */
    "ve", "bir", "bu", "ile", "icin", "gibi", "olan", "cok", "daha", "ki", "ama", "veya", "ya",
    /* id */
    "yang", "dan", "di", "ke", "dari", "dengan", "untuk", "pada", "ini", "itu", "dalam", "atau", "tidak", "ada",
    "akan", "oleh", "sebuah", "seorang", "para", "sang", "atas", "bersama", "tanpa", NULL};

int sd_foreign_function_word(const char *w, size_t n) {
  if (sd_other_function_word(w, n)) return 1;
  if (n < 1 || n > 10) return 0;
  for (int i = 0; more[i]; i++)
    if (more[i][0] == w[0] && strlen(more[i]) == n && !memcmp(more[i], w, n)) return 1;
  return 0;
}

int sd_other_function_word(const char *w, size_t n) {
  if (n < 1 || n > 10) return 0;
  for (int i = 0; other[i]; i++)
    if (other[i][0] == w[0] && strlen(other[i]) == n && !memcmp(other[i], w, n)) return 1;
  return 0;
}

int sd_function_word(const char *w, size_t n) { return sd_en_function_word(w, n) || sd_other_function_word(w, n); }

int sd_en_function_word(const char *w, size_t n) {
  if (n < 1 || n > 10) return 0;
  for (int i = 0; words[i]; i++)
    if (words[i][0] == w[0] && strlen(words[i]) == n && !memcmp(words[i], w, n)) return 1;
  return 0;
}
