//! Hone's data layer: streaming readers of example files (CSV, TSV, JSONL, JSON, Parquet, CoNLL,
//! labeled lines), label sets, seeded splits, tokenization and batching. Knows nothing of tensors, models or storage; the engine turns [`Batch`]es into
//! tensors.

pub mod batch;
pub mod chat;
pub mod error;
pub mod examples;
pub mod format;
pub mod labels;
mod sentencepiece;
pub mod source;
pub mod split;
pub mod squad;
pub mod tagged;
pub mod tags;
pub mod tokenize;

pub use batch::{Batch, Batcher};
pub use chat::{
    encode_conversation, read_conversations, ChatMessage, ChatTemplate, EncodedConversation, LossOn,
};
pub use error::DataError;
pub use examples::{
    answer_index, choice_letter, read_choice_examples, read_examples, ChoiceColumns, ColumnSpec,
    Example, ExampleFile, MAX_CHOICES,
};
pub use format::FileFormat;
pub use labels::LabelSet;
pub use source::{fingerprint_file, refuse_binary_file, SourceReader, SourceRow, SourceSpec};
pub use split::{epoch_order, stratified_holdout};
pub use squad::{read_qa_examples, AnswerSpan};
pub use tagged::{read_tagged, TagColumns, TaggedFile, TaggedSentence};
pub use tags::{detect_scheme, entities, normalise_tags, to_iob2, Entity, TagError, TagScheme};
pub use tokenize::{
    EncodedExample, EncodedText, EncodedWindow, EncodedWords, TextTokenizer, TOKENIZER_SOURCES,
};
