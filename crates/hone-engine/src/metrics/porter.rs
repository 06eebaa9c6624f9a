//! NLTK's Porter stemmer in its default `NLTK_EXTENSIONS` mode, as Google's `rouge_score`
//! stems (`nltk.stem.porter.PorterStemmer().stem(token)`), ported from `nltk/stem/porter.py`:
//! Porter's algorithm (1980) with Martin Porter's later changes and NLTK's own (a table of
//! irregular forms, `-ies` / `-ied` on four-letter words, `y -> i` only after a consonant,
//! `-alli` first, `-fulli`, `-logi`, a two-letter `*o`, words of one or two letters kept).
//! Checked word for word against NLTK on `tests/fixtures/golden/porter.json`.

/// A suffix rule as NLTK's `_apply_rule_list` takes it: the suffix, its replacement and a
/// condition on the stem left without the suffix (`None`: unconditional). The suffix `"*d"`
/// stands for a double consonant.
type Rule<'a> = (&'a str, &'a str, Option<&'a dyn Fn(&str) -> bool>);

/// The stem of a word, as NLTK's `PorterStemmer().stem(word)` (which lower-cases first). A
/// word with a non-ASCII character is returned unchanged.
pub fn stem(word: &str) -> String {
    if !word.is_ascii() {
        return word.to_string();
    }
    let word = word.to_ascii_lowercase();
    if let Some(irregular) = irregular_form(&word) {
        return irregular.to_string();
    }
    // NLTK leaves words of one or two letters as they are.
    if word.len() <= 2 {
        return word;
    }
    let steps: [fn(&str) -> String; 8] =
        [step1a, step1b, step1c, step2, step3, step4, step5a, step5b];
    steps.iter().fold(word, |w, step| step(w.as_str()))
}

/// NLTK's table of irregular forms (its `pool`), looked up before any step.
fn irregular_form(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// Whether `word[i]` is a consonant: not a vowel, and a `y` only at the start of the word or
/// after a vowel (`i` must be in the word).
fn is_consonant(word: &str, i: usize) -> bool {
    let w = word.as_bytes();
    match w[i] {
        c if is_vowel(c) => false,
        b'y' => {
            // Walk back over the run of 'y's: each flips the answer.
            let (mut i, mut negate) = (i, false);
            while i > 0 && w[i] == b'y' {
                negate = !negate;
                i -= 1;
            }
            is_vowel(w[i]) == negate
        }
        _ => true,
    }
}

/// `is_consonant` of every letter, in one pass.
fn consonant_flags(word: &str) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for c in word.bytes() {
        let consonant = match c {
            b'y' => !flags.last().copied().unwrap_or(false),
            c => !is_vowel(c),
        };
        flags.push(consonant);
    }
    flags
}

/// Porter's measure m of a stem `[C](VC){m}[V]`: its vowel-consonant transitions.
fn measure(stem: &str) -> usize {
    consonant_flags(stem)
        .windows(2)
        .filter(|p| !p[0] && p[1])
        .count()
}

fn has_positive_measure(stem: &str) -> bool {
    measure(stem) > 0
}

fn contains_vowel(stem: &str) -> bool {
    consonant_flags(stem).contains(&false)
}

/// Condition `*d`: the word ends with a double consonant.
fn ends_double_consonant(word: &str) -> bool {
    let (w, n) = (word.as_bytes(), word.len());
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(word, n - 1)
}

/// Condition `*o`: the word ends consonant-vowel-consonant, the last not `w`, `x` or `y`; or
/// (NLTK) it is a vowel then a consonant, any consonant.
fn ends_cvc(word: &str) -> bool {
    let (w, n) = (word.as_bytes(), word.len());
    (n >= 3
        && is_consonant(word, n - 3)
        && !is_consonant(word, n - 2)
        && is_consonant(word, n - 1)
        && !matches!(w[n - 1], b'w' | b'x' | b'y'))
        || (n == 2 && !is_consonant(word, 0) && is_consonant(word, 1))
}

/// NLTK's `_apply_rule_list`: the first rule whose suffix ends the word decides, replacing the
/// suffix when its condition holds on the stem and leaving the word as it is otherwise.
fn apply_rule_list(word: &str, rules: &[Rule<'_>]) -> String {
    for &(suffix, replacement, condition) in rules {
        let stem = if suffix == "*d" && ends_double_consonant(word) {
            &word[..word.len() - 2]
        } else if let Some(stem) = word.strip_suffix(suffix) {
            stem
        } else {
            continue;
        };
        return if condition.is_none_or(|holds| holds(stem)) {
            format!("{stem}{replacement}")
        } else {
            word.to_string()
        };
    }
    word.to_string()
}

/// Step 1a: plurals (SSES -> SS, IES -> I, SS -> SS, S -> ).
fn step1a(word: &str) -> String {
    // NLTK: 'flies' -> 'fli' but 'dies' -> 'die'.
    if word.len() == 4 {
        if let Some(stem) = word.strip_suffix("ies") {
            return format!("{stem}ie");
        }
    }
    apply_rule_list(
        word,
        &[
            ("sses", "ss", None),
            ("ies", "i", None),
            ("ss", "ss", None),
            ("s", "", None),
        ],
    )
}

/// Step 1b: (m>0) EED -> EE, (*v*) ED -> and (*v*) ING ->, then tidying the stem left by the
/// last two.
fn step1b(word: &str) -> String {
    // NLTK: 'spied' -> 'spi' but 'died' -> 'die'.
    if let Some(stem) = word.strip_suffix("ied") {
        return if word.len() == 4 {
            format!("{stem}ie")
        } else {
            format!("{stem}i")
        };
    }
    if let Some(stem) = word.strip_suffix("eed") {
        return if measure(stem) > 0 {
            format!("{stem}ee")
        } else {
            word.to_string()
        };
    }
    let Some(stem) = ["ed", "ing"]
        .into_iter()
        .filter_map(|suffix| word.strip_suffix(suffix))
        .find(|stem| contains_vowel(stem))
    else {
        return word.to_string();
    };
    let last = &stem[stem.len().saturating_sub(1)..];
    let single: &dyn Fn(&str) -> bool = &|_: &str| !matches!(last, "l" | "s" | "z");
    let add_e: &dyn Fn(&str) -> bool = &|s: &str| measure(s) == 1 && ends_cvc(s);
    apply_rule_list(
        stem,
        &[
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            // (*d and not (*L or *S or *Z)) -> single letter
            ("*d", last, Some(single)),
            // (m=1 and *o) -> E
            ("", "e", Some(add_e)),
        ],
    )
}

/// Step 1c: Y -> I, in NLTK only after a consonant that is not the whole stem ('happy' ->
/// 'happi', 'enjoy' and 'by' kept).
fn step1c(word: &str) -> String {
    let after_consonant: &dyn Fn(&str) -> bool =
        &|stem: &str| stem.len() > 1 && is_consonant(stem, stem.len() - 1);
    apply_rule_list(word, &[("y", "i", Some(after_consonant))])
}

/// Step 2: (m>0) double suffixes to single ones, with NLTK's ALLI first, FULLI and LOGI.
fn step2(word: &str) -> String {
    // NLTK: ALLI -> AL before the other rules, and step 2 again on the result.
    if let Some(stem) = word.strip_suffix("alli") {
        if has_positive_measure(stem) {
            return step2(&format!("{stem}al"));
        }
    }
    let m: &dyn Fn(&str) -> bool = &has_positive_measure;
    // NLTK measures `word[:-3]`: the 'l' of LOGI stays with the stem, so that short stems like
    // 'geo' and 'theo' work like 'archaeo' and 'philo'.
    let logi: &dyn Fn(&str) -> bool = &|stem: &str| has_positive_measure(&format!("{stem}l"));
    apply_rule_list(
        word,
        &[
            ("ational", "ate", Some(m)),
            ("tional", "tion", Some(m)),
            ("enci", "ence", Some(m)),
            ("anci", "ance", Some(m)),
            ("izer", "ize", Some(m)),
            ("bli", "ble", Some(m)),
            ("alli", "al", Some(m)),
            ("entli", "ent", Some(m)),
            ("eli", "e", Some(m)),
            ("ousli", "ous", Some(m)),
            ("ization", "ize", Some(m)),
            ("ation", "ate", Some(m)),
            ("ator", "ate", Some(m)),
            ("alism", "al", Some(m)),
            ("iveness", "ive", Some(m)),
            ("fulness", "ful", Some(m)),
            ("ousness", "ous", Some(m)),
            ("aliti", "al", Some(m)),
            ("iviti", "ive", Some(m)),
            ("biliti", "ble", Some(m)),
            ("fulli", "ful", Some(m)),
            ("logi", "log", Some(logi)),
        ],
    )
}

/// Step 3: (m>0) -icate, -iciti and -ical to -ic, -alize to -al, -ative, -ful and -ness removed.
fn step3(word: &str) -> String {
    let m: &dyn Fn(&str) -> bool = &has_positive_measure;
    apply_rule_list(
        word,
        &[
            ("icate", "ic", Some(m)),
            ("ative", "", Some(m)),
            ("alize", "al", Some(m)),
            ("iciti", "ic", Some(m)),
            ("ical", "ic", Some(m)),
            ("ful", "", Some(m)),
            ("ness", "", Some(m)),
        ],
    )
}

/// Step 4: (m>1) suffixes removed.
fn step4(word: &str) -> String {
    let m: &dyn Fn(&str) -> bool = &|stem: &str| measure(stem) > 1;
    // (m>1 and (*S or *T)) ION ->
    let ion: &dyn Fn(&str) -> bool =
        &|stem: &str| measure(stem) > 1 && matches!(stem.bytes().last(), Some(b's' | b't'));
    apply_rule_list(
        word,
        &[
            ("al", "", Some(m)),
            ("ance", "", Some(m)),
            ("ence", "", Some(m)),
            ("er", "", Some(m)),
            ("ic", "", Some(m)),
            ("able", "", Some(m)),
            ("ible", "", Some(m)),
            ("ant", "", Some(m)),
            ("ement", "", Some(m)),
            ("ment", "", Some(m)),
            ("ent", "", Some(m)),
            ("ion", "", Some(ion)),
            ("ou", "", Some(m)),
            ("ism", "", Some(m)),
            ("ate", "", Some(m)),
            ("iti", "", Some(m)),
            ("ous", "", Some(m)),
            ("ive", "", Some(m)),
            ("ize", "", Some(m)),
        ],
    )
}

/// Step 5a: (m>1) E -> and (m=1 and not *o) E -> (both tried, unlike `apply_rule_list`).
fn step5a(word: &str) -> String {
    if let Some(stem) = word.strip_suffix('e') {
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_string();
        }
    }
    word.to_string()
}

/// Step 5b: (m>1 and *d and *L) -> single letter, the measure taken (NLTK) on the word less
/// its last 'l'.
fn step5b(word: &str) -> String {
    let m: &dyn Fn(&str) -> bool = &|stem: &str| measure(&format!("{stem}l")) > 1;
    apply_rule_list(word, &[("ll", "l", Some(m))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_words_as_nltk_does() {
        for (word, want) in [
            ("dying", "die"),
            ("skies", "sky"),
            ("cries", "cri"),
            ("dies", "die"),
            ("spied", "spi"),
            ("easily", "easili"),
            ("communism", "commun"),
            ("1990s", "1990"),
            ("generalization", "gener"),
            ("ponies", "poni"),
            ("caresses", "caress"),
            ("relational", "relat"),
            ("hopping", "hop"),
            ("agreed", "agre"),
            ("feed", "feed"),
            ("sized", "size"),
            ("owed", "owe"),
            ("hopefulli", "hope"),
            ("geologi", "geolog"),
            ("controll", "control"),
            ("yyyy", "yyyi"),
            ("as", "as"),
            ("Dying", "die"),
            ("café", "café"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }

    #[test]
    fn stems_every_fixture_word_as_nltk_does() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/porter.json");
        let fixture: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("porter fixture"))
                .expect("porter fixture parses");
        let words: Vec<(String, String)> =
            serde_json::from_value(fixture["words"].clone()).expect("word pairs");
        assert!(words.len() > 1000, "only {} words", words.len());
        let wrong: Vec<String> = words
            .iter()
            .filter_map(|(word, want)| {
                let got = stem(word);
                (got != *want).then(|| format!("{word} -> {got}, NLTK {want}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} words stem unlike NLTK {}: {:?}",
            wrong.len(),
            words.len(),
            fixture["nltk"],
            &wrong[..wrong.len().min(10)]
        );
    }
}
