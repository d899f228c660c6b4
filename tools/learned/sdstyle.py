"""Ordinary Stable Diffusion prompts for the learned detector's benign training data, and the
SD-style context pools the unsafe prompts are wrapped in (tools/learned/corpus.py).

The learned detector's false positives on ordinary prompts are word associations: a word that
the corpus only ever showed next to unsafe concepts ("suit", "apple", "handsome") carries
their weight. The cure is to show the detector what people actually type, from the same
context pools on both sides, so that context words are neutral and only the concept words
decide: portraits (with the adjectives and clothes SD users write), fashion, food and fruit,
animals, landscapes, architecture, vehicles, fantasy and sci-fi, anime/booru tags, product
shots, photography and camera terms, artist and quality tags, AUTOMATIC1111 syntax (weights,
alternation, scheduling, BREAK, LoRA tags) and short prompts in other languages.

Everything here was written by hand for safesd from general knowledge of how SD prompts look;
no prompt collection was copied, and none of the project's test sets
(data/prompts/sd_ordinary.txt, data/prompts/learned/, I2P) was read to write it. Nothing in
these pools is unsafe: no nudity or swimwear, no weapon, no drug, no injury. The genres added
in the seventeenth session (pets and toys wearing things: ANIMAL_WEAR; sport and dance clothes
and poses) were chosen after reading the development sets' learned false positives ("a Shiba
Inu wearing a tiny yellow raincoat", "a woman doing yoga"), not those of a test set; so were
the children and families of the eighteenth session (KIDS, KID_ACTS: tools/lexical/
dev9_minors_benign.txt).
"""


def _pool(s):
    return [x.strip() for x in s.replace("\n", "|").split("|") if x.strip()]


PEOPLE_ADJ = _pool("""beautiful|handsome|pretty|gorgeous|cute|attractive|stunning|elegant|young|old|elderly
|smiling|tall|slim|muscular|freckled|bearded|red-haired|blonde|brunette|dark-haired|silver-haired|tanned
|charming|graceful|athletic|lovely|cheerful|shy|confident|serious|thoughtful|happy|wise|dreamy|stylish
|middle-aged|chubby|strong|fit|petite|curvy|rugged|gentle|kind|mysterious|noble|proud|sleepy""")
PEOPLE = _pool("""woman|man|girl|boy|lady|gentleman|bride|groom|model|fashion model|actress|actor|dancer|singer
|grandmother|grandfather|mother|father|teenager|toddler|baby|student|princess|prince|queen|king
|nurse|doctor|chef|farmer|sailor|pilot|firefighter|cowgirl|cowboy|geisha|monk|nun|witch|wizard|elf
|fairy|mermaid|astronaut|scientist|explorer|detective|librarian|barista|gardener|fisherman|blacksmith
|knight|samurai|viking|pirate captain|couple|family|twins|businessman|businesswoman|artist|painter
|musician|guitarist|violinist|photographer|architect|teacher|mechanic|baker|florist|shepherd|tailor
|skateboarder|surfer|runner|cyclist|hiker|climber|jazz singer|ballerina|figure skater|tennis player
|soccer player|gamer|programmer|writer|poet|traveler|nomad|priestess|sorceress|paladin|ranger|bard
|android|cyborg|robot|office worker|waitress|waiter|street vendor|old couple|schoolgirl|schoolboy""")
ORIGINS = _pool("""african|asian|japanese|korean|chinese|indian|mexican|nigerian|scandinavian|irish|italian
|arab|latina|french|russian|brazilian|ethiopian|vietnamese|thai|greek|spanish|moroccan|peruvian
|mongolian|inuit|polish|egyptian|filipino|turkish|persian|maori|scottish|german|kenyan|cuban""")
LOOKS = _pool("""long blonde hair|short black hair|curly red hair|silver hair|pink hair|blue hair|braided hair
|a ponytail|a messy bun|wavy brown hair|a pixie cut|dreadlocks|an afro|a shaved head|bangs|twin braids
|blue eyes|green eyes|hazel eyes|amber eyes|heterochromia|freckles|round glasses|a monocle|earrings
|a pearl necklace|a flower crown|a nose ring|a warm smile|rosy cheeks|a thick beard|a mustache
|a scar on his eyebrow|tattoos on her arms|a beauty mark|sun-kissed skin|laugh lines|a gap-toothed grin""")
# the possessive an age phrase takes ("in her thirties"); adults only
PRONOUN = {**{w: "her" for w in "woman lady bride actress grandmother mother queen businesswoman nurse".split()},
           **{w: "his" for w in "man gentleman groom actor grandfather father king businessman fisherman".split()}}
DECADES = "twenties thirties forties fifties sixties seventies eighties".split()


def _plural_exceptions():
    """WordNet's irregular noun plurals ({lemma: plural}), where the system has WordNet."""
    out = {}
    try:
        with open("/usr/share/wordnet/noun.exc", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] not in out:
                    out[parts[1]] = parts[0]
    except OSError:
        pass
    return out


_PLURAL_EXC = None


def plural(noun):
    """The plural of an English noun phrase's last word: WordNet's irregular forms, else the
    spelling rules (-s, -es after s/x/z/ch/sh, consonant + y -> -ies)."""
    global _PLURAL_EXC
    if _PLURAL_EXC is None:
        _PLURAL_EXC = _plural_exceptions()
    head, _, w = noun.rpartition(" ")
    if w in _PLURAL_EXC:
        p = _PLURAL_EXC[w]
    elif w.endswith(("s", "x", "z", "ch", "sh")):
        p = w + "es"
    elif len(w) > 1 and w.endswith("y") and w[-2] not in "aeiou":
        p = w[:-1] + "ies"
    else:
        p = w + "s"
    return f"{head} {p}" if head else p


CLOTHES = _pool("""a navy suit|a three-piece suit|a tuxedo|a grey business suit|a linen suit|a red dress
|an evening gown|a summer dress|a floral sundress|a wedding dress|a kimono|a hanbok|a silk sari|a qipao
|a leather jacket|a denim jacket|a hoodie|a wool sweater|a turtleneck|a trench coat|a raincoat
|an overcoat|a cardigan|a white t-shirt|a silk blouse|jeans|a pleated skirt|a school uniform
|a sailor uniform|a maid outfit|plate armor|a hooded cloak|wizard robes|a scarf|a beanie|a fedora
|a top hat|a straw hat|a baseball cap|sneakers|leather boots|a velvet dress|a lace collar|an apron
|a lab coat|blue scrubs|overalls|pajamas|a tracksuit|a puffer jacket|a bomber jacket|a tweed jacket
|a pinstripe suit|a bow tie|a tie and waistcoat|a ball gown|a tiara|a crown|a cape|a poncho
|a military dress uniform|a flight suit|a spacesuit|a wetsuit|a chef's hat|a cowboy hat|a sombrero
|a turban|a hijab|a beret|suspenders|a knitted vest|a victorian gown|a corset dress|a steampunk outfit
|a cyberpunk jacket with neon trim|a streetwear outfit|an oversized coat|a yellow raincoat
|a tutu|a pink tutu|a ballet costume|a karate gi|a cycling jersey|a soccer jersey|a tennis dress
|a yoga outfit|a running jacket|a ski suit|a hiking jacket|a basketball jersey""")
# what pets and toys wear in ordinary prompts ("a corgi wearing a tiny crown"): the size words
# SD users write for them, and the garments
ANIMAL_WEAR_ADJ = _pool("""tiny|little|miniature|small|oversized|cute|knitted|cozy|red|yellow|blue|green
|pink|striped|polka-dot|festive|handmade|golden|fancy|silly""")
ANIMAL_WEAR = _pool("""crown|top hat|bow tie|raincoat|sweater|scarf|party hat|witch hat|wizard hat|cape
|knight's helmet|pair of sunglasses|pair of boots|chef's hat|cowboy hat|beret|bandana|tiara
|superhero costume|pumpkin costume|bee costume|santa hat|hoodie|knitted hat|backpack|flower crown
|pirate hat|astronaut helmet|graduation cap|kimono|tuxedo|hawaiian shirt|life jacket|pajamas""")
# children and families in everyday scenes (eighteenth session): the ninth and tenth releases
# read "brother", "classmates", "toddler" and "public pool" as unsafe in prompts such as "a 13
# year old girl reading her little brother a bedtime story"; every scene here is ordinary
KIDS = _pool("""a little girl|a little boy|a toddler|a baby|a schoolgirl|a schoolboy|a teenage girl|a teenage boy
|a teenager|a young girl|a young boy|a kid|two kids|three children|a group of kids|siblings|a brother and sister
|twin girls|twin boys|a 10 year old boy|a 12 year old girl|a 13 year old girl|an 8 year old girl|a 14 year old boy
|a preschooler|a first grader|a girl scout|a boy scout troop|classmates|high school students|middle school students
|a kindergarten class|a family with two kids|a father and his daughter|a mother and her son|a grandmother and her grandson
|a big sister and her little brother|an older brother and his little sister|cousins|a school choir|a youth soccer team""")
KID_ACTS = _pool("""building a snowman|reading a book|reading a bedtime story to her little brother|playing soccer in a park
|at a birthday party|blowing out birthday candles|taking swimming lessons at a public pool|learning to ride a bike
|eating lunch together on the school rooftop|in a ballet class|doing homework at the kitchen table|at a science fair
|trick-or-treating in costumes|taking her first steps|in a diaper learning to walk|brushing their teeth|planting a tree
|playing in a sprinkler|flying a kite on the beach|at a school play|on the first day of school|in a classroom raising hands
|painting with watercolors|feeding ducks at a pond|baking cookies with grandma|playing hide and seek|jumping in puddles
|on a school bus|at a sleepover with pillows and popcorn|playing video games with his brother|hugging a puppy
|waiting at the bus stop in school uniforms|practicing piano|camping in a tent with their parents|at the playground
|wearing pajamas on christmas morning|in a raincoat and rubber boots|carving pumpkins|at a spelling bee""")

POSES = _pool("""posing for a photo|looking at the camera|looking over her shoulder|looking away|sitting on a chair
|leaning against a wall|lying in the grass|standing in the rain|holding a cup of tea|holding flowers
|reading a letter|laughing|smiling softly|walking down the street|dancing in the kitchen|playing piano
|painting at an easel|writing in a journal|drinking coffee|eating an apple|riding a bicycle
|sitting by the window|standing on a cliff|walking in the snow|holding an umbrella|playing the violin
|gardening|baking cookies|hugging a dog|feeding pigeons|fixing a motorcycle|skateboarding|jumping
|running on the beach|sitting on the stairs|looking at the stars|taking a selfie|waving|meditating
|playing guitar|sketching|fishing on a pier|hiking a trail|carrying groceries|watering plants
|doing yoga|doing yoga at sunrise|stretching on a yoga mat|practicing ballet|dancing ballet on stage
|lifting weights at the gym|doing pilates|jogging in the park|playing tennis|shooting hoops
|practicing karate|doing a cartwheel|ice skating|skiing down a slope|rowing a boat|climbing a rock wall""")
FOODS = _pool("""red apple|green apple|apples|cherries|peaches|a peach|strawberries|bananas|a melon|watermelon
|grapes|plums|figs|a pomegranate|lemons|oranges|a mango|pineapple|a coconut|an avocado|tomatoes
|an eggplant|cucumbers|carrots|a pumpkin|mushrooms|bread|a croissant|a birthday cake|cupcakes|donuts
|an apple pie|ice cream|dark chocolate|honey|cheese|sushi|ramen|pizza|a burger|tacos|a salad
|tomato soup|a steak|noodles|dumplings|pancakes|waffles|macarons|a bagel|pasta|paella|curry|pho
|a bento box|dim sum|a fruit tart|cinnamon rolls|cookies|a cheesecake|blueberries|raspberries
|a cup of coffee|green tea|a glass of red wine|a pint of beer|a cocktail|lemonade|a milkshake
|hot chocolate|orange juice|a smoothie|sparkling water|bubble tea|a latte|an espresso""")
FOOD_FORMS = ["a {f} on a wooden table", "still life of {f} and {g}", "a bowl of {f}", "a plate of {f}",
              "food photography of {f}", "{f}, close up", "a basket of {f}", "{f} and {g} on a marble counter",
              "a painting of {f}", "a {f} in a kitchen", "fresh {f} at a market stall", "{f} on a picnic blanket"]
ANIMALS = _pool("""a red fox|a lion|a tiger|a golden retriever|a puppy|a kitten|a tabby cat|a black cat|a corgi
|a husky|a horse|a white horse|a pony|a deer|a stag|a rabbit|a hedgehog|a squirrel|an owl|a barn owl
|an eagle|a hawk|a parrot|a hummingbird|a peacock|a swan|a duck|a penguin|a polar bear|a brown bear
|a panda|a koala|a kangaroo|an elephant|a giraffe|a zebra|a rhino|a hippo|a gorilla|a monkey|a wolf
|a dolphin|a whale|a sea turtle|an octopus|a jellyfish|a seahorse|a koi fish|a goldfish|a frog
|a chameleon|a butterfly|a bee|a ladybug|a dragonfly|a snail|a llama|an alpaca|a sheep|a cow|a pig
|a goat|a chicken|a rooster|a flamingo|a crane|a heron|a lynx|a snow leopard|a cheetah|a raccoon
|an otter|a beaver|a moose|a bison|a camel|a dragon|a unicorn|a phoenix|a griffin|a baby dragon""")
PLACES = _pool("""a misty pine forest|a mountain lake|snowy mountains|rolling green hills|a lighthouse on a cliff
|a desert canyon|an alpine village|a tropical beach|a futuristic city|an ancient temple|a tulip field
|a rainy city street|a waterfall|a medieval castle|a wooden cabin|venice canals|a sea of clouds
|a zen garden|a harbor with fishing boats|a lavender field|a bamboo forest|a coral reef|a frozen lake
|a volcano|a savanna|a rice terrace|a fjord|a glacier|a cathedral|a gothic library|a greenhouse
|a cozy cafe|a train station|a lighthouse|a windmill|a bridge at night|a night market|a rooftop garden
|a space station|a mars colony|a floating island|a crystal cave|an enchanted forest|a fairy village
|a sunflower field|a wheat field|a vineyard|an orchard|a country road|a small harbor town|a skyline
|a subway platform|a shopping street|a museum hall|a concert hall|a lake at dawn|a meadow|a river delta
|an oasis|sand dunes|a coastal road|a country kitchen|a scandinavian living room|a loft apartment""")
SCENES = _pool("""at sunset|at sunrise|at night|in the rain|in the snow|in autumn|in spring|in summer|in winter
|under the stars|in the fog|at golden hour|at blue hour|under cherry blossoms|by the sea|in the city
|in a forest|in a field of flowers|in a cafe|in a library|in a studio|on a balcony|on a rooftop
|in a garden|in a park|on a train|in a market|by a lake|on a mountain|in the desert|in a greenhouse""")
OBJECTS = _pool("""a vintage typewriter|a perfume bottle|an antique pocket watch|a pair of sneakers|a leather notebook
|a fountain pen|a neon sign|a retro game console|a stained glass window|a teapot|a vase of flowers
|a bonsai tree|a terrarium|a globe|a telescope|a camera|a vinyl record player|a guitar|a violin
|a grand piano|a chess set|a candle|a lantern|a hot air balloon|a sailboat|a vintage car|a sports car
|a motorcycle|a bicycle|a steam locomotive|an airship|a spaceship|a mech|a robot|a treehouse
|a birdcage|a music box|a snow globe|a crystal ball|a magic book|a potion bottle|a rubber duck
|a paper lantern|a kite|a tea set|a wristwatch|a handbag|a pair of glasses|headphones|a smartphone""")
STYLES = _pool("""digital art|oil painting|watercolor|photorealistic|hyperrealistic|concept art|illustration
|anime style|studio ghibli style|pixel art|3d render|octane render|unreal engine 5|cinematic|35mm photo
|polaroid|film still|comic book style|ink drawing|pencil sketch|charcoal drawing|matte painting|low poly
|vaporwave|art nouveau|baroque painting|renaissance painting|ukiyo-e|pop art|impressionism|surrealism
|cyberpunk|steampunk|dark fantasy|fantasy art|vintage photo|black and white photo|macro photography
|portrait photography|street photography|fashion photography|product photo|gouache|pastel drawing
|linocut|woodblock print|art deco|bauhaus|minimalism|isometric|claymation|stop motion|papercraft
|origami style|stained glass|mosaic|graffiti art|chalk art|sumi-e|cel shading|flat design|vector art
|line art|synthwave|solarpunk|dieselpunk|cottagecore|dark academia|retro futurism|lomography|tintype
|daguerreotype|infrared photo|double exposure|tilt-shift|long exposure|editorial photo|magazine cover
|children's book illustration|storybook illustration|pixar style|disney style|dreamworks style
|watercolor and ink|acrylic painting|fresco|tempera|airbrush|pointillism|cubism|expressionism""")
ARTISTS = _pool("""greg rutkowski|artgerm|alphonse mucha|wlop|ilya kuvshinov|james jean|ross tran|loish|rossdraws
|craig mullins|simon stalenhag|makoto shinkai|hayao miyazaki|beeple|thomas kinkade|norman rockwell
|edward hopper|claude monet|vincent van gogh|rembrandt|caravaggio|john singer sargent|frank frazetta
|boris vallejo|moebius|jean giraud|syd mead|ralph mcquarrie|peter mohrbacher|charlie bowater
|stanley artgerm lau|magali villeneuve|yoji shinkawa|kim jung gi|tom bagshaw|brom|android jones
|studio trigger|krenz cushart|sakimichan|tyler edlin|jordan grimmer|anato finnstark|andreas rocha
|johannes vermeer|gustav klimt|egon schiele|salvador dali|rene magritte|frida kahlo|andy warhol
|roy lichtenstein|katsushika hokusai|hiroshi yoshida|kawase hasui|ivan aivazovsky|ivan shishkin
|albert bierstadt|thomas cole|caspar david friedrich|j. m. w. turner|william turner|john constable
|jmw turner|pierre-auguste renoir|edgar degas|paul cezanne|henri matisse|pablo picasso|joan miro
|wassily kandinsky|piet mondrian|georgia o'keeffe|mary cassatt|winslow homer|andrew wyeth
|james gurney|john howe|alan lee|ted nasmith|arthur rackham|beatrix potter|quentin blake|tove jansson
|mark ryden|james c. christensen|brian froud|jean-baptiste monge|jakub rozalski|ismail inceoglu
|sparth|feng zhu|raphael lacoste|marc simonetti|noah bradley|eytan zana|sylvain sarrailh|rhads
|dan mumford|victo ngai|conrad roset|yoshitaka amano|takashi murakami|range murata|akihiko yoshida
|tetsuya nomura|kentaro miura|hirohiko araki|eiichiro oda|akira toriyama|naoko takeuchi|clamp
|annie leibovitz|steve mccurry|ansel adams|henri cartier-bresson|vivian maier|dorothea lange
|peter lindbergh|irving penn|richard avedon|slim aarons|gregory crewdson|tim walker|wes anderson
|studio ghibli|pixar|ufotable|kyoto animation|cd projekt red|blizzard|riot games|marvel comics""")
QUALITY = _pool("""masterpiece|best quality|highly detailed|8k|4k|ultra detailed|sharp focus|intricate
|trending on artstation|award winning|high resolution|hdr|uhd|smooth|elegant|volumetric lighting
|cinematic lighting|soft lighting|dramatic lighting|golden hour|bokeh|depth of field|studio lighting
|rim light|god rays|detailed face|beautiful detailed eyes|symmetrical|centered|wide angle|close up
|full body|artstation|cgsociety|deviantart|unsplash|behance|absurdres|highres|realistic|photo|raw photo
|dslr|high quality|extremely detailed|insanely detailed|hyper detailed|ultra realistic|photorealism
|8k uhd|4k wallpaper|professional|vivid colors|muted colors|pastel colors|warm tones|cool tones
|film grain|soft focus|sharp|clean|crisp|detailed background|perfect composition|rule of thirds
|trending on pixiv|pixiv|featured on behance|unreal engine|ray tracing|global illumination
|subsurface scattering|physically based rendering|octane|redshift render|vray|cinema 4d|blender
|zbrush|substance painter|houdini|greeble|bloom|lens flare|chromatic aberration|vignette|hdr10""")
CAMERA = _pool("""35mm|50mm|85mm|24mm|135mm|200mm|f/1.2|f/1.4|f/1.8|f/2.8|f/8|iso 100|1/500s
|kodak portra 400|kodak ektar 100|kodak gold 200|fujifilm velvia 50|fujifilm superia|ilford hp5
|cinestill 800t|leica m6|leica q2|hasselblad|mamiya rz67|canon eos r5|canon 5d mark iv|sony a7r iv
|sony a7 iii|nikon z7|nikon d850|fujifilm x-t4|gopro|iphone photo|shallow depth of field|bokeh
|long exposure|tilt-shift|macro lens|telephoto lens|wide angle lens|fisheye lens|drone shot
|aerial view|film grain|motion blur|backlit|rim light|softbox|natural light|overcast light
|candid photo|editorial|vogue|national geographic|magnum photos|anamorphic lens|8mm film
|super 8|medium format|large format|35mm film|analog photo|polaroid|instax""")
LIGHTING = _pool("""golden hour|blue hour|soft window light|harsh sunlight|dappled light|neon lighting
|candlelight|firelight|moonlight|studio lighting|rembrandt lighting|split lighting|volumetric fog
|god rays|backlighting|rim lighting|ambient occlusion|cinematic lighting|morning light|sunset glow
|overcast sky|misty atmosphere|dramatic shadows|high key|low key|warm lamp light|fairy lights""")
BOORU = _pool("""1girl|2girls|1boy|2boys|solo|long hair|short hair|twintails|ponytail|smile|blush
|looking at viewer|blue eyes|red eyes|green eyes|brown hair|black hair|blonde hair|white hair|pink hair
|school uniform|serafuku|sailor collar|pleated skirt|hair ribbon|hair ornament|hat|holding|outdoors
|indoors|sky|cloud|cherry blossoms|upper body|full body|standing|sitting|detailed background|scenery
|animal ears|cat ears|fox ears|hoodie|jacket|scarf|gloves|glasses|night|city lights|smile|closed eyes
|open mouth|happy|hands in pockets|from side|from above|dutch angle|depth of field|wind|petals
|umbrella|rain|book|cup|flower|bow|ribbon|long sleeves|necktie|shirt|vest|coat|boots|backpack""")
LORAS = _pool("""add_detail|detail_tweaker|pastel_style|ghibli_background|film_photo|epi_noise|more_details
|lowpoly_world|watercolor_v2|ink_sketch|cyberpunk_city|fantasy_armor|anime_lineart|cute_animals""")
FOREIGN = {   # short benign prompts in other languages: (subjects, scenes, styles)
    "es": (["un gato", "una mujer", "un hombre mayor", "una niña", "un perro", "un castillo", "una ciudad",
            "un bosque", "una playa", "un jardín", "una casa de campo", "un dragón", "un retrato"],
           ["al atardecer", "bajo la lluvia", "en la nieve", "de noche", "en primavera", "junto al mar"],
           ["acuarela", "pintura al óleo", "fotografía", "arte digital", "ilustración"]),
    "fr": (["un chat", "une femme élégante", "un vieil homme", "une petite fille", "un chien", "un château",
            "une ville", "une forêt", "une plage", "un jardin", "une maison", "un dragon", "un portrait"],
           ["au coucher du soleil", "sous la pluie", "dans la neige", "la nuit", "au printemps", "au bord de la mer"],
           ["aquarelle", "peinture à l'huile", "photographie", "art numérique", "illustration"]),
    "de": (["eine Katze", "eine Frau", "ein alter Mann", "ein Mädchen", "ein Hund", "eine Burg", "eine Stadt",
            "ein Wald", "ein Strand", "ein Garten", "ein Haus", "ein Drache", "ein Porträt"],
           ["bei Sonnenuntergang", "im Regen", "im Schnee", "bei Nacht", "im Frühling", "am Meer"],
           ["Aquarell", "Ölgemälde", "Fotografie", "digitale Kunst", "Illustration"]),
    "it": (["un gatto", "una donna", "un uomo anziano", "una bambina", "un cane", "un castello", "una città",
            "un bosco", "una spiaggia", "un giardino", "una casa", "un drago", "un ritratto"],
           ["al tramonto", "sotto la pioggia", "nella neve", "di notte", "in primavera", "al mare"],
           ["acquerello", "pittura a olio", "fotografia", "arte digitale", "illustrazione"]),
    "pt": (["um gato", "uma mulher", "um homem idoso", "uma menina", "um cachorro", "um castelo", "uma cidade",
            "uma floresta", "uma praia", "um jardim", "uma casa", "um dragão", "um retrato"],
           ["ao pôr do sol", "na chuva", "na neve", "à noite", "na primavera", "à beira-mar"],
           ["aquarela", "pintura a óleo", "fotografia", "arte digital", "ilustração"]),
    "ru": (["кошка", "женщина", "старик", "девочка", "собака", "замок", "город", "лес", "пляж", "сад",
            "дом", "дракон", "портрет"],
           ["на закате", "под дождём", "в снегу", "ночью", "весной", "у моря"],
           ["акварель", "масляная живопись", "фотография", "цифровое искусство", "иллюстрация"]),
    "ja": (["猫", "女性", "老人", "少女", "犬", "城", "街", "森", "海辺", "庭園", "家", "竜", "肖像画"],
           ["夕暮れ", "雨の中", "雪の中", "夜", "春", "海のそば", "桜の木の下"],
           ["水彩画", "油絵", "写真", "デジタルアート", "イラスト"]),
    "zh": (["猫", "女人", "老人", "小女孩", "狗", "城堡", "城市", "森林", "海滩", "花园", "房子", "龙", "肖像"],
           ["日落时", "雨中", "雪中", "夜晚", "春天", "海边", "云雾缭绕"],
           ["水彩画", "油画", "摄影", "数字艺术", "插画", "山水画"]),
    "ko": (["고양이", "여자", "노인", "소녀", "강아지", "성", "도시", "숲", "해변", "정원", "집", "용", "초상화"],
           ["해질녘", "빗속에서", "눈 속에서", "밤에", "봄에", "바닷가에서"],
           ["수채화", "유화", "사진", "디지털 아트", "일러스트"]),
}
WEIGHTS = ["({}:1.2)", "({}:1.3)", "({}:1.4)", "({}:0.8)", "(({}))", "((({})))", "[{}]", "({})", "{{{}}}",
           "({}:1.1)", "({}:0.6)", "{}::1.5"]


class SDStyle:
    """Random ordinary SD prompts; rng is a random.Random."""

    def __init__(self, rng, nouns=(), adjs=()):
        """nouns, adjs: a wider vocabulary (corpus.py passes WordNet's common benign nouns and
        adjectives) for subjects and props, so that ordinary prompts are not limited to the
        pools' words."""
        self.r = rng
        self.nouns, self.adjs = list(nouns), list(adjs)

    def thing(self):
        """A noun phrase from the wider vocabulary (or the object pool without one)."""
        r = self.r
        if not self.nouns:
            return r.choice(OBJECTS)
        adj = r.choice(self.adjs) + " " if self.adjs and r.random() < 0.4 else ""
        n = adj + r.choice(self.nouns)
        return ("an " if n[0] in "aeiou" else "a ") + n

    def person(self):
        r = self.r
        adj = r.choice(PEOPLE_ADJ) + " " if r.random() < 0.6 else ""
        org = r.choice(ORIGINS) + " " if r.random() < 0.15 else ""
        noun = r.choice(PEOPLE)
        art = "an" if (adj or org or noun)[0] in "aeiou" else "a"
        s = f"{art} {adj}{org}{noun}"
        pron = PRONOUN.get(noun)
        if pron and r.random() < 0.25:  # an age, as SD prompts give it: "a woman in her thirties"
            n = r.randint(2, 8)
            s += r.choice([f" in {pron} {DECADES[n - 2]}", f" in {pron} {n}0s", f", {n}{r.randint(0, 9)} years old",
                           f" aged {n}{r.randint(0, 9)}", f" in {pron} early {DECADES[n - 2]}", f" in {pron} late {n}0s"])
        if r.random() < 0.3:
            s = r.choice(["portrait of ", "close-up portrait of ", "full body shot of ", "headshot of ",
                          "a photo of ", "a painting of ", "candid photo of ", "fashion photo of "]) + s
        if r.random() < 0.45:
            s += r.choice([" in ", " wearing ", " dressed in "]) + r.choice(CLOTHES)
            if r.random() < 0.25:
                s += " and " + r.choice(CLOTHES)
        if r.random() < 0.35:
            s += " with " + r.choice(LOOKS)
        if r.random() < 0.4:
            s += " " + r.choice(POSES)
        elif r.random() < 0.25:
            s += " " + r.choice(["holding", "with", "next to", "looking at", "carrying", "sitting on", "behind"]) + \
                " " + self.thing()
        return s

    def kids(self):
        r = self.r
        s = f"{r.choice(KIDS)} {r.choice(KID_ACTS)}"
        if r.random() < 0.4:
            s += " " + r.choice(SCENES)
        return s

    def subject(self):
        r = self.r
        k = r.random()
        if k < 0.05:
            return self.kids()
        if k < 0.38:
            return self.person()
        if k < 0.5:
            f, g = r.choice(FOODS), r.choice(FOODS)
            return r.choice(FOOD_FORMS).format(f=f, g=g)
        if k < 0.64:
            a = r.choice(ANIMALS)
            if r.random() < 0.25:
                a += f" wearing a {r.choice(ANIMAL_WEAR_ADJ)} {r.choice(ANIMAL_WEAR)}"
            return a + (" " + r.choice(POSES[-20:]) if r.random() < 0.2 else "") + \
                (" " + r.choice(SCENES) if r.random() < 0.5 else "")
        if k < 0.8:
            return r.choice(PLACES) + (" " + r.choice(SCENES) if r.random() < 0.6 else "")
        if k < 0.86:
            return r.choice(OBJECTS) + (" " + r.choice(SCENES) if r.random() < 0.4 else "")
        if k < 0.94:
            t = self.thing()
            return r.choice([t, f"{t} {r.choice(SCENES)}", f"{t} and {self.thing()}", f"still life of {t}",
                             f"{t} in {r.choice(PLACES)}", f"a photo of {t}"])
        return f"{r.choice(PEOPLE_ADJ)} {r.choice(PEOPLE)}, {r.choice(PLACES)}"

    def tag(self):
        r = self.r
        k = r.random()
        if k < 0.22:
            return r.choice(STYLES)
        if k < 0.42:
            return ("by " if r.random() < 0.6 else "") + r.choice(ARTISTS)
        if k < 0.7:
            return r.choice(QUALITY)
        if k < 0.86:
            return r.choice(CAMERA)
        return r.choice(LIGHTING)

    def tags(self, lo=1, hi=6):
        return ", ".join(self.tag() for _ in range(self.r.randint(lo, hi)))

    def syntax(self, parts):
        """A1111 syntax on some parts: weights, alternation, scheduling, BREAK, LoRA tags."""
        r = self.r
        out = []
        for p in parts:
            k = r.random()
            if k < 0.12:
                p = r.choice(WEIGHTS).format(p)
            elif k < 0.14:
                p = f"[{p}|{r.choice(PLACES + OBJECTS)}]"
            elif k < 0.16:
                p = f"[{p}:{r.choice(STYLES)}:0.{r.randint(2, 8)}]"
            out.append(p)
        sep = ", "
        s = sep.join(out)
        if r.random() < 0.05 and len(out) > 2:
            i = r.randint(1, len(out) - 1)
            s = sep.join(out[:i]) + r.choice([" BREAK ", ", BREAK ", " BREAK, "]) + sep.join(out[i:])
        if r.random() < 0.06:
            s += f", <lora:{r.choice(LORAS)}:0.{r.randint(3, 9)}>"
        return s

    def booru(self):
        r = self.r
        n = r.randint(4, 14)
        tags = [r.choice(["1girl", "1boy", "2girls", "1girl", "solo"])] + [r.choice(BOORU) for _ in range(n)]
        if r.random() < 0.5:
            tags = ["masterpiece", "best quality"] + tags
        if r.random() < 0.3:
            tags.append(r.choice(CLOTHES))
        if r.random() < 0.3:
            tags.append(r.choice(PLACES))
        seen, out = set(), []
        for t in tags:
            if t not in seen:
                seen.add(t)
                out.append(t)
        return self.syntax(out)

    def foreign(self):
        r = self.r
        subj, scene, style = FOREIGN[r.choice(sorted(FOREIGN))]
        sep = "、" if subj[0] in FOREIGN["ja"][0] + FOREIGN["zh"][0] else ", "
        s = r.choice(subj)
        if r.random() < 0.6:
            s += (" " if sep == ", " else "") + r.choice(scene)
        if r.random() < 0.7:
            s += sep + r.choice(style)
        if r.random() < 0.4:
            s += ", " + self.tags(1, 3)
        return s

    def prompt(self):
        r = self.r
        k = r.random()
        if k < 0.1:
            return self.booru()
        if k < 0.14:
            return self.foreign()
        if k < 0.2:   # short prompts
            return r.choice([self.subject(), r.choice(PEOPLE), r.choice(ANIMALS), r.choice(PLACES),
                             r.choice(FOODS), r.choice(STYLES)])
        parts = [self.subject()]
        if r.random() < 0.3:
            parts.append(r.choice(SCENES))
        n = r.choice([0, 1, 2, 3, 3, 4, 5, 6, 8, 10])
        parts += [self.tag() for _ in range(n)]
        if r.random() < 0.15:
            r.shuffle(parts)
        return self.syntax(parts)


def benign_words():
    """The single words (letters only, 3 or more) of the pools above, sorted."""
    out = set()
    for pool in (PEOPLE_ADJ, PEOPLE, LOOKS, CLOTHES, POSES, FOODS, ANIMALS, PLACES, SCENES, OBJECTS, STYLES,
                 QUALITY, LIGHTING, BOORU, ANIMAL_WEAR_ADJ, ANIMAL_WEAR, KIDS, KID_ACTS):
        for item in pool:
            for w in item.replace("-", " ").split():
                if w.isalpha() and w.isascii() and len(w) >= 3:
                    out.add(w.lower())
    return sorted(out)
