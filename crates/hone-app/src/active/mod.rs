//! Active learning: a run's model helps label the rest of its dataset. The queue is ordered
//! by the model's uncertainty (scoring.rs), pre-labeled with its predictions (suggest.rs);
//! each round retrains on the labels so far and is scored against them (rounds.rs);
//! simulate.rs measures the loop with an oracle (`hone bench active-learning`).

pub mod rounds;
pub mod scoring;
pub mod simulate;
pub mod suggest;

pub use rounds::CurvePoint;
pub use scoring::Strategy;
pub use suggest::{suggest, Pool, SuggestRequest, Suggestion, Suggestions};
