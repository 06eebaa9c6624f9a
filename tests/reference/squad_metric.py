#!/usr/bin/env python3
"""The metrics Hone's question-answering and multiple-choice evaluations are checked against, and
the golden cases they write to tests/fixtures/golden/metrics.json.

SQuAD v1.1: normalize_answer, f1_score, exact_match_score and metric_max_over_ground_truths are
copied unchanged from the official evaluation script (evaluate-v1.1.py): lower case, ASCII
punctuation (string.punctuation) removed, the articles a/an/the removed as whole words (Python's
Unicode-aware `\\b`), whitespace collapsed (`str.split()`); F1 over tokens with multiplicity; the
best over the gold answers. `evaluate` is the official one but returns fractions (0-1), not
percent.

MAP@k as in the Kaggle LLM Science Exam evaluation: for each question, the options ranked by
descending score (a stable sort: ties to the lower option index first), sum over the first k
ranks of P(rank) x rel(rank), a correct label counted once; with one right option that is
1/rank when it is within the top k, else 0; the mean over questions.

metrics.json: {"squad": [{"prediction", "answers", "exact_match" (0/1), "f1"}...],
"squad_total": {"exact_match", "f1"} (means, fractions), "map": [{"scores", "answer",
"ranking", "map_at_1", "map_at_3", "map_at_5"}...], "map_total": {"map_at_1", "map_at_3",
"map_at_5"}}.

Usage: squad_metric.py [--out tests/fixtures/golden/metrics.json]
"""
import argparse
import json
import os
import re
import string
import sys
from collections import Counter


# --- SQuAD v1.1 official evaluation (evaluate-v1.1.py), unchanged ---

def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""

    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)


def evaluate(dataset, predictions):
    """The official evaluate(), as fractions: dataset is SQuAD's "data" list, predictions
    {question id: answer text}; a question without a prediction scores 0."""
    f1 = exact_match = total = 0
    for article in dataset:
        for paragraph in article['paragraphs']:
            for qa in paragraph['qas']:
                total += 1
                if qa['id'] not in predictions:
                    message = 'Unanswered question ' + qa['id'] + \
                              ' will receive score 0.'
                    print(message, file=sys.stderr)
                    continue
                ground_truths = list(map(lambda x: x['text'], qa['answers']))
                prediction = predictions[qa['id']]
                exact_match += metric_max_over_ground_truths(
                    exact_match_score, prediction, ground_truths)
                f1 += metric_max_over_ground_truths(
                    f1_score, prediction, ground_truths)

    exact_match = 1.0 * exact_match / total
    f1 = 1.0 * f1 / total

    return {'exact_match': exact_match, 'f1': f1}


# --- Kaggle MAP@k ---

def ranking(scores):
    """Option indices by descending score; ties keep the lower index first (stable sort)."""
    return sorted(range(len(scores)), key=lambda j: -scores[j])


def map_at_k(rankings, answers, k):
    """Kaggle's MAP@k: mean over questions of sum_{i<=k} P(i) rel(i), each label scored once."""
    total = 0.0
    for ranked, answer in zip(rankings, answers):
        hits, scored = 0, set()
        for i, label in enumerate(ranked[:k]):
            if label == answer and label not in scored:
                hits += 1
                scored.add(label)
                total += hits / (i + 1)
    return total / len(rankings)


# --- golden cases ---

SQUAD_CASES = [
    ("Denver Broncos", ["Denver Broncos"]),
    ("the Denver Broncos", ["Denver Broncos"]),  # article
    ("Denver Broncos.", ["denver broncos"]),  # punctuation, case
    ("  Denver \t Broncos\n", ["Denver Broncos"]),  # whitespace
    ("Super\u00a0Bowl\u2009 50", ["Super Bowl 50"]),  # no-break and thin spaces are whitespace
    ("Broncos", ["Denver Broncos"]),  # partial: P 1, R 1/2
    ("Denver Broncos won", ["Denver Broncos"]),  # partial: P 2/3, R 1
    ("Santa Clara", ["Levi's Stadium", "Santa Clara, California", "Santa Clara"]),  # several golds
    ("Santa Clara stadium", ["Levi's Stadium", "Santa Clara"]),  # best F1 from the second gold
    ("", ["Denver"]),  # empty prediction
    ("the", ["a"]),  # both empty after normalisation: EM 1, F1 0
    ("", ["."]),  # empty prediction, gold empty after normalisation
    ("Frédéric Chopin", ["frédéric chopin"]),  # unicode letters
    ("ÉCOLE NORMALE", ["école normale"]),  # unicode upper case
    ("\u201cVenite Ad Me Omnes\u201d", ["Venite Ad Me Omnes"]),  # curly quotes are not ASCII punctuation
    ("1854\u20141856", ["1854\u20131856"]),  # em dash vs en dash: kept, different
    ("the\u2014end", ["\u2014end"]),  # an article before a dash is a whole word
    ("the école", ["école"]),  # article before a non-ASCII word
    ("aé", ["é"]),  # `a` inside a word (é is a word character): kept
    ("a1 and an_b", ["1 and b"]),  # a1 kept (digit), an_b: underscore removed first -> anb
    ("1,000", ["1000"]),  # numbers: punctuation removed inside
    ("$5.5 million", ["55 million"]),
    ("state-of-the-art", ["state of the art"]),  # hyphen removed without a space
    ("U.S. Army", ["US army"]),
    ("Levi's Stadium", ["Levis Stadium"]),  # apostrophe
    ("A Day", ["day"]),  # capital article
    ("the the the cat cat", ["cat"]),  # repeated tokens: counted with multiplicity
    ("new york new york", ["New York", "York"]),
    ("theatre", ["atre"]),  # `the` inside a word: kept
    ("ΟΔΟΣ", ["οδοσ"]),  # Greek final sigma: lower() gives ς, not σ
    ("STRASSE", ["straße"]),  # lower() does not fold ß
    ("東京。", ["東京"]),  # CJK full stop is not ASCII punctuation
]

MAP_CASES = [
    ([2.0, 1.0, 0.5, -1.0], 0),  # right option first
    ([2.0, 1.0, 0.5, -1.0], 1),  # second
    ([2.0, 1.0, 0.5, -1.0], 2),  # third
    ([2.0, 1.0, 0.5, -1.0], 3),  # fourth
    ([0.1, 0.4, 0.3, 0.2, 0.9], 0),  # five options, right one last
    ([0.1, 0.4, 0.3, 0.2, 0.9], 2),  # five options, third
    ([0.5, 0.5, 0.2, 0.1], 1),  # tie for first: the lower index ranks first
    ([0.5, 0.5, 0.2, 0.1], 0),
    ([0.9, 0.1, 0.3, 0.3], 3),  # tie for second: index 2 before 3
    ([0.0, 0.0, 0.0, 0.0, 0.0], 4),  # all tied: rank 5
    ([0.0, 0.0, 0.0, 0.0, 0.0], 2),  # all tied: rank 3
    ([-3.25, -1.5, -7.0, -1.5, -2.0], 3),  # negative logits, tie: rank 2
]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "golden", "metrics.json"))
    args = ap.parse_args()

    squad = []
    for prediction, answers in SQUAD_CASES:
        squad.append({"prediction": prediction, "answers": answers,
                      "exact_match": int(metric_max_over_ground_truths(exact_match_score, prediction, answers)),
                      "f1": float(metric_max_over_ground_truths(f1_score, prediction, answers))})
    n = len(squad)
    squad_total = {"exact_match": sum(c["exact_match"] for c in squad) / n,
                   "f1": sum(c["f1"] for c in squad) / n}

    ks = (1, 3, 5)
    cases = []
    for scores, answer in MAP_CASES:
        ranked = ranking(scores)
        case = {"scores": scores, "answer": answer, "ranking": ranked}
        for k in ks:
            case[f"map_at_{k}"] = map_at_k([ranked], [answer], k)
        cases.append(case)
    map_total = {f"map_at_{k}": map_at_k([c["ranking"] for c in cases], [c["answer"] for c in cases], k)
                 for k in ks}

    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"squad": squad, "squad_total": squad_total, "map": cases, "map_total": map_total},
                  f, indent=1)
        f.write("\n")
    print(f"{n} SQuAD cases: exact match {squad_total['exact_match']:.4f}, F1 {squad_total['f1']:.4f}; "
          f"{len(cases)} MAP cases: MAP@3 {map_total['map_at_3']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
