//! How long a stored dataset's examples are in a model's tokens, for the Train page's speed
//! estimate: the CPU path skips padding, so a run's speed follows the data's real lengths,
//! not the maximum length.

use std::path::Path;

use hone_data::TextTokenizer;
use hone_store::{ExampleFilter, Label};
use serde::{Deserialize, Serialize};

use crate::{App, AppError};

/// Examples read for the estimate: this many from each of four places in the dataset.
const PER_PLACE: i64 = 500;

/// Token lengths of a sample of a dataset's labeled examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLengths {
    /// Examples measured.
    pub examples: usize,
    /// Mean length in tokens after truncation (special tokens included).
    pub mean: f64,
    /// The 95th percentile.
    pub p95: usize,
    pub longest: usize,
    /// Examples cut at `max_length`.
    pub truncated: usize,
    pub max_length: usize,
}

impl App {
    /// Token lengths of up to 2,000 labeled examples of `dataset` (500 from each quarter)
    /// with the tokenizer of the model folder `model`, truncated at `max_length`.
    pub fn dataset_token_lengths(
        &self,
        dataset: &str,
        model: &Path,
        max_length: usize,
    ) -> Result<TokenLengths, AppError> {
        let info = self.store().dataset(dataset)?;
        let tokenizer = TextTokenizer::from_model_dir(model, max_length.max(2))?;
        // Small datasets whole; larger ones from four places.
        let places = if info.labeled > 4 * PER_PLACE { 4 } else { 1 };
        let mut sample = Vec::new();
        for place in 0..places {
            let filter = ExampleFilter {
                labeled: Some(true),
                offset: info.labeled * place / places,
                limit: Some(4 * PER_PLACE / places),
                ..Default::default()
            };
            sample.extend(self.store().examples(info.id, &filter)?);
        }
        let mut lengths = Vec::with_capacity(sample.len());
        let mut truncated = 0;
        let texts: Vec<(&str, Option<&str>)> = sample
            .iter()
            .filter(|e| !matches!(e.label, Some(Label::Tags(_))))
            .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
            .collect();
        for e in tokenizer.encode(&texts)? {
            truncated += usize::from(e.truncated);
            lengths.push(e.input_ids.len());
        }
        let words: Vec<Vec<String>> = sample.iter().filter_map(|e| e.tokens.clone()).collect();
        for e in tokenizer.encode_words(&words)? {
            truncated += usize::from(e.example.truncated);
            lengths.push(e.example.input_ids.len());
        }
        lengths.sort_unstable();
        let n = lengths.len();
        Ok(TokenLengths {
            examples: n,
            mean: lengths.iter().sum::<usize>() as f64 / n.max(1) as f64,
            p95: lengths
                .get((n * 95 / 100).min(n.saturating_sub(1)))
                .copied()
                .unwrap_or(0),
            longest: lengths.last().copied().unwrap_or(0),
            truncated,
            max_length,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn lengths_of_a_stored_dataset_in_the_model_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("reviews.tsv");
        std::fs::write(
            &data,
            "sentence\tlabel\na fine film\t1\na dull , long and very tedious film about nothing\t0\nok\t1\n",
        )
        .unwrap();
        let mut app = crate::App::open(&dir.path().join("hone.db")).unwrap();
        let spec = hone_data::SourceSpec {
            text: Some("sentence".into()),
            label: Some("label".into()),
            ..Default::default()
        };
        let request = crate::import::ImportRequest {
            path: data.clone(),
            name: "reviews".into(),
            spec,
            label_names: None,
            label_map: None,
            part: None,
            append: false,
        };
        app.import(&request, &mut |_, _| {}).unwrap();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-bert");
        let l = app.dataset_token_lengths("reviews", &model, 8).unwrap();
        assert_eq!(l.examples, 3);
        assert_eq!(l.longest, 8, "the long review is cut at 8");
        assert_eq!(l.truncated, 1);
        assert!(l.mean > 3.0 && l.mean < 8.0, "{l:?}");
    }
}
