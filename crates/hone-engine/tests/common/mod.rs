//! Shared helpers of the engine's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The repository's test fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A tiny reference model folder (`bert`, `distilbert`, `roberta`).
pub fn tiny_model(family: &str) -> PathBuf {
    fixtures().join(format!("tiny-{family}"))
}

/// The golden tensors and metadata written by tests/reference/make_fixtures.py.
pub fn golden(family: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = fixtures().join("golden");
    let tensors =
        candle_core::safetensors::load(dir.join(format!("{family}.safetensors")), &Device::Cpu)
            .expect("golden tensors");
    let meta = std::fs::read_to_string(dir.join(format!("{family}.json"))).expect("golden json");
    (
        tensors,
        serde_json::from_str(&meta).expect("golden json parses"),
    )
}

/// Largest absolute difference relative to the reference's largest magnitude.
pub fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    relative_error_with_floor(got, want, 1e-12)
}

/// Largest absolute difference relative to max(the reference's largest magnitude, `floor`).
pub fn relative_error_with_floor(got: &Tensor, want: &Tensor, floor: f64) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let got = got
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let want = want
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(floor);
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// A tensor's values as u32 (golden inputs are stored as i64).
pub fn as_u32(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| v as u32)
        .collect()
}

/// Deep copies of all parameter values (a `Var` is updated in place, so a plain detached
/// tensor would follow it).
pub fn snapshot(params: &hone_engine::params::ParamStore) -> HashMap<String, Tensor> {
    params
        .all()
        .iter()
        .map(|p| (p.name().to_string(), p.value().copy().unwrap()))
        .collect()
}
