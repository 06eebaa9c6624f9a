//! Entity tags of token classification: the IOB1, IOB2 (BIO) and BIOES schemes, normalised to
//! IOB2 — the scheme `transformers` pipelines and conlleval read — with the position of a tag
//! that breaks its scheme; and entity spans as conlleval finds them.

use std::fmt;

/// A tagging scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagScheme {
    /// B- only where two entities of one type touch; an entity may start with I-.
    Iob1,
    /// Every entity starts with B- (also called BIO).
    Iob2,
    /// B- begin, I- inside, E- end, S- single-token entity.
    Bioes,
}

impl fmt::Display for TagScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TagScheme::Iob1 => "IOB1",
            TagScheme::Iob2 => "IOB2",
            TagScheme::Bioes => "BIOES",
        })
    }
}

/// A tag that breaks its scheme: which token (0-based) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagError {
    pub token: usize,
    pub message: String,
}

/// A tag split into its prefix (`B`, `I`, `E`, `S`, or `O`) and entity type.
fn split(tag: &str) -> Option<(char, &str)> {
    if tag == "O" {
        return Some(('O', ""));
    }
    let (prefix, kind) = tag.split_once(['-', '_'])?;
    let p = match prefix {
        "B" => 'B',
        "I" => 'I',
        "E" | "L" => 'E',
        "S" | "U" => 'S',
        _ => return None,
    };
    (!kind.is_empty()).then_some((p, kind))
}

/// The scheme of a set of sentences: BIOES when any tag is E- or S-, IOB1 when an entity
/// starts with I- (after O or another type), else IOB2.
pub fn detect_scheme<'a>(sentences: impl IntoIterator<Item = &'a [String]>) -> TagScheme {
    let mut iob1 = false;
    for tags in sentences {
        let mut prev: Option<(char, &str)> = Some(('O', ""));
        for tag in tags {
            let cur = split(tag);
            match cur {
                Some(('E' | 'S', _)) => return TagScheme::Bioes,
                Some(('I', kind)) if !matches!(prev, Some(('B' | 'I', k)) if k == kind) => {
                    iob1 = true
                }
                _ => {}
            }
            prev = cur;
        }
    }
    if iob1 {
        TagScheme::Iob1
    } else {
        TagScheme::Iob2
    }
}

/// Rewrites one sentence's tags from `scheme` to IOB2. Unknown tags (not `O`, `B-T`, `I-T`,
/// and for BIOES `E-T`, `S-T`) and BIOES sequences that break the scheme (an I- or E- that
/// does not continue a B-/I- of its type, a B-/I- not closed by an E-) are errors.
pub fn to_iob2(tags: &[String], scheme: TagScheme) -> Result<Vec<String>, TagError> {
    let mut out = Vec::with_capacity(tags.len());
    let mut open: Option<&str> = None; // the type of the entity being continued
    for (i, tag) in tags.iter().enumerate() {
        let err = |message: String| TagError { token: i, message };
        let (prefix, kind) = split(tag).ok_or_else(|| {
            err(format!(
                "'{tag}' is not a tag of the {scheme} scheme (O, B-TYPE, I-TYPE{})",
                if scheme == TagScheme::Bioes {
                    ", E-TYPE, S-TYPE"
                } else {
                    ""
                }
            ))
        })?;
        if scheme != TagScheme::Bioes && matches!(prefix, 'E' | 'S') {
            return Err(err(format!("'{tag}' is a BIOES tag in an {scheme} file")));
        }
        let continues = open == Some(kind);
        let tag2 = match (scheme, prefix) {
            (_, 'O') => {
                if scheme == TagScheme::Bioes && open.is_some() {
                    return Err(err(format!(
                        "O inside an entity: the {} entity before it has no E- tag",
                        open.unwrap_or_default()
                    )));
                }
                open = None;
                "O".to_string()
            }
            (TagScheme::Bioes, 'B' | 'S') if open.is_some() => {
                return Err(err(format!(
                    "'{tag}' starts an entity before the {} entity ends with E-",
                    open.unwrap_or_default()
                )));
            }
            (TagScheme::Bioes, 'B') => {
                open = Some(kind);
                format!("B-{kind}")
            }
            (TagScheme::Bioes, 'S') => {
                open = None;
                format!("B-{kind}")
            }
            (TagScheme::Bioes, 'I' | 'E') if !continues => {
                return Err(err(format!(
                    "'{tag}' does not continue a B-{kind} or I-{kind} tag"
                )));
            }
            (TagScheme::Bioes, 'I') => format!("I-{kind}"),
            (TagScheme::Bioes, _) => {
                open = None;
                format!("I-{kind}")
            }
            (TagScheme::Iob2, 'I') if !continues => {
                return Err(err(format!(
                    "'{tag}' starts an entity; in IOB2 an entity starts with B-{kind}"
                )));
            }
            (_, 'I') if !continues => {
                open = Some(kind);
                format!("B-{kind}")
            }
            (_, p) => {
                open = Some(kind);
                format!("{p}-{kind}")
            }
        };
        out.push(tag2);
    }
    if scheme == TagScheme::Bioes {
        if let Some(kind) = open {
            return Err(TagError {
                token: tags.len().saturating_sub(1),
                message: format!("the sentence ends inside a {kind} entity (no E- tag)"),
            });
        }
    }
    Ok(out)
}

/// One sentence's tags in IOB2. The scheme is read per sentence: one with an E- or S- tag is
/// BIOES, any other is IOB1 (valid IOB2 passes unchanged). So a BIOES dataset whose sentences
/// were later re-tagged in IOB2 (the Labeling page writes IOB2) still reads.
pub fn normalise_tags(tags: &[String]) -> Result<Vec<String>, TagError> {
    let bioes = tags
        .iter()
        .any(|t| matches!(split(t), Some(('E' | 'S', _))));
    to_iob2(
        tags,
        if bioes {
            TagScheme::Bioes
        } else {
            TagScheme::Iob1
        },
    )
}

/// An entity: its type and its tokens `start..end`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Entity {
    pub kind: String,
    pub start: usize,
    pub end: usize,
}

/// The entities of an IOB2 tag sequence, as conlleval reads them: B-T starts an entity, I-T
/// continues one of type T, an I-T after O or another type starts one too.
pub fn entities(tags: &[impl AsRef<str>]) -> Vec<Entity> {
    let mut out: Vec<Entity> = Vec::new();
    let mut open = false;
    for (i, tag) in tags.iter().enumerate() {
        match split(tag.as_ref()) {
            Some(('I', kind)) if open && out.last().is_some_and(|e| e.kind == kind) => {
                if let Some(e) = out.last_mut() {
                    e.end = i + 1;
                }
            }
            Some((_, "")) | None => open = false,
            Some((_, kind)) => {
                out.push(Entity {
                    kind: kind.to_string(),
                    start: i,
                    end: i + 1,
                });
                open = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn every_scheme_normalises_to_iob2() {
        let want = tags("B-PER I-PER O B-LOC B-LOC O B-ORG");
        let iob1 = tags("I-PER I-PER O I-LOC B-LOC O I-ORG");
        assert_eq!(detect_scheme([&iob1[..]]), TagScheme::Iob1);
        assert_eq!(to_iob2(&iob1, TagScheme::Iob1).unwrap(), want);
        assert_eq!(detect_scheme([&want[..]]), TagScheme::Iob2);
        assert_eq!(to_iob2(&want, TagScheme::Iob2).unwrap(), want);
        let bioes = tags("B-PER E-PER O S-LOC S-LOC O S-ORG");
        assert_eq!(detect_scheme([&bioes[..]]), TagScheme::Bioes);
        assert_eq!(to_iob2(&bioes, TagScheme::Bioes).unwrap(), want);
        let long = tags("B-ORG I-ORG I-ORG E-ORG");
        assert_eq!(
            to_iob2(&long, TagScheme::Bioes).unwrap(),
            tags("B-ORG I-ORG I-ORG I-ORG")
        );
    }

    #[test]
    fn each_sentence_is_read_in_its_own_scheme() {
        // A BIOES dataset with one sentence re-tagged in IOB2.
        assert_eq!(normalise_tags(&tags("S-LOC O")).unwrap(), tags("B-LOC O"));
        assert_eq!(
            normalise_tags(&tags("B-PER I-PER O")).unwrap(),
            tags("B-PER I-PER O")
        );
        assert_eq!(normalise_tags(&tags("I-PER O")).unwrap(), tags("B-PER O"));
        assert!(normalise_tags(&tags("B-PER I-PER S-LOC")).is_err());
    }

    #[test]
    fn a_broken_sequence_names_its_token() {
        let e = to_iob2(&tags("O I-PER"), TagScheme::Iob2).unwrap_err();
        assert_eq!(e.token, 1);
        assert!(e.message.contains("B-PER"), "{}", e.message);
        let e = to_iob2(&tags("B-PER O"), TagScheme::Bioes).unwrap_err();
        assert_eq!(e.token, 1);
        let e = to_iob2(&tags("B-PER I-LOC E-LOC"), TagScheme::Bioes).unwrap_err();
        assert_eq!(e.token, 1);
        let e = to_iob2(&tags("B-PER I-PER"), TagScheme::Bioes).unwrap_err();
        assert!(e.message.contains("ends inside"), "{}", e.message);
        let e = to_iob2(&tags("O PER"), TagScheme::Iob2).unwrap_err();
        assert_eq!(e.token, 1);
        assert!(to_iob2(&tags("S-PER"), TagScheme::Iob2).is_err());
    }

    #[test]
    fn entities_follow_conlleval() {
        let got = entities(&tags("B-PER I-PER O I-LOC I-ORG B-ORG I-ORG O"));
        let want = [("PER", 0, 2), ("LOC", 3, 4), ("ORG", 4, 5), ("ORG", 5, 7)];
        assert_eq!(got.len(), want.len());
        for (e, (k, s, t)) in got.iter().zip(want) {
            assert_eq!((e.kind.as_str(), e.start, e.end), (k, s, t));
        }
    }
}
