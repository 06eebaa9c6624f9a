//! The perturbations of invariance tests (CheckList's): each takes a text and a seeded
//! generator and returns the changed text, or `None` when the text has nothing to change
//! (no name to swap); the label a classifier gives should stay the same.

use hone_engine::rng::HoneRng;
use serde::{Deserialize, Serialize};

/// What an invariance test changes in each text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Perturbation {
    /// Two neighbouring letters of one word swapped (CheckList's `add_typos`).
    Typos,
    /// Final punctuation removed, or a full stop added where there is none.
    Punctuation,
    /// A first name replaced by another (CheckList's `change_names`).
    Names,
    /// A city or country replaced by another (CheckList's `change_location`).
    Locations,
    /// A neutral sentence appended.
    NeutralSentence,
}

const FIRST_NAMES: &[&str] = &[
    "John",
    "Mary",
    "James",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "Maria",
    "Ahmed",
    "Wei",
    "Priya",
    "Carlos",
    "Fatima",
    "Olga",
    "Kenji",
    "Amara",
    "Lucas",
    "Sofia",
    "Omar",
    "Anna",
    "Peter",
    "Laura",
];

const LOCATIONS: &[&str] = &[
    "London", "Paris", "Berlin", "Madrid", "Rome", "Tokyo", "Lagos", "Mumbai", "Toronto",
    "Chicago", "Sydney", "Cairo", "Lima", "Seoul", "Boston", "France", "Germany", "Japan",
    "Brazil", "Canada", "India", "Kenya", "Mexico", "Spain", "Italy",
];

const NEUTRAL_SENTENCES: &[&str] = &[
    "I saw it on a Tuesday.",
    "It was raining that day.",
    "My friend told me about it.",
    "I wrote this on my phone.",
    "That was last year.",
];

impl Perturbation {
    /// Every perturbation, in the order a starter suite lists them.
    pub const ALL: [Perturbation; 5] = [
        Perturbation::Typos,
        Perturbation::Punctuation,
        Perturbation::Names,
        Perturbation::Locations,
        Perturbation::NeutralSentence,
    ];

    /// The name in suite files.
    pub fn name(self) -> &'static str {
        match self {
            Perturbation::Typos => "typos",
            Perturbation::Punctuation => "punctuation",
            Perturbation::Names => "names",
            Perturbation::Locations => "locations",
            Perturbation::NeutralSentence => "neutral_sentence",
        }
    }

    /// What the perturbation does, for a test's name (`a typo`).
    pub fn describe(self) -> &'static str {
        match self {
            Perturbation::Typos => "a typo",
            Perturbation::Punctuation => "a punctuation change",
            Perturbation::Names => "another first name",
            Perturbation::Locations => "another place",
            Perturbation::NeutralSentence => "a neutral sentence added",
        }
    }

    /// `text` changed, or `None` when there is nothing to change.
    pub fn apply(self, text: &str, rng: &mut HoneRng) -> Option<String> {
        match self {
            Perturbation::Typos => typo(text, rng),
            Perturbation::Punctuation => Some(punctuation(text)),
            Perturbation::Names => swap_word(text, FIRST_NAMES, rng),
            Perturbation::Locations => swap_word(text, LOCATIONS, rng),
            Perturbation::NeutralSentence => {
                let s = NEUTRAL_SENTENCES[pick(rng, NEUTRAL_SENTENCES.len())];
                Some(format!("{} {s}", text.trim_end()))
            }
        }
    }
}

fn pick(rng: &mut HoneRng, n: usize) -> usize {
    ((rng.uniform() * n as f32) as usize).min(n.saturating_sub(1))
}

/// Swaps two neighbouring letters inside a word of at least four letters.
fn typo(text: &str, rng: &mut HoneRng) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    // Positions i where chars[i] and chars[i + 1] are letters of a word of 4+ letters.
    let mut spots = Vec::new();
    let mut start = 0;
    for i in 0..=chars.len() {
        if i == chars.len() || !chars[i].is_alphabetic() {
            if i - start >= 4 {
                spots.extend(start + 1..i - 2);
            }
            start = i + 1;
        }
    }
    spots.retain(|&i| chars[i] != chars[i + 1]);
    if spots.is_empty() {
        return None;
    }
    let at = spots[pick(rng, spots.len())];
    let mut out = chars;
    out.swap(at, at + 1);
    Some(out.into_iter().collect())
}

fn punctuation(text: &str) -> String {
    let trimmed = text.trim_end();
    let stripped = trimmed.trim_end_matches(['.', '!', '?', ';', ',']);
    if stripped.len() < trimmed.len() {
        stripped.to_string()
    } else {
        format!("{trimmed}.")
    }
}

/// Replaces one whole word of `words` in `text` by another of them.
fn swap_word(text: &str, words: &[&str], rng: &mut HoneRng) -> Option<String> {
    let found: Vec<(usize, &str)> = words
        .iter()
        .flat_map(|w| {
            text.match_indices(w).filter(|(i, m)| {
                let before = text[..*i].chars().next_back();
                let after = text[i + m.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        })
        .collect();
    if found.is_empty() {
        return None;
    }
    let (at, old) = found[pick(rng, found.len())];
    let others: Vec<&&str> = words.iter().filter(|w| **w != old).collect();
    let new = others[pick(rng, others.len())];
    Some(format!("{}{new}{}", &text[..at], &text[at + old.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_perturbation_changes_what_it_says_and_only_that() {
        let mut rng = HoneRng::new(1, 1);
        let t = Perturbation::Typos
            .apply("a wonderful film", &mut rng)
            .unwrap();
        assert_ne!(t, "a wonderful film");
        assert_eq!(t.len(), "a wonderful film".len());
        assert!(t.starts_with("a w") && t.ends_with(" film") || t.starts_with("a wonderful f"));
        assert_eq!(Perturbation::Typos.apply("a b c", &mut rng), None);
        assert_eq!(
            Perturbation::Punctuation.apply("Great!", &mut rng).unwrap(),
            "Great"
        );
        assert_eq!(
            Perturbation::Punctuation.apply("Great", &mut rng).unwrap(),
            "Great."
        );
        let n = Perturbation::Names
            .apply("Maria liked it", &mut rng)
            .unwrap();
        assert!(n.ends_with(" liked it") && !n.starts_with("Maria"), "{n}");
        // Inside another word, a name is not a name.
        assert_eq!(
            Perturbation::Names.apply("Annaberg is fine", &mut rng),
            None
        );
        let l = Perturbation::Locations
            .apply("the hotel in Paris, France", &mut rng)
            .unwrap();
        assert!(l.starts_with("the hotel in "), "{l}");
        let s = Perturbation::NeutralSentence
            .apply("Fine. ", &mut rng)
            .unwrap();
        assert!(s.starts_with("Fine. ") && s.len() > 8, "{s}");
    }
}
