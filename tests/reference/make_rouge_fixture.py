#!/usr/bin/env python3
"""Writes tests/fixtures/golden/rouge.json: Google's rouge_score (0.1.2, the package the
`evaluate` ROUGE metric wraps) on about forty (prediction, reference) pairs, for Hone's ROUGE.

The pairs start from real SAMSum summaries (validation.jsonl, written by linguists) and perturb
them the ways model outputs differ from references: words dropped, swapped, reversed,
duplicated; case changes; punctuation stripped or added; numbers written as digits or words;
hyphens and apostrophes split or joined; non-ASCII letters (rouge_score lower-cases, then
replaces every character outside [a-z0-9] by a space, so "café" is "caf" and "Müller" is "m
ller"), Unicode case mappings ("İ" lower-cases to "i" and a combining dot, "ẞ" to "ß") and
full-width letters; empty prediction, empty reference, both empty, only punctuation or new
lines; multi-sentence texts with sentences on lines of their own ("\\n" is what rougeLsum splits
on), reordered, merged onto one line, with blank lines and "\\r\\n"; small texts where
rougeLsum's summary-level LCS depends on which LCS is backtracked and on its per-token hit caps;
long runs of one repeated word and repeated n-grams (clipped counts); and words that exercise
NLTK's Porter stemmer in its default NLTK_EXTENSIONS mode (rouge_score only stems tokens longer
than 3 characters).

For each pair, with RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"]) and
use_stemmer=False ("plain") and True ("stemmed"): [precision, recall, fmeasure] per type, from
`scorer.score(reference, prediction)` (the target comes first). Also rouge_score's tokenizer
output for the prediction and the reference, without and with the stemmer ("tokens_plain",
"tokens_stemmed", each {"prediction": [...], "reference": [...]}), so a tokenizer or stemmer
bug shows apart from the scoring. Each pair has a "name" saying what was done.

Usage: python make_rouge_fixture.py --samsum ../shared/datasets/samsum --out tests/fixtures
"""
import argparse
import json
import os
import random
import re

from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]


def summaries(samsum_dir, n=40):
    with open(os.path.join(samsum_dir, "validation.jsonl"), encoding="utf-8") as f:
        return [json.loads(line)["response"] for _, line in zip(range(n), f)]


def sentences(text):
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def lines(text):
    return "\n".join(sentences(text))


def drop_every(text, k):
    words = text.split()
    return " ".join(w for i, w in enumerate(words) if i % k != k - 1)


def swap_adjacent(text):
    words = text.split()
    for i in range(0, len(words) - 1, 2):
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def duplicate_some(text, seed):
    rng = random.Random(seed)
    out = []
    for w in text.split():
        out.append(w)
        if rng.random() < 0.3:
            out.append(w)
    return " ".join(out)


def shuffled_words(text, seed):
    words = text.split()
    random.Random(seed).shuffle(words)
    return " ".join(words)


def strip_punctuation(text):
    return re.sub(r"[^\w\s]", "", text)


STEM_PRED = ("running runners ran easily agreed dying lying skies news generously happily "
             "conditional relational electrical hopefulness goodness formality sensitivity "
             "adjustable replacement adoption communism activate effective bowdlerize ponies "
             "caresses ties cries cats flies dies feed meeting meetings generalization organizer")
STEM_REF = ("run runner runs easy agree die lie sky news generous happy condition relate "
            "electric hopeful good formal sensitive adjust replace adopt communist active "
            "effect bowdler pony caress tie cry cat fly died fed meet meets general organize")


def pairs(s):
    """(name, prediction, reference) triples; s are SAMSum validation summaries."""
    long_text = " ".join(s[i] for i in (0, 9, 13, 25, 30))
    long_sents = sentences(long_text)
    return [
        ("identical", s[3], s[3]),
        ("identical, sentences on lines", lines(s[1]), lines(s[1])),
        ("every third word dropped", drop_every(s[0], 3), s[0]),
        ("first half dropped", " ".join(s[4].split()[len(s[4].split()) // 2:]), s[4]),
        ("adjacent words swapped", swap_adjacent(s[16]), s[16]),
        ("words reversed", " ".join(reversed(s[10].split())), s[10]),
        ("words shuffled", shuffled_words(s[39], 7), s[39]),
        ("some words duplicated", duplicate_some(s[12], 3), s[12]),
        ("upper case", s[22].upper(), s[22]),
        ("title case, punctuation stripped", strip_punctuation(s[17]).title(), s[17]),
        ("punctuation added and split", "Tom ' s new place... is in Fiesole!!! Luis, and Marion "
         "-- has been there?!", s[7]),
        ("numbers as words", "Jane made a nine pm reservation for six people tonight at "
         "Vegano Resto.", s[8]),
        ("numbers with separators", "Nancy's working in Texas, 1,200 miles away; she's coming "
         "home in 6.5 weeks, with 3 other Brits and 10000 pounds.",
         "Nancy is working in Texas, 1200 miles away. She is coming home in 6 weeks with 3 "
         "other Brits and 10,000 pounds."),
        ("apostrophes expanded", "Megan need not buy milk and cereals. They are in the drawer "
         "next to the fridge.", s[5]),
        ("hyphens and apostrophes", "Sophie still hasnt found it despite double-checking "
         "pockets and hand-bags twice; it's well-known she's lost it.",
         "Sophie still hasn't found it despite double checking pockets and handbags twice. It "
         "is well known she has lost it."),
        ("accented letters in prediction", "Hayl\u00e9e can't find the coco\u00f1ut milk "
         "yogh\u00fcrt.", s[11]),
        ("accented letters on both sides", "Caf\u00e9 M\u00fcller in Z\u00fcrich is na\u00efve "
         "about the r\u00e9sum\u00e9.", "Cafe Mueller in Zurich is naive about the resume."),
        ("unicode case and full-width", "\u0130STANBUL \u00c9COLE Stra\u00dfe \u1e9e "
         "\uff21\uff22\uff23 abc \u0663 3 \u00c5ngstr\u00f6m",
         "istanbul ecole strasse abc 3 angstrom"),
        ("empty prediction", "", s[2]),
        ("empty reference", s[2], ""),
        ("both empty", "", ""),
        ("prediction only punctuation", "  ...  !!\n?? -- ", s[13]),
        ("prediction only new lines", "\n\n\n", s[27]),
        ("sentences reordered on lines", "\n".join(reversed(sentences(s[13]))), lines(s[13])),
        ("sentences reordered, three", "\n".join(reversed(sentences(s[25]))), lines(s[25])),
        ("one line against lines", s[26], lines(s[26])),
        ("lines against one line", lines(s[26]), s[26]),
        ("blank lines and CRLF", "\n" + "\r\n\n".join(sentences(s[28])) + "\n\n",
         lines(s[28])),
        ("extra sentence sharing words", lines(s[30]) + "\nToby will pick Theo up on Friday "
         "at 7 am and Theo will join.", lines(s[30])),
        ("same word in several sentences", "Brandon is late.\nBrandon is late again.\nClara is "
         "late.", lines(s[31])),
        ("one word repeated", " ".join(["the"] * 60), s[0]),
        ("summary repeated", " ".join([s[20]] * 5), s[20]),
        ("bigram counts clipped", "a b a b a b a b c", "a b a b c c a"),
        # Summary-level LCS: which LCS a sentence pair backtracks to (ties) and the union over
        # candidate lines, with hits capped by each token's count on either side.
        ("rougeLsum ties", "cat the mat on\nthe sat cat\non the", "the cat sat\non the mat"),
        ("rougeLsum repeated tokens", "a a b\nb a a\na", "a b a\na a b b"),
        ("another summary", s[34], s[35]),
        ("paraphrase", "Chad sent Brennen a photo he thought was funny, but Brennen did not "
         "think so.", s[23]),
        ("single word prediction", "Amanda", s[28]),
        ("single word both", "Amanda", "amanda!"),
        ("reference plus garbage", s[19] + " xyz qqq 123 the the of", s[19]),
        ("first sentence only", sentences(s[24])[0], lines(s[24])),
        ("tabs and runs of spaces", "Taylor\twants  to   meet\t\tIsabel's boyfriend\n but she "
         "has never had any.", s[29]),
        ("words moved across lines", "Sophie is waiting for a client.\nWho is late she will "
         "meet Gwen later.", lines(s[37])),
        ("stemmer words", STEM_PRED, STEM_REF),
        ("stemmer words reversed roles", STEM_REF, STEM_PRED),
        ("numbers and short words", "1990s 2000s 3rd 4th was has sky skies its it's ran run",
         "1990 2000 3 4 were had skies sky it is running runs"),
        ("long, sentences shuffled", "\n".join(random.Random(5).sample(long_sents,
                                                                      len(long_sents))),
         "\n".join(long_sents)),
    ]


def triple(score):
    return [score.precision, score.recall, score.fmeasure]


def record(name, prediction, reference, plain, stemmed, stemmer):
    return {
        "name": name,
        "prediction": prediction,
        "reference": reference,
        "plain": {t: triple(v) for t, v in plain.score(reference, prediction).items()},
        "stemmed": {t: triple(v) for t, v in stemmed.score(reference, prediction).items()},
        "tokens_plain": {"prediction": tokenize.tokenize(prediction, None),
                         "reference": tokenize.tokenize(reference, None)},
        "tokens_stemmed": {"prediction": tokenize.tokenize(prediction, stemmer),
                           "reference": tokenize.tokenize(reference, stemmer)},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--samsum", default=os.path.join(os.path.dirname(__file__),
                                                     "../../../shared/datasets/samsum"))
    ap.add_argument("--out", required=True, help="the fixtures folder (writes golden/rouge.json)")
    args = ap.parse_args()
    plain = rouge_scorer.RougeScorer(TYPES, use_stemmer=False)
    stemmed = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)
    stemmer = porter.PorterStemmer()  # what DefaultTokenizer(use_stemmer=True) uses
    rows = [record(name, p, r, plain, stemmed, stemmer)
            for name, p, r in pairs(summaries(args.samsum))]
    assert len({r["name"] for r in rows}) == len(rows)
    path = os.path.join(args.out, "golden", "rouge.json")
    # One pair a line: readable diffs, small file.
    body = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in rows)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f'{{"rouge_score": "0.1.2", "types": {json.dumps(TYPES)},\n')
        f.write(f' "pairs": [\n{body}\n]}}\n')
    print(f"wrote {path}: {len(rows)} pairs, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
