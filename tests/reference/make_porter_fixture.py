#!/usr/bin/env python3
"""Writes tests/fixtures/golden/porter.json: NLTK's Porter stemmer (nltk.stem.porter.PorterStemmer()
in its default NLTK_EXTENSIONS mode, the stemmer Google's rouge_score applies) on about 4000
distinct words, for Hone's port of it (crates/hone-engine/src/metrics/porter.rs).

The words are a hand list that exercises every rule and branch of the stemmer (each step's
suffixes, with conditions that hold and that fail; NLTK's table of irregular forms; its -ies /
-ied rules on four-letter words, y -> i only after a consonant, -alli first, -fulli, -logi, the
two-letter *o condition, words of one or two letters; runs of 'y'; digits), then the distinct
tokens of real text, in order of first appearance, until there are 4000: SAMSum dialogues and
summaries (validation.jsonl, then test.jsonl), then SST-2 sentences (train.tsv) if needed.
Tokens are cut as rouge_score cuts them (lower case, split at every run of characters outside
[a-z0-9]), short ones and numbers included, although rouge_score only stems tokens longer than
3 characters: the port must agree with NLTK on any [a-z0-9] token.

Output: {"nltk": <version>, "words": [[word, stem], ...]}, sorted by word, one pair per line.

Usage: python make_porter_fixture.py --datasets ../shared/datasets --out tests/fixtures
"""
import argparse
import json
import os
import re

import nltk
from nltk.stem import porter

TARGET = 4000

# Every rule of every step, with its condition true and false, plus NLTK's own branches.
HAND = """
sky skies dying lying tying news innings inning outings outing cannings canning howe proceed
exceed succeed proceeds exceeded succeeding proceeding newsy skying
a i s y e is as at be by my ow ox aw ay oy ed es ss ie ys yy 1 10 3d 99 ab
ies ied eed ing sses ses iess abc yyy ayy yay
caresses ponies ties dies lies pies flies cries skis caress cats boss gas this his us bus
glasses addresses series species stories cities agencies
died tied lied spied cried fried tried dried applied studied
agreed feed need bleed freed speed breed weed indeed guaranteed disagreed
plastered bled motoring sing conflated troubled sized hopping tanned falling hissing fizzed
failing filing happening owed bowed boxed toyed played seeing fixing bed red shed sled fled
king thing string ring bring sting ageing aging owing axing using aching eying upping
hoped hopped rated rotated enabled dabbled dazzled buzzed fussed rolled filled missed
sizing rising writing biting getting sitting planned stopped begged robbed
happy sky enjoy by spy fly try cry say toy boy syzygy yes day ey soy shy sly dry
happily easily busily lazily crazy lazy ivy oy ay guy buy pay
relational conditional rational valenci hesitanci digitizer conformabli radicalli differentli
vileli analogousli vietnamization predication operator feudalism decisiveness hopefulness
callousness formaliti sensitiviti sensibiliti hopefulli archaeologi geologi theologi
philologi biologi analogi
finally really ideally generally basically totally usually actually especially naturally
generalization civilization organization organizational emotional national international
sensational additional traditional occasional fluency frequency urgency tendency efficiency
agency relevancy pregnancy vacancy fertilizer organizer atomizer possibly probably horribly
humbly nobly ably gently evidently presently currently apparently recently rarely namely
entirely merely timely barely previously obviously seriously generously anxiously variously
nation station vocation relation creation ration creator indicator alligator realism
socialism capitalism massiveness effectiveness usefulness carefulness helpfulness nervousness
seriousness reality mentality vitality brutality activity creativity festivity ability
stability possibility responsibility mobility beautifully carefully woefully truthfully
theology biology ecology apology analogy etymology trilogy geology ology logy
triplicate formative formalize electriciti electrical hopeful goodness duplicate communicate
authenticate relative negative native creative talkative normalize finalize realize
electricity publicity simplicity elasticity ethical logical musical critical radical useful
careful awful peaceful kindness darkness happiness business witness fulness ness ful
revival allowance inference airliner gyroscopic adjustable defensible irritant replacement
adjustment dependent adoption homologou communism activate angulariti homologous effective
bowdlerize several animal signal general arrival balance performance difference science
silence computer teacher paper water manner music magic public graphic table comfortable
capable horrible visible possible elephant important giant element movement statement moment
comment cement agreement parent student different extent percent opinion religion union
million action tension mention question onion champion position vision decision discussion
session thou you bayou caribou tourism criticism racism prism state private senate debate
estimate climate chocolate amity unity famous nervous various previous dangerous massive
active passive size prize organize seize recognize
probate rate cease controll roll control ball call fall install sell tell well stall hole
wire fire create note more sure done care hope file love wave axe owe eye ease reliable
mile smile while little bottle kettle recall fulfill skill thrill
communism communicating commune generous generously relate relativity
1990s 2000s 80s 2nd 3rd 4th 1st 21st 100s 3ds 10am 7pm abc123 x2 2x 0 00 007 42nd
yyyy sayyy heyyy yayyy ayyy yyyyying buyyy okayyy yays yeyy
"""


def tokens(text):
    """rouge_score's tokenize.tokenize without the stemmer and the length filter."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def corpus_texts(datasets):
    for name in ("validation.jsonl", "test.jsonl"):
        with open(os.path.join(datasets, "samsum", name), encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                yield row["context"]
                yield row["response"]
    with open(os.path.join(datasets, "sst2", "train.tsv"), encoding="utf-8") as f:
        next(f)
        for line in f:
            yield line.split("\t")[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default=os.path.join(os.path.dirname(__file__),
                                                       "../../../shared/datasets"))
    ap.add_argument("--out", required=True, help="the fixtures folder (writes golden/porter.json)")
    args = ap.parse_args()

    words = dict.fromkeys(HAND.split())
    for text in corpus_texts(args.datasets):
        for t in tokens(text):
            if len(words) >= TARGET:
                break
            words.setdefault(t)
        if len(words) >= TARGET:
            break

    stemmer = porter.PorterStemmer()
    pairs = sorted((w, stemmer.stem(w)) for w in words)
    path = os.path.join(args.out, "golden", "porter.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"nltk": %s, "words": [\n' % json.dumps(nltk.__version__))
        f.write(",\n".join(json.dumps(p) for p in pairs))
        f.write("\n]}\n")
    changed = sum(w != s for w, s in pairs)
    print(f"wrote {path}: {len(pairs)} words ({changed} changed by the stemmer)")


if __name__ == "__main__":
    main()
