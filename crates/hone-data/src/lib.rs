//! Hone's data layer: reading labeled text files, label sets, seeded splits, tokenization and
//! batching. Knows nothing of tensors, models or storage; the engine turns [`Batch`]es into
//! tensors.

pub mod batch;
pub mod error;
pub mod examples;
pub mod format;
pub mod labels;
pub mod split;
pub mod tokenize;

pub use batch::{Batch, Batcher};
pub use error::DataError;
pub use examples::{read_examples, ColumnSpec, Example};
pub use format::FileFormat;
pub use labels::LabelSet;
pub use split::{epoch_order, stratified_holdout};
pub use tokenize::{EncodedExample, TextTokenizer};
