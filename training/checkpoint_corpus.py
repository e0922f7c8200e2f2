"""Generated text for the local checkpoints: a seeded grammar of image-caption-like sentences.

The tiny test checkpoints need real-looking text in English, German and French to train their
tokenizers and their copy tasks on, and it must exist on a fresh clone with no data folder.
This module makes it: a small grammar (determiners, numbers, adjectives, people, animals and
things, verbs with their objects, places with prepositions, a few proper names, time phrases,
clause joins and some punctuation variety) builds one abstract scene at a time and writes it
in all three languages, so every sentence comes as an aligned ``Triple``::

    A young man in a red shirt is riding a bike down the street.
    Ein junger Mann in einem roten Hemd fährt mit dem Fahrrad die Straße entlang.
    Un jeune homme en chemise rouge fait du vélo le long de la rue.

Generation uses only ``random.Random(int)`` (the same on every machine and Python version), so
the same seed gives the same sentences everywhere. ``sentences(lang, "train", n)`` and
``sentences(lang, "val", n)`` are disjoint: no sentence of the validation pool (in any
language) is in the training split, and no sentence repeats within a split.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from functools import lru_cache

LANGUAGES = ("en", "de", "fr")
SPLITS = ("train", "val")
SEED = 30
# Validation triples held out from every training split of the same seed.
VAL_SIZE = 500


class CorpusError(ValueError):
    """A request the generated corpus cannot serve (unknown language or split, too many val)."""


# --- Lexicon ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noun:
    """A noun in the three languages (German gender m/f/n; ``de_weak``: Junge -> den Jungen)."""

    en: str
    en_pl: str
    de: str
    de_pl: str
    de_gender: str
    de_weak: bool
    fr: str
    fr_pl: str
    fr_gender: str
    tags: str = ""


@dataclass(frozen=True)
class Adj:
    """An adjective: German stem (``!`` = indeclinable), French m/f/m pl/f pl and position."""

    en: str
    de: str
    fr: tuple[str, str, str, str]
    fr_before: bool
    color: bool


@dataclass(frozen=True)
class Verb:
    """A verb (or fixed verb phrase) with its complement, or its object preposition and tags."""

    en: tuple[str, str, str]
    en_rest: str
    de: tuple[str, str]
    de_rest: str
    de_case: str
    fr: tuple[str, str]
    fr_rest: str
    kinds: str
    objects: str = ""
    motion: bool = False


@dataclass(frozen=True)
class Place:
    """A place noun with the preposition each language uses for being there."""

    noun: Noun
    en_prep: str
    de_prep: str
    fr_prep: str
    tags: str = ""


def _plural_en(word: str) -> str:
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _plural_fr(word: str) -> str:
    head, _, tail = word.partition(" ")
    if head.endswith(("s", "x", "z")):
        plural = head
    elif head.endswith(("eau", "eu")):
        plural = head + "x"
    elif head.endswith("al"):
        plural = head[:-2] + "aux"
    else:
        plural = head + "s"
    return f"{plural} {tail}" if tail else plural


def _nouns(spec: str) -> tuple[Noun, ...]:
    """Parse ``en|en_pl|de|de_pl|gender|fr|fr_pl|gender|tags`` lines (empty plural: regular;
    German gender ``w``: weak masculine)."""
    nouns = []
    for line in spec.strip().splitlines():
        en, en_pl, de, de_pl, de_g, fr, fr_pl, fr_g, tags = (f.strip() for f in line.split("|"))
        nouns.append(
            Noun(
                en=en,
                en_pl=en_pl or _plural_en(en),
                de=de,
                de_pl=de_pl or de,
                de_gender="m" if de_g == "w" else de_g,
                de_weak=de_g == "w",
                fr=fr,
                fr_pl=fr_pl or _plural_fr(fr),
                fr_gender=fr_g,
                tags=tags,
            )
        )
    return tuple(nouns)


def _fr_forms(spec: str) -> tuple[str, str, str, str]:
    parts = spec.split("/")
    if len(parts) == 4:
        return (parts[0], parts[1], parts[2], parts[3])
    masc = parts[0]
    fem = parts[1] if len(parts) > 1 else (masc if masc.endswith("e") else masc + "e")
    masc_pl = masc if masc.endswith(("s", "x")) else masc + ("x" if masc.endswith("eau") else "s")
    return (masc, fem, masc_pl, fem + "s")


def _adjs(spec: str, color: bool = False) -> tuple[Adj, ...]:
    """Parse ``en|de stem|fr forms|<`` (``<``: before the noun in French) lines."""
    adjs = []
    for line in spec.strip().splitlines():
        en, de, fr, pos = (f.strip() for f in line.split("|"))
        adjs.append(Adj(en, de, _fr_forms(fr), pos == "<", color))
    return tuple(adjs)


def _split_verb(text: str) -> tuple[list[str], str]:
    head, _, rest = text.strip().partition(" ")
    return head.split("/"), rest


def _verbs(spec: str, transitive: bool) -> tuple[Verb, ...]:
    """Parse ``en forms rest|de forms rest|fr forms rest|kinds|objects or flags`` lines."""
    verbs = []
    for line in spec.strip().splitlines():
        en_text, de_text, fr_text, kinds, extra = (f.strip() for f in line.split("|"))
        en, en_rest = _split_verb(en_text)
        de, de_rest = _split_verb(de_text)
        fr, fr_rest = _split_verb(fr_text)
        # Reflexive French verbs are written "se_repose/se_reposent".
        fr = [form.replace("_", " ") for form in fr]
        de_case = "acc"
        if transitive and "+" in de_rest:
            de_rest, de_case = de_rest.split("+")
        verbs.append(
            Verb(
                en=(en[0], en[1], en[2]),
                en_rest=en_rest,
                de=(de[0], de[1]),
                de_rest=de_rest,
                de_case=de_case,
                fr=(fr[0], fr[1]),
                fr_rest=fr_rest,
                kinds=kinds,
                objects=extra if transitive else "",
                motion=not transitive and "m" in extra,
            )
        )
    return tuple(verbs)


def _places(spec: str) -> tuple[Place, ...]:
    """Parse ``en|de|gender|fr|gender|en prep|de prep|fr prep|tags`` lines."""
    places = []
    for line in spec.strip().splitlines():
        en, de, de_g, fr, fr_g, en_p, de_p, fr_p, tags = (f.strip() for f in line.split("|"))
        noun = Noun(en, en, de, de, de_g, False, fr, fr, fr_g, tags)
        places.append(Place(noun, en_p, de_p, fr_p, tags))
    return tuple(places)


# People (tag c: a child, who may get an age).
PEOPLE = _nouns("""
man|men|Mann|Männer|m|homme||m|
woman|women|Frau|Frauen|f|femme||f|
boy||Junge|Jungen|w|garçon||m|c
girl||Mädchen|Mädchen|n|fille||f|c
child|children|Kind|Kinder|n|enfant||m|c
baby||Baby|Babys|n|bébé||m|
toddler||Kleinkind|Kleinkinder|n|bambin||m|c
teenager||Teenager|Teenager|m|adolescent||m|
student||Student|Studenten|w|étudiant||m|
worker||Arbeiter|Arbeiter|m|ouvrier||m|
musician||Musiker|Musiker|m|musicien||m|
dancer||Tänzerin|Tänzerinnen|f|danseuse||f|
cyclist||Radfahrer|Radfahrer|m|cycliste||m|
tourist||Tourist|Touristen|w|touriste||m|
police officer||Polizist|Polizisten|w|policier||m|
firefighter||Feuerwehrmann|Feuerwehrleute|m|pompier||m|
chef||Koch|Köche|m|cuisinier||m|
farmer||Landwirt|Landwirte|m|fermier||m|
doctor||Ärztin|Ärztinnen|f|médecin||m|
soldier||Soldat|Soldaten|w|soldat||m|
athlete||Sportler|Sportler|m|athlète||m|
runner||Läufer|Läufer|m|coureur||m|
skier||Skifahrer|Skifahrer|m|skieur||m|
surfer||Surfer|Surfer|m|surfeur||m|
climber||Kletterer|Kletterer|m|grimpeur||m|
player||Spieler|Spieler|m|joueur||m|
singer||Sängerin|Sängerinnen|f|chanteuse||f|
artist||Künstler|Künstler|m|artiste||m|
painter||Maler|Maler|m|peintre||m|
fisherman|fishermen|Fischer|Fischer|m|pêcheur||m|
lady|ladies|Dame|Damen|f|dame||f|
couple||Paar|Paare|n|couple||m|
family||Familie|Familien|f|famille||f|
person|people|Person|Personen|f|personne||f|
vendor||Verkäufer|Verkäufer|m|vendeur||m|
waiter||Kellner|Kellner|m|serveur||m|
mother||Mutter|Mütter|f|mère||f|
father||Vater|Väter|m|père||m|
grandmother||Großmutter|Großmütter|f|grand-mère|grands-mères|f|
grandfather||Großvater|Großväter|m|grand-père|grands-pères|m|
mechanic||Mechaniker|Mechaniker|m|mécanicien||m|
bride||Braut|Bräute|f|mariée||f|
guitarist||Gitarrist|Gitarristen|w|guitariste||m|
skateboarder||Skateboarder|Skateboarder|m|skateur||m|
hiker||Wanderer|Wanderer|m|randonneur||m|
nurse||Krankenschwester|Krankenschwestern|f|infirmière||f|
teacher||Lehrerin|Lehrerinnen|f|institutrice||f|
brother||Bruder|Brüder|m|frère||m|
sister||Schwester|Schwestern|f|sœur||f|
friend||Freund|Freunde|m|ami||m|
""")

# Animals (tag r: can be ridden).
ANIMALS = _nouns("""
dog||Hund|Hunde|m|chien||m|
cat||Katze|Katzen|f|chat||m|
horse||Pferd|Pferde|n|cheval|chevaux|m|r
bird||Vogel|Vögel|m|oiseau||m|
cow||Kuh|Kühe|f|vache||f|
sheep|sheep|Schaf|Schafe|n|mouton||m|
goat||Ziege|Ziegen|f|chèvre||f|
duck||Ente|Enten|f|canard||m|
puppy||Welpe|Welpen|w|chiot||m|
pony||Pony|Ponys|n|poney||m|r
camel||Kamel|Kamele|n|chameau||m|r
elephant||Elefant|Elefanten|w|éléphant||m|r
monkey||Affe|Affen|w|singe||m|
bear||Bär|Bären|w|ours||m|
pigeon||Taube|Tauben|f|pigeon||m|
chicken||Huhn|Hühner|n|poule||f|
rabbit||Kaninchen|Kaninchen|n|lapin||m|
donkey||Esel|Esel|m|âne||m|r
goose|geese|Gans|Gänse|f|oie||f|
deer|deer|Reh|Rehe|n|cerf||m|
squirrel||Eichhörnchen|Eichhörnchen|n|écureuil||m|
seagull||Möwe|Möwen|f|mouette||f|
""")

# Things, tagged by what can be done with them: h hold/carry, b ball games, k catch, r read,
# f eat, d drink, v push/pull, p paint, u build, x repair, w wash, s sell/buy, o open,
# t play with, c cut; M: a mass noun (no article in en/de, partitive in fr).
THINGS = _nouns("""
umbrella||Regenschirm|Regenschirme|m|parapluie||m|h
bag||Tasche|Taschen|f|sac||m|hs
box||Kiste|Kisten|f|boîte||f|ho
flag||Fahne|Fahnen|f|drapeau||m|h
sign||Schild|Schilder|n|pancarte||f|hp
camera||Kamera|Kameras|f|appareil photo|appareils photo|m|hx
phone||Handy|Handys|n|téléphone||m|hx
basket||Korb|Körbe|m|panier||m|hs
cup||Tasse|Tassen|f|tasse||f|hw
bottle||Flasche|Flaschen|f|bouteille||f|ho
book||Buch|Bücher|n|livre||m|hrs
newspaper||Zeitung|Zeitungen|f|journal||m|hrs
magazine||Zeitschrift|Zeitschriften|f|magazine||m|rs
map||Karte|Karten|f|carte||f|hr
letter||Brief|Briefe|m|lettre||f|ro
menu||Speisekarte|Speisekarten|f|menu||m|r
ball||Ball|Bälle|m|ballon||m|hbkt
frisbee||Frisbee|Frisbees|n|frisbee||m|bkt
stick||Stock|Stöcke|m|bâton||m|hbk
balloon||Luftballon|Luftballons|m|ballon de baudruche|ballons de baudruche|m|hst
flower||Blume|Blumen|f|fleur||f|hsp
kite||Drachen|Drachen|m|cerf-volant|cerfs-volants|m|ht
apple||Apfel|Äpfel|m|pomme||f|fsc
sandwich||Sandwich|Sandwiches|n|sandwich||m|fc
pizza||Pizza|Pizzas|f|pizza||f|fc
ice cream||Eis|Eis|n|glace||f|fs
cake||Kuchen|Kuchen|m|gâteau||m|fcu
banana||Banane|Bananen|f|banane||f|fs
orange||Orange|Orangen|f|orange||f|fsc
sausage||Wurst|Würste|f|saucisse||f|fs
hot dog||Hotdog|Hotdogs|m|hot-dog||m|fs
fish|fish|Fisch|Fische|m|poisson||m|fksc
bike||Fahrrad|Fahrräder|n|vélo||m|vxw
car||Auto|Autos|n|voiture||f|xws
cart||Wagen|Wagen|m|chariot||m|v
stroller||Kinderwagen|Kinderwagen|m|poussette||f|v
wheelbarrow||Schubkarre|Schubkarren|f|brouette||f|v
boat||Boot|Boote|n|bateau||m|xwp
picture||Bild|Bilder|n|tableau||m|ps
portrait||Porträt|Porträts|n|portrait||m|p
sandcastle||Sandburg|Sandburgen|f|château de sable|châteaux de sable|m|u
snowman|snowmen|Schneemann|Schneemänner|m|bonhomme de neige|bonshommes de neige|m|u
tower||Turm|Türme|m|tour||f|u
fence||Zaun|Zäune|m|clôture||f|xp
roof||Dach|Dächer|n|toit||m|x
machine||Maschine|Maschinen|f|machine||f|x
hat||Hut|Hüte|m|chapeau||m|s
rope||Seil|Seile|n|corde||f|hv
tire||Reifen|Reifen|m|pneu|pneus|m|xv
shovel||Schaufel|Schaufeln|f|pelle||f|h
ladder||Leiter|Leitern|f|échelle||f|h
suitcase||Koffer|Koffer|m|valise||f|hvo
toy||Spielzeug|Spielzeuge|n|jouet||m|hts
bucket||Eimer|Eimer|m|seau||m|h
window||Fenster|Fenster|n|fenêtre||f|wxo
gift||Geschenk|Geschenke|n|cadeau||m|ho
door||Tür|Türen|f|porte||f|op
guitar||Gitarre|Gitarren|f|guitare||f|hxs
tray||Tablett|Tabletts|n|plateau||m|h
wagon||Bollerwagen|Bollerwagen|m|charrette||f|v
coffee||Kaffee||m|café||m|dMs
tea||Tee||m|thé||m|dM
water||Wasser||n|eau||f|dM
juice||Saft||m|jus||m|dM
milk||Milch||f|lait||m|dM
lemonade||Limonade||f|limonade||f|dM
soup||Suppe||f|soupe||f|fM
rice||Reis||m|riz||m|fM
bread||Brot||n|pain||m|fcsM
cheese||Käse||m|fromage||m|fcsM
""")

CLOTHES = _nouns("""
shirt||Hemd|Hemden|n|chemise||f|
T-shirt||T-Shirt|T-Shirts|n|tee-shirt||m|
dress||Kleid|Kleider|n|robe||f|
jacket||Jacke|Jacken|f|veste||f|
coat||Mantel|Mäntel|m|manteau||m|
sweater||Pullover|Pullover|m|pull||m|
skirt||Rock|Röcke|m|jupe||f|
uniform||Uniform|Uniformen|f|uniforme||m|
costume||Kostüm|Kostüme|n|costume||m|
swimsuit||Badeanzug|Badeanzüge|m|maillot de bain|maillots de bain|m|
hoodie||Kapuzenpullover|Kapuzenpullover|m|sweat à capuche|sweats à capuche|m|
""")

ACCESSORIES = _nouns("""
hat||Hut|Hüte|m|chapeau||m|
cap||Mütze|Mützen|f|casquette||f|
helmet||Helm|Helme|m|casque||m|
scarf|scarves|Schal|Schals|m|écharpe||f|
backpack||Rucksack|Rucksäcke|m|sac à dos|sacs à dos|m|
apron||Schürze|Schürzen|f|tablier||m|
beard||Bart|Bärte|m|barbe||f|
""")

COLORS = _adjs(
    """
red|rot|rouge|>
blue|blau|bleu|>
green|grün|vert|>
yellow|gelb|jaune|>
black|schwarz|noir|>
white|weiß|blanc/blanche|>
brown|braun|brun|>
gray|grau|gris/grise|>
pink|rosa!|rose|>
orange|orangefarben|orange/orange/orange/orange|>
purple|lila!|violet/violette|>
striped|gestreift|rayé|>
colorful|bunt|coloré|>
""",
    color=True,
)

# The colours an animal has.
ANIMAL_COLORS = tuple(c for c in COLORS if c.en in ("black", "white", "brown", "gray"))

PERSON_ADJS = _adjs("""
young|jung|jeune|<
old|alt|vieux/vieille/vieux/vieilles|<
little|klein|petit|<
tall|groß|grand|<
happy|glücklich|heureux/heureuse|>
tired|müde|fatigué|>
smiling|lächelnd|souriant|>
blond|blond|blond|>
elderly|älter|âgé|>
curly-haired|lockig|frisé|>
strong|stark|fort|>
serious|ernst|sérieux/sérieuse|>
hungry|hungrig|affamé|>
proud|stolz|fier/fière|>
barefoot|barfüßig|pieds nus/pieds nus/pieds nus/pieds nus|>
""")

ANIMAL_ADJS = _adjs("""
big|groß|gros/grosse/gros/grosses|<
small|klein|petit|<
young|jung|jeune|<
wet|nass|mouillé|>
fluffy|flauschig|duveteux/duveteuse|>
spotted|gefleckt|tacheté|>
hungry|hungrig|affamé|>
sleepy|schläfrig|endormi|>
friendly|freundlich|gentil/gentille|>
""")

THING_ADJS = _adjs("""
big|groß|grand|<
small|klein|petit|<
old|alt|vieux/vieille/vieux/vieilles|<
new|neu|nouveau/nouvelle/nouveaux/nouvelles|<
heavy|schwer|lourd|>
empty|leer|vide|>
wooden|hölzern|en bois/en bois/en bois/en bois|>
shiny|glänzend|brillant|>
""")

PLACE_ADJS = _adjs("""
busy|belebt|animé|>
quiet|ruhig|calme|>
crowded|überfüllt|bondé|>
sunny|sonnig|ensoleillé|>
empty|leer|vide|>
beautiful|schön|beau/belle/beaux/belles|<
wet|nass|mouillé|>
small|klein|petit|<
large|groß|grand|<
old|alt|vieux/vieille/vieux/vieilles|<
snowy|verschneit|enneigé|>
green|grün|vert|>
wide|breit|large|>
narrow|schmal|étroit|>
muddy|schlammig|boueux/boueuse|>
""")

# Fixed verb phrases and intransitive verbs (flag m: motion, may take a path).
INTRANSITIVE = _verbs(
    """
walks/walk/walking|geht/gehen|marche/marchent|PA|m
runs/run/running|läuft/laufen|court/courent|PA|m
jumps/jump/jumping|springt/springen|saute/sautent|PA|m
sits/sit/sitting|sitzt/sitzen|s'assoit/s'assoient|PA|
stands/stand/standing|steht/stehen|se_tient/se_tiennent debout|PA|
sleeps/sleep/sleeping|schläft/schlafen|dort/dorment|PA|
smiles/smile/smiling|lächelt/lächeln|sourit/sourient|P|
laughs/laugh/laughing|lacht/lachen|rit/rient|P|
waits/wait/waiting|wartet/warten|attend/attendent|PA|
swims/swim/swimming|schwimmt/schwimmen|nage/nagent|PA|m
plays/play/playing|spielt/spielen|joue/jouent|PA|
climbs/climb/climbing|klettert/klettern|grimpe/grimpent|PA|
dances/dance/dancing|tanzt/tanzen|danse/dansent|P|
sings/sing/singing|singt/singen|chante/chantent|P|
works/work/working|arbeitet/arbeiten|travaille/travaillent|P|
rests/rest/resting|ruht/ruhen|se_repose/se_reposent|PA|
talks/talk/talking|redet/reden|discute/discutent|P|
cooks/cook/cooking|kocht/kochen|cuisine/cuisinent|P|
cries/cry/crying|weint/weinen|pleure/pleurent|P|
poses/pose/posing for a photo|posiert/posieren für ein Foto|pose/posent pour une photo|P|
rides/ride/riding a bike|fährt/fahren mit dem Fahrrad|fait/font du vélo|P|m
rides/ride/riding a bicycle|fährt/fahren Rad|roule/roulent à vélo|P|m
rides/ride/riding a skateboard|fährt/fahren Skateboard|fait/font du skateboard|P|m
rides/ride/riding a motorcycle|fährt/fahren Motorrad|fait/font de la moto|P|m
plays/play/playing the guitar|spielt/spielen Gitarre|joue/jouent de la guitare|P|
plays/play/playing the piano|spielt/spielen Klavier|joue/jouent du piano|P|
plays/play/playing the violin|spielt/spielen Geige|joue/jouent du violon|P|
plays/play/playing the drums|spielt/spielen Schlagzeug|joue/jouent de la batterie|P|
plays/play/playing soccer|spielt/spielen Fußball|joue/jouent au football|P|
plays/play/playing basketball|spielt/spielen Basketball|joue/jouent au basket|P|
plays/play/playing tennis|spielt/spielen Tennis|joue/jouent au tennis|P|
plays/play/playing chess|spielt/spielen Schach|joue/jouent aux échecs|P|
plays/play/playing volleyball|spielt/spielen Volleyball|joue/jouent au volley|P|
takes/take/taking a picture|macht/machen ein Foto|prend/prennent une photo|P|
skis/ski/skiing|fährt/fahren Ski|fait/font du ski|P|m
surfs/surf/surfing|surft/surfen|fait/font du surf|P|
fishes/fish/fishing|angelt/angeln|pêche/pêchent|P|
dives/dive/diving|taucht/tauchen|plonge/plongent|PA|
drives/drive/driving a car|fährt/fahren Auto|conduit/conduisent une voiture|P|m
sweeps/sweep/sweeping the floor|fegt/fegen den Boden|balaie/balaient le sol|P|
gives/give/giving a speech|hält/halten eine Rede|fait/font un discours|P|
eats/eat/eating lunch|isst/essen zu Mittag|déjeune/déjeunent|P|
takes/take/taking a break|macht/machen eine Pause|fait/font une pause|P|
waves/wave/waving|winkt/winken|fait/font signe de la main|P|
jogs/jog/jogging|joggt/joggen|fait/font du jogging|P|m
hikes/hike/hiking|wandert/wandern|fait/font de la randonnée|P|m
sunbathes/sunbathe/sunbathing|sonnt/sonnen sich|bronze/bronzent|P|
reads/read/reading quietly|liest/lesen leise|lit/lisent en silence|P|
shouts/shout/shouting|ruft/rufen laut|crie/crient|P|
plays/play/playing hide-and-seek|spielt/spielen Verstecken|joue/jouent à cache-cache|P|
""",
    transitive=False,
)

STILL = next(v for v in INTRANSITIVE if not v.motion)

# Verbs with an object of one of the tagged kinds (A: an animal, r: a ridable animal).
TRANSITIVE = _verbs(
    """
holds/hold/holding|hält/halten|tient/tiennent|P|h
carries/carry/carrying|trägt/tragen|porte/portent|PA|h
throws/throw/throwing|wirft/werfen|lance/lancent|P|b
catches/catch/catching|fängt/fangen|attrape/attrapent|PA|k
kicks/kick/kicking|tritt/treten|frappe/frappent|P|b
reads/read/reading|liest/lesen|lit/lisent|P|r
eats/eat/eating|isst/essen|mange/mangent|PA|f
drinks/drink/drinking|trinkt/trinken|boit/boivent|P|d
pushes/push/pushing|schiebt/schieben|pousse/poussent|P|v
pulls/pull/pulling|zieht/ziehen|tire/tirent|PA|v
paints/paint/painting|malt/malen|peint/peignent|P|p
builds/build/building|baut/bauen|construit/construisent|P|u
repairs/repair/repairing|repariert/reparieren|répare/réparent|P|x
washes/wash/washing|wäscht/waschen|lave/lavent|P|w
sells/sell/selling|verkauft/verkaufen|vend/vendent|P|s
buys/buy/buying|kauft/kaufen|achète/achètent|P|s
opens/open/opening|öffnet/öffnen|ouvre/ouvrent|P|o
plays/play/playing with|spielt/spielen mit+dat|joue/jouent avec|PA|t
looks/look/looking at|betrachtet/betrachten|regarde/regardent|P|hrp
watches/watch/watching|beobachtet/beobachten|observe/observent|PA|A
feeds/feed/feeding|füttert/füttern|nourrit/nourrissent|P|A
chases/chase/chasing|jagt/jagen|poursuit/poursuivent|A|Ab
cuts/cut/cutting|schneidet/schneiden|coupe/coupent|P|c
rides/ride/riding|reitet/reiten auf+dat|monte/montent|P|R
pets/pet/petting|streichelt/streicheln|caresse/caressent|P|A
hugs/hug/hugging|umarmt/umarmen|serre/serrent dans ses bras|P|A
""",
    transitive=True,
)

# Tags: l a landmark (in front of, behind, next to, near), u under, a along/down,
# t through, x across, i into, M a mass noun.
PLACES = _places("""
street|Straße|f|rue|f|on|auf|dans|ax
road|Landstraße|f|route|f|on|auf|sur|ax
sidewalk|Gehweg|m|trottoir|m|on|auf|sur|a
beach|Strand|m|plage|f|on|an|sur|a
park|Park|m|parc|m|in|in|dans|t
field|Feld|n|champ|m|in|auf|dans|xt
river|Fluss|m|rivière|f|in|in|dans|axi
lake|See|m|lac|m|in|in|dans|ai
ocean|Meer|n|mer|f|in|in|dans|i
pool|Schwimmbecken|n|piscine|f|in|in|dans|i
snow|Schnee|m|neige|f|in|in|dans|tiM
water|Wasser|n|eau|f|in|in|dans|iM
grass|Gras|n|herbe|f|on|in|sur|tM
sand|Sand|m|sable|m|in|in|dans|M
mud|Schlamm|m|boue|f|in|in|dans|iM
stage|Bühne|f|scène|f|on|auf|sur|x
kitchen|Küche|f|cuisine|f|in|in|dans|
garden|Garten|m|jardin|m|in|in|dans|t
market|Markt|m|marché|m|at|auf|à|t
playground|Spielplatz|m|aire de jeux|f|on|auf|sur|x
mountain|Berg|m|montagne|f|on|auf|sur|
hill|Hügel|m|colline|f|on|auf|sur|a
city|Stadt|f|ville|f|in|in|dans|t
square|Platz|m|place|f|in|auf|sur|x
station|Bahnhof|m|gare|f|at|an|à|l
restaurant|Restaurant|n|restaurant|m|in|in|dans|l
store|Laden|m|magasin|m|in|in|dans|l
church|Kirche|f|église|f|in|in|dans|l
building|Gebäude|n|bâtiment|m|in|in|dans|l
house|Haus|n|maison|f|in|in|dans|l
bridge|Brücke|f|pont|m|on|auf|sur|lux
tree|Baum|m|arbre|m|in|auf|dans|lu
fountain|Brunnen|m|fontaine|f|in|in|dans|l
wall|Mauer|f|mur|m|on|auf|sur|la
fence|Zaun|m|clôture|f|on|auf|sur|la
bench|Bank|f|banc|m|on|auf|sur|l
table|Tisch|m|table|f|at|an|à|lu
car|Auto|n|voiture|f|in|in|dans|l
bus|Bus|m|bus|m|on|in|dans|l
train|Zug|m|train|m|on|in|dans|l
boat|Boot|n|bateau|m|in|in|dans|l
window|Fenster|n|fenêtre|f|at|an|à|l
couch|Sofa|n|canapé|m|on|auf|sur|
bed|Bett|n|lit|m|in|in|dans|
forest|Wald|m|forêt|f|in|in|dans|t
crowd|Menge|f|foule|f|in|in|dans|t
corner|Straßenecke|f|coin de la rue|m|on|an|à|
office|Büro|n|bureau|m|in|in|dans|
classroom|Klassenzimmer|n|salle de classe|f|in|in|dans|
library|Bibliothek|f|bibliothèque|f|in|in|dans|l
museum|Museum|n|musée|m|in|in|dans|l
tent|Zelt|n|tente|f|in|in|dans|l
airport|Flughafen|m|aéroport|m|at|an|à|
zoo|Zoo|m|zoo|m|at|in|à|
stadium|Stadion|n|stade|m|in|in|dans|l
rock|Felsen|m|rocher|m|on|auf|sur|lu
statue|Statue|f|statue|f|by|bei|près de|l
""")

# English / German / French, separated by "|".
TIMES = tuple(
    tuple(line.split("|"))
    for line in """
On a sunny day|An einem sonnigen Tag|Par une journée ensoleillée
On a rainy day|An einem regnerischen Tag|Par un jour de pluie
At night|In der Nacht|La nuit
In the morning|Am Morgen|Le matin
In the evening|Am Abend|Le soir
In the afternoon|Am Nachmittag|L'après-midi
In winter|Im Winter|En hiver
In the summer|Im Sommer|En été
During the festival|Während des Festivals|Pendant le festival
After school|Nach der Schule|Après l'école
On Sunday|Am Sonntag|Dimanche
On a cold morning|An einem kalten Morgen|Par un matin froid
Today|Heute|Aujourd'hui
Outside|Draußen|Dehors
At sunset|Bei Sonnenuntergang|Au coucher du soleil
During the parade|Während der Parade|Pendant le défilé
""".strip().splitlines()
)

NAMES = (
    "Anna",
    "Maria",
    "Peter",
    "John",
    "Emma",
    "Paul",
    "Sophie",
    "Lucas",
    "Julia",
    "Thomas",
    "David",
    "Laura",
    "Max",
    "Sarah",
    "Daniel",
    "Lisa",
    "Marco",
    "Nina",
    "Hans",
    "Pierre",
    "Claire",
    "Tom",
    "Elena",
    "Felix",
)
EN_NUMBERS = ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
DE_NUMBERS = ("zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun", "zehn")
FR_NUMBERS = ("deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix")

# Relations to a landmark (German dative): en, de, fr, needs tag.
RELATIONS = (
    ("in front of", "vor", "devant", "l"),
    ("behind", "hinter", "derrière", "l"),
    ("next to", "neben", "à côté de", "l"),
    ("near", "bei", "près de", "l"),
    ("under", "unter", "sous", "u"),
)
# Paths (German accusative; "entlang" follows its noun): en, de, fr, needs tag.
PATHS = (
    ("along", "entlang", "le long de", "a"),
    ("down", "entlang", "le long de", "a"),
    ("through", "durch", "à travers", "t"),
    ("across", "über", "à travers", "x"),
    ("into", "in", "dans", "i"),
)
# Clause joins: en, de (True: the second clause is verb-final), fr.
JOINS = (
    (", and ", ", und ", False, ", et "),
    (" while ", ", während ", True, " pendant que "),
    (", but ", ", aber ", False, ", mais "),
    ("; ", "; ", False, "; "),
)


# --- Scenes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NounPhrase:
    """A determiner (a, the, num, some, several, bare, poss, group, none), adjectives, a noun."""

    noun: Noun
    det: str = "a"
    plural: bool = False
    count: int = 0
    adjs: tuple[Adj, ...] = ()
    owner: str = ""
    age: int = 0
    attire: NounPhrase | None = None
    # How the attire is attached: in (clothes), with (accessories) or wearing (either).
    attire_prep: str = "in"


@dataclass(frozen=True)
class Names:
    """One or two proper names as a subject."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class PlacePhrase:
    """A place with its relation: loc (the place's own preposition), a relation or a path."""

    place: Place
    relation: tuple[str, str, str, str] | None
    path: bool
    det: str
    adj: Adj | None


@dataclass(frozen=True)
class VerbPhrase:
    """A verb with its object and place (both optional)."""

    verb: Verb
    obj: NounPhrase | None
    where: PlacePhrase | None


@dataclass(frozen=True)
class Clause:
    """A subject with one or two coordinated verb phrases; ``progressive``: English -ing."""

    subject: NounPhrase | Names
    vps: tuple[VerbPhrase, ...]
    progressive: bool


@dataclass(frozen=True)
class Triple:
    """One sentence in the three languages."""

    en: str
    de: str
    fr: str

    def text(self, lang: str) -> str:
        """The sentence in ``lang`` (en, de or fr)."""
        return {"en": self.en, "de": self.de, "fr": self.fr}[lang]


# --- English ----------------------------------------------------------------------------------

_EN_CONSONANT_SOUND = ("uni", "use", "one", "eu", "ukulele")
_EN_VOWEL_SOUND = ("hour", "honest", "8", "11-", "18-")


def _en_article(word: str) -> str:
    low = word.lower()
    if low.startswith(_EN_VOWEL_SOUND):
        return "an"
    if low[:1] in "aeiou" and not low.startswith(_EN_CONSONANT_SOUND):
        return "an"
    return "a"


def _en_np(np: NounPhrase) -> str:
    words: list[str] = []
    if np.age:
        words.append(f"{np.age}-year-old")
    words += [a.en for a in sorted(np.adjs, key=lambda a: a.color)]
    words.append(np.noun.en_pl if np.plural else np.noun.en)
    body = " ".join(words)
    if np.det == "a":
        head = "" if np.plural else _en_article(body)
    elif np.det == "the":
        head = "the"
    elif np.det == "num":
        head = EN_NUMBERS[np.count - 2] if np.count <= 10 else str(np.count)
    elif np.det == "group":
        head = f"a group of {np.count}" if np.count else "a group of"
    elif np.det == "poss":
        head = np.owner + "'s"
    elif np.det in ("some", "several"):
        head = np.det
    else:
        head = ""
    text = f"{head} {body}".strip()
    if np.attire is not None:
        text += f" {np.attire_prep} " + _en_np(np.attire)
    return text


def _en_names(names: Names, conj: str) -> str:
    return f" {conj} ".join(names.names)


def _en_place(pp: PlacePhrase) -> str:
    prep = pp.relation[0] if pp.relation else pp.place.en_prep
    np = NounPhrase(pp.place.noun, pp.det, adjs=(pp.adj,) if pp.adj else ())
    return f"{prep} {_en_np(np)}"


def _en_vp(vp: VerbPhrase, form: int) -> str:
    parts = [vp.verb.en[form], vp.verb.en_rest]
    if vp.obj is not None:
        parts.append(_en_np(vp.obj))
    if vp.where is not None:
        parts.append(_en_place(vp.where))
    return " ".join(p for p in parts if p)


def _en_clause(clause: Clause) -> str:
    if isinstance(clause.subject, Names):
        subject, plural = _en_names(clause.subject, "and"), len(clause.subject.names) > 1
    else:
        subject = _en_np(clause.subject)
        plural = clause.subject.plural or clause.subject.det == "group"
    if clause.progressive:
        vps = [_en_vp(vp, 2) for vp in clause.vps]
        return f"{subject} {'are' if plural else 'is'} " + " and ".join(vps)
    return f"{subject} " + " and ".join(_en_vp(vp, 1 if plural else 0) for vp in clause.vps)


# --- German -----------------------------------------------------------------------------------

_DE_DEF = {
    "nom": {"m": "der", "f": "die", "n": "das", "p": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "p": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "p": "den"},
}
_DE_INDEF = {
    "nom": {"m": "ein", "f": "eine", "n": "ein"},
    "acc": {"m": "einen", "f": "eine", "n": "ein"},
    "dat": {"m": "einem", "f": "einer", "n": "einem"},
}
_DE_WEAK = {
    "nom": {"m": "e", "f": "e", "n": "e", "p": "en"},
    "acc": {"m": "en", "f": "e", "n": "e", "p": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "p": "en"},
}
_DE_MIXED = {
    "nom": {"m": "er", "f": "e", "n": "es", "p": "e"},
    "acc": {"m": "en", "f": "e", "n": "es", "p": "e"},
    "dat": {"m": "en", "f": "en", "n": "en", "p": "en"},
}
_DE_STRONG = {
    "nom": {"m": "er", "f": "e", "n": "es", "p": "e"},
    "acc": {"m": "en", "f": "e", "n": "es", "p": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "p": "en"},
}
_DE_CONTRACTIONS = (
    (re.compile(r"\b([Ii])n dem\b"), r"\1m"),
    (re.compile(r"\b([Aa])n dem\b"), r"\1m"),
    (re.compile(r"\b([Bb])ei dem\b"), r"\1eim"),
    (re.compile(r"\b([Ii])n das\b"), r"\1ns"),
)


def _de_adj(adj: str, ending: str) -> str:
    if adj.endswith("!"):
        return adj[:-1]
    if adj.endswith("e"):
        adj = adj[:-1]
    return adj + ending


def _de_noun(noun: Noun, plural: bool, case: str) -> str:
    if plural:
        form = noun.de_pl
        if case == "dat" and not form.endswith(("n", "s")):
            form += "n"
        return form
    if noun.de_weak and case != "nom":
        return noun.de_pl
    return noun.de


def _de_np(np: NounPhrase, case: str) -> str:
    gender = "p" if np.plural else np.noun.de_gender
    if np.det == "group":
        # "eine Gruppe von 12 Kindern": the head is the (feminine) Gruppe.
        inner = NounPhrase(np.noun, "num" if np.count else "bare", True, np.count, np.adjs)
        return f"{_DE_INDEF[case]['f']} Gruppe von {_de_np(inner, 'dat')}"
    if np.det == "a" and not np.plural:
        head, endings = _DE_INDEF[case][gender], _DE_MIXED
    elif np.det == "the":
        head, endings = _DE_DEF[case][gender], _DE_WEAK
    elif np.det == "poss":
        owner = np.owner + ("'" if np.owner.endswith(("s", "x", "z")) else "s")
        head, endings = owner, _DE_MIXED
    elif np.det == "num":
        head = DE_NUMBERS[np.count - 2] if np.count <= 10 else str(np.count)
        endings = _DE_STRONG
    elif np.det == "some":
        head, endings = "einige", _DE_STRONG
    elif np.det == "several":
        head, endings = "mehrere", _DE_STRONG
    else:
        head, endings = "", _DE_STRONG
    ending = endings[case][gender]
    words = [head] if head else []
    if np.age:
        words.append(_de_adj(f"{np.age}-jährig", ending))
    words += [_de_adj(a.de, ending) for a in sorted(np.adjs, key=lambda a: a.color)]
    words.append(_de_noun(np.noun, np.plural, case))
    text = " ".join(words)
    if np.attire is not None:
        text += (" in " if np.attire_prep == "in" else " mit ") + _de_np(np.attire, "dat")
    return text


def _de_place(pp: PlacePhrase) -> str:
    np = NounPhrase(pp.place.noun, pp.det, adjs=(pp.adj,) if pp.adj else ())
    if pp.path and pp.relation is not None:
        prep = pp.relation[1]
        if prep == "entlang":
            return f"{_de_np(np, 'acc')} entlang"
        return f"{prep} {_de_np(np, 'acc')}"
    prep = pp.relation[1] if pp.relation else pp.place.de_prep
    return f"{prep} {_de_np(np, 'dat')}"


def _de_vp(vp: VerbPhrase, plural: bool, final: bool, with_verb: bool = True) -> str:
    rest = [vp.verb.de_rest] if vp.verb.de_rest and not vp.verb.objects else []
    if vp.obj is not None:
        obj = _de_np(vp.obj, vp.verb.de_case)
        rest.append(f"{vp.verb.de_rest} {obj}" if vp.verb.de_rest else obj)
    if vp.where is not None:
        rest.append(_de_place(vp.where))
    verb = vp.verb.de[1 if plural else 0]
    if not with_verb:
        return " ".join(rest)
    return " ".join([*rest, verb] if final else [verb, *rest])


def _de_subject(subject: NounPhrase | Names) -> tuple[str, bool]:
    if isinstance(subject, Names):
        return " und ".join(subject.names), len(subject.names) > 1
    return _de_np(subject, "nom"), subject.plural and subject.det != "group"


def _de_clause(clause: Clause, order: str = "v2") -> str:
    """German word order: ``v2`` (main clause), ``inv`` (after a fronted phrase), ``final``."""
    subject, plural = _de_subject(clause.subject)
    first, *more = clause.vps
    if order == "final":
        vps = [_de_vp(vp, plural, final=True) for vp in clause.vps]
        return f"{subject} " + " und ".join(vps)
    head = _de_vp(first, plural, final=False)
    if order == "inv":
        verb, _, rest = head.partition(" ")
        head = f"{verb} {subject} {rest}".strip()
    else:
        head = f"{subject} {head}"
    return " und ".join([head, *(_de_vp(vp, plural, final=False) for vp in more)])


# --- French -----------------------------------------------------------------------------------

_FR_VOWEL_START = re.compile(
    r"\b([Ll]e|[Ll]a|[Dd]e|[Qq]ue|[Ss]e) (?=[aeiouyéèêàâîôûœAEIOUÉÈÂ]|homme|herbe|hiver)"
)
_FR_CONTRACTIONS = (
    (re.compile(r"\bde le\b"), "du"),
    (re.compile(r"\bde les\b"), "des"),
    (re.compile(r"\bà le\b"), "au"),
    (re.compile(r"\bà les\b"), "aux"),
    (re.compile(r"\bDe le\b"), "Du"),
)
_FR_PREPOSITIONS = ("avec",)
_FR_BEFORE_VOWEL = {"vieux": "vieil", "beau": "bel", "nouveau": "nouvel"}


def _fr_starts_with_vowel(word: str) -> bool:
    return word[:1] in "aeiouyéèêàâîôûœ" or word.startswith(("homme", "herbe", "hiver"))


def _fr_np(np: NounPhrase) -> str:
    noun = np.noun
    feminine = noun.fr_gender == "f"
    index = (2 if np.plural else 0) + (1 if feminine else 0)
    name = noun.fr_pl if np.plural else noun.fr
    before = [a.fr[index] for a in np.adjs if a.fr_before]
    after = [a.fr[index] for a in sorted(np.adjs, key=lambda a: a.color) if not a.fr_before]
    if before and index == 0 and _fr_starts_with_vowel(name):
        before[-1] = _FR_BEFORE_VOWEL.get(before[-1], before[-1])
    if np.det == "group":
        count = (FR_NUMBERS[np.count - 2] if np.count <= 10 else str(np.count)) if np.count else ""
        body = _fr_np(replace(np, det="none"))
        return f"un groupe de {count} {body}"
    if np.det == "a":
        head = "des" if np.plural else ("une" if feminine else "un")
    elif np.det in ("the", "poss"):
        head = "les" if np.plural else ("la" if feminine else "le")
    elif np.det == "num":
        head = FR_NUMBERS[np.count - 2] if np.count <= 10 else str(np.count)
    elif np.det == "some":
        head = "quelques"
    elif np.det == "several":
        head = "plusieurs"
    elif np.det == "bare" and np.plural:
        head = "des"
    elif np.det == "bare":
        head = "de la" if feminine else "de le"
    else:
        head = ""
    words = [head] if head else []
    words += [*before, name, *after]
    if np.age:
        words.append(f"de {np.age} ans")
    if np.det == "poss":
        words.append(f"de {np.owner}")
    text = " ".join(words)
    if np.attire is not None:
        if np.attire_prep == "with":
            text += " avec " + _fr_np(np.attire)
        elif np.attire_prep == "wearing":
            text += " portant " + _fr_np(np.attire)
        else:
            # "en chemise rouge": no article after "en".
            text += " en " + _fr_np(replace(np.attire, det="none"))
    return text


def _fr_place(pp: PlacePhrase) -> str:
    prep = pp.relation[2] if pp.relation else pp.place.fr_prep
    np = NounPhrase(pp.place.noun, pp.det, adjs=(pp.adj,) if pp.adj else ())
    return f"{prep} {_fr_np(np)}"


def _fr_vp(vp: VerbPhrase, plural: bool) -> str:
    parts = [vp.verb.fr[1 if plural else 0]]
    if vp.obj is None:
        parts.append(vp.verb.fr_rest)
    elif vp.verb.fr_rest in _FR_PREPOSITIONS:
        parts += [vp.verb.fr_rest, _fr_np(vp.obj)]
    else:
        # "serre un chien dans ses bras": the rest follows the object.
        parts += [_fr_np(vp.obj), vp.verb.fr_rest]
    if vp.where is not None:
        parts.append(_fr_place(vp.where))
    return " ".join(p for p in parts if p)


def _fr_clause(clause: Clause) -> str:
    if isinstance(clause.subject, Names):
        subject, plural = " et ".join(clause.subject.names), len(clause.subject.names) > 1
    else:
        subject = _fr_np(clause.subject)
        plural = clause.subject.plural and clause.subject.det != "group"
    return f"{subject} " + " et ".join(_fr_vp(vp, plural) for vp in clause.vps)


def _fr_polish(text: str) -> str:
    text = _FR_VOWEL_START.sub(lambda m: m.group(1)[:-1] + "'", text)
    for pattern, replacement in _FR_CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _de_polish(text: str) -> str:
    for pattern, replacement in _DE_CONTRACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _sentence(text: str, end: str = ".") -> str:
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] + end


# --- Random scenes ----------------------------------------------------------------------------


# Syllables of made-up names (people and towns): an open vocabulary, so the tokenizers learn
# pieces below the word and the models learn to copy words they never saw.
SYLLABLES = (
    "an",
    "ar",
    "ash",
    "ba",
    "bel",
    "ber",
    "bo",
    "bru",
    "ca",
    "cel",
    "da",
    "dor",
    "el",
    "en",
    "fa",
    "fen",
    "fio",
    "ga",
    "gan",
    "gri",
    "ha",
    "hel",
    "il",
    "in",
    "is",
    "jo",
    "jor",
    "ka",
    "kel",
    "kim",
    "la",
    "lin",
    "lo",
    "lur",
    "ma",
    "mar",
    "mi",
    "mo",
    "na",
    "nes",
    "no",
    "nor",
    "o",
    "ol",
    "pa",
    "pe",
    "pia",
    "qui",
    "ra",
    "ren",
    "ri",
    "ros",
    "sa",
    "sar",
    "sha",
    "ta",
    "tas",
    "ti",
    "tor",
    "u",
    "ul",
    "va",
    "vel",
    "vin",
    "wa",
    "wen",
    "ya",
    "yo",
    "za",
    "zel",
    "zo",
)


def _made_up_name(rng: random.Random) -> str:
    count = rng.choice((2, 2, 3))
    return "".join(rng.choice(SYLLABLES) for _ in range(count)).capitalize()


def _name(rng: random.Random) -> str:
    """A common first name, or (half the time) a made-up one."""
    return rng.choice(NAMES) if rng.random() < 0.5 else _made_up_name(rng)


def _pick_adjs(
    rng: random.Random, pool: tuple[Adj, ...], colors: tuple[Adj, ...] = ()
) -> tuple[Adj, ...]:
    roll = rng.random()
    if roll < 0.5:
        return ()
    if colors and roll < 0.7:
        return (rng.choice(colors),)
    first = rng.choice(pool)
    if colors and roll > 0.88:
        return (first, rng.choice(colors))
    return (first,)


def _subject(rng: random.Random) -> tuple[NounPhrase | Names, str]:
    """A subject and its kind (P: people, A: animals)."""
    roll = rng.random()
    if roll < 0.07:
        count = 1 if rng.random() < 0.6 else 2
        names = [_name(rng) for _ in range(count)]
        if len(set(names)) < count:
            names = names[:1]
        return Names(tuple(names)), "P"
    if roll < 0.12:
        noun = rng.choice([p for p in PEOPLE if p.en not in ("couple", "family")])
        count = rng.choice((0, 0, rng.randint(3, 10), rng.randint(11, 30)))
        return NounPhrase(noun, "group", True, count, _pick_adjs(rng, PERSON_ADJS)), "P"
    animal = rng.random() < 0.28
    noun = rng.choice(ANIMALS if animal else PEOPLE)
    roll = rng.random()
    det, plural, count, owner = "a", False, 0, ""
    if roll < 0.5:
        pass
    elif roll < 0.62:
        det = "the"
    elif roll < 0.8:
        det, plural, count = "num", True, rng.randint(2, 6)
    elif roll < 0.88:
        det, plural = rng.choice(("some", "several")), True
    elif roll < 0.94:
        det, owner = "poss", _name(rng)
    else:
        det, plural = "bare", True
    adjs = _pick_adjs(rng, ANIMAL_ADJS, ANIMAL_COLORS) if animal else _pick_adjs(rng, PERSON_ADJS)
    # No age on a bare plural: a sentence never starts with a digit.
    age = rng.randint(2, 12) if "c" in noun.tags and rng.random() < 0.15 else 0
    if det == "bare":
        age = 0
    attire, attire_prep = None, "in"
    if not animal and rng.random() < 0.35:
        accessory = rng.random() < 0.4
        attire_prep = "with" if accessory else "in"
        if rng.random() < 0.3:
            attire_prep = "wearing"
        worn = rng.choice(ACCESSORIES if accessory else CLOTHES)
        color = (rng.choice(COLORS),) if rng.random() < 0.8 else ()
        attire = NounPhrase(worn, "a", plural, adjs=color)
    phrase = NounPhrase(noun, det, plural, count, adjs, owner, age, attire, attire_prep)
    return phrase, "A" if animal else "P"


def _object(rng: random.Random, verb: Verb) -> NounPhrase:
    if "A" in verb.objects and (verb.objects == "A" or rng.random() < 0.6):
        pool: tuple[Noun, ...] = ANIMALS
        adj_pool = ANIMAL_ADJS
    elif verb.objects == "R":
        pool, adj_pool = tuple(a for a in ANIMALS if "r" in a.tags), ANIMAL_ADJS
    else:
        pool = tuple(t for t in THINGS if set(t.tags) & set(verb.objects.replace("A", "")))
        adj_pool = THING_ADJS
    noun = rng.choice(pool)
    if "M" in noun.tags:
        return NounPhrase(noun, "bare")
    roll = rng.random()
    det, plural, count = "a", False, 0
    if roll < 0.25:
        det = "the"
    elif roll < 0.35:
        det, plural, count = "num", True, rng.randint(2, 5)
    elif roll < 0.4:
        det, plural = "some", True
    colors = ANIMAL_COLORS if adj_pool is ANIMAL_ADJS else COLORS
    return NounPhrase(noun, det, plural, count, _pick_adjs(rng, adj_pool, colors))


def _where(rng: random.Random, verb: Verb) -> PlacePhrase | None:
    if rng.random() < 0.22:
        return None
    roll = rng.random()
    if verb.motion and roll < 0.45:
        path = rng.choice(PATHS)
        place = rng.choice([p for p in PLACES if path[3] in p.tags])
        return PlacePhrase(place, path, True, "the", None)
    if roll < 0.7:
        relation = rng.choice(RELATIONS)
        place = rng.choice([p for p in PLACES if relation[3] in p.tags])
        det = "a" if rng.random() < 0.35 else "the"
        adj = rng.choice(PLACE_ADJS) if rng.random() < 0.2 else None
        return PlacePhrase(place, relation, False, det, adj)
    if roll > 0.94:
        # A town: "in Velmora" / "in Velmora" / "à Velmora".
        town = _made_up_name(rng)
        noun = Noun(town, town, town, town, "n", False, town, town, "f", "T")
        return PlacePhrase(Place(noun, "in", "in", "à", "T"), None, False, "none", None)
    place = rng.choice(PLACES)
    if "M" in place.tags:
        return PlacePhrase(place, None, False, "the", None)
    det = "a" if rng.random() < 0.3 else "the"
    adj = rng.choice(PLACE_ADJS) if rng.random() < 0.25 else None
    return PlacePhrase(place, None, False, det, adj)


def _static_where(rng: random.Random) -> PlacePhrase:
    """A place that is not a path (for captions and "there is")."""
    where = _where(rng, STILL)
    while where is None:
        where = _where(rng, STILL)
    return where


def _verb_phrase(rng: random.Random, kind: str, place: bool = True) -> VerbPhrase:
    if rng.random() < 0.42:
        verb = rng.choice([v for v in TRANSITIVE if kind in v.kinds])
        obj: NounPhrase | None = _object(rng, verb)
    else:
        verb = rng.choice([v for v in INTRANSITIVE if kind in v.kinds])
        obj = None
    return VerbPhrase(verb, obj, _where(rng, verb) if place else None)


def _clause(rng: random.Random) -> Clause:
    subject, kind = _subject(rng)
    first = _verb_phrase(rng, kind)
    vps = [first]
    if rng.random() < 0.1:
        second = _verb_phrase(rng, kind, place=first.where is None)
        if second.verb.en != first.verb.en:
            vps.append(second)
    return Clause(subject, tuple(vps), rng.random() < 0.65)


def _caption(rng: random.Random) -> Triple:
    """A noun-phrase caption: "A black dog on the beach." / "A man with a red umbrella."."""
    subject, _ = _subject(rng)
    while isinstance(subject, Names):
        subject, _ = _subject(rng)
    if rng.random() < 0.3:
        verb = rng.choice([v for v in TRANSITIVE if v.objects == "h"])
        thing = _object(rng, verb)
        en = f"{_en_np(subject)} with {_en_np(thing)}"
        de = f"{_de_np(subject, 'nom')} mit {_de_np(thing, 'dat')}"
        fr = f"{_fr_np(subject)} avec {_fr_np(thing)}"
        return _triple(en, de, fr)
    where = _static_where(rng)
    en = f"{_en_np(subject)} {_en_place(where)}"
    de = f"{_de_np(subject, 'nom')} {_de_place(where)}"
    fr = f"{_fr_np(subject)} {_fr_place(where)}"
    return _triple(en, de, fr)


def _triple(en: str, de: str, fr: str, end: str = ".") -> Triple:
    return Triple(
        _sentence(en, end), _sentence(_de_polish(de), end), _fr_polish(_sentence(fr, end))
    )


def scene(rng: random.Random) -> Triple:
    """One random sentence in the three languages (the grammar's start symbol)."""
    roll = rng.random()
    if roll < 0.5:
        clause = _clause(rng)
        return _triple(_en_clause(clause), _de_clause(clause), _fr_clause(clause))
    if roll < 0.62:
        clause = _clause(rng)
        en_time, de_time, fr_time = rng.choice(TIMES)
        return _triple(
            f"{en_time}, {_en_clause(clause)}",
            f"{de_time} {_de_clause(clause, 'inv')}",
            f"{fr_time}, {_fr_clause(clause)}",
        )
    if roll < 0.74:
        one, two = _clause(rng), _clause(rng)
        en_join, de_join, de_final, fr_join = rng.choice(JOINS)
        return _triple(
            _en_clause(one) + en_join + _en_clause(two),
            _de_clause(one) + de_join + _de_clause(two, "final" if de_final else "v2"),
            _fr_clause(one) + fr_join + _fr_clause(two),
        )
    if roll < 0.86:
        return _caption(rng)
    if roll < 0.94:
        subject, _ = _subject(rng)
        while isinstance(subject, Names) or subject.det in ("poss", "group"):
            subject, _ = _subject(rng)
        where = _static_where(rng)
        plural = subject.plural
        de_where = _de_place(where)
        return _triple(
            f"there {'are' if plural else 'is'} {_en_np(subject)} {_en_place(where)}",
            f"{de_where[:1].upper()}{de_where[1:]} {'sind' if plural else 'ist'} "
            f"{_de_np(subject, 'nom')}",
            f"il y a {_fr_np(subject)} {_fr_place(where)}",
        )
    clause = _clause(rng)
    return _triple(
        f"look, {_en_clause(clause)}",
        f"schau, {_de_clause(clause)}",
        f"regarde, {_fr_clause(clause)}",
        end="!",
    )


# --- Splits -----------------------------------------------------------------------------------


def _stream(seed: int, count: int, exclude: frozenset[str] = frozenset()) -> tuple[Triple, ...]:
    """``count`` triples from ``seed``, none repeating (in any language) or in ``exclude``."""
    rng = random.Random(seed)
    seen = set(exclude)
    out: list[Triple] = []
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > 20 * count + 1000:
            raise CorpusError(f"the grammar ran out of new sentences after {len(out)}")
        triple = scene(rng)
        texts = (triple.en, triple.de, triple.fr)
        if any(text in seen for text in texts):
            continue
        seen.update(texts)
        out.append(triple)
    return tuple(out)


@lru_cache(maxsize=4)
def _val_pool(seed: int) -> tuple[Triple, ...]:
    return _stream(2 * seed + 1, VAL_SIZE)


@lru_cache(maxsize=8)
def _train(seed: int, count: int) -> tuple[Triple, ...]:
    held_out = frozenset(text for t in _val_pool(seed) for text in (t.en, t.de, t.fr))
    return _stream(2 * seed, count, held_out)


def triples(split: str, count: int, seed: int = SEED) -> list[Triple]:
    """The first ``count`` aligned triples of ``split`` ("train" or "val", at most
    ``VAL_SIZE``); a longer request starts with the same triples as a shorter one."""
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    if count < 0:
        raise CorpusError(f"count must be >= 0, not {count}")
    if split == "val":
        if count > VAL_SIZE:
            raise CorpusError(f"the val split has {VAL_SIZE} sentences, not {count}")
        return list(_val_pool(seed)[:count])
    # Rounded up so that nearby counts share one cached stream.
    return list(_train(seed, max(1000, -(-count // 1000) * 1000))[:count])


def sentences(lang: str, split: str, count: int, seed: int = SEED) -> list[str]:
    """The first ``count`` generated sentences of ``lang`` (en, de, fr) in ``split``."""
    if lang not in LANGUAGES:
        raise CorpusError(f"unknown language {lang!r}; choose from {', '.join(LANGUAGES)}")
    return [t.text(lang) for t in triples(split, count, seed)]
