//! Micro-benchmarks of the CPU path's hot operations at MiniLM-L6 sizes (1,024 tokens,
//! hidden 384, FFN 1,536, 12 heads, sequences of 64): `cargo bench -p hone-engine`.
//! A regression in any kernel shows up here as a number before it shows up in a training step.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hone_engine::cpu::attention::{self, AttentionSaved, AttentionShape, Span};
use hone_engine::cpu::gemm::{linear, linear_backward, Products};
use hone_engine::cpu::kernels::{
    activation, activation_backward, layer_norm, layer_norm_backward, NormStats,
};
use hone_engine::ops::Activation;
use hone_engine::rng::HoneRng;

const TOKENS: usize = 1024;
const HIDDEN: usize = 384;
const FFN: usize = 1536;

fn data(n: usize, stream: u64) -> Vec<f32> {
    HoneRng::new(1, stream).normal(n, 0.5)
}

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("linear");
    let x = data(TOKENS * HIDDEN, 1);
    let w = data(FFN * HIDDEN, 2);
    let b = data(FFN, 3);
    let dy = data(TOKENS * FFN, 4);
    let flop = 2 * TOKENS * HIDDEN * FFN;
    g.throughput(Throughput::Elements(flop as u64));
    let mut y = vec![0f32; TOKENS * FFN];
    g.bench_function("forward 1024x384 -> 1536", |bch| {
        bch.iter(|| {
            linear(
                &mut y,
                &x,
                TOKENS,
                &w,
                Some(&b),
                HIDDEN,
                FFN,
                Products::F32,
                None,
            )
        })
    });
    g.throughput(Throughput::Elements(2 * flop as u64));
    let (mut dx, mut dw, mut db) = (
        vec![0f32; TOKENS * HIDDEN],
        vec![0f32; FFN * HIDDEN],
        vec![0f32; FFN],
    );
    g.bench_function("backward 1024x384 -> 1536 (dx, dW, db)", |bch| {
        bch.iter(|| {
            linear_backward(
                &dy,
                &x,
                TOKENS,
                &w,
                HIDDEN,
                FFN,
                Some((&mut dx, false)),
                Some(&mut dw),
                Some(&mut db),
                Products::F32,
                None,
            )
        })
    });
    g.finish();
}

fn norms_and_activations(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    let x = data(TOKENS * HIDDEN, 5);
    let gamma = data(HIDDEN, 6);
    let beta = data(HIDDEN, 7);
    let dy = data(TOKENS * HIDDEN, 8);
    let mut y = vec![0f32; TOKENS * HIDDEN];
    let mut stats = NormStats::default();
    g.bench_function("layer_norm forward 1024x384", |b| {
        b.iter(|| layer_norm(&mut y, &x, &gamma, &beta, 1e-12, HIDDEN, &mut stats))
    });
    let (mut dx, mut dg, mut db) = (
        vec![0f32; TOKENS * HIDDEN],
        vec![0f32; HIDDEN],
        vec![0f32; HIDDEN],
    );
    g.bench_function("layer_norm backward 1024x384", |b| {
        b.iter(|| {
            layer_norm_backward(
                &mut dx,
                &dy,
                &x,
                &gamma,
                &stats,
                HIDDEN,
                Some(&mut dg),
                Some(&mut db),
            )
        })
    });
    let f = data(TOKENS * FFN, 9);
    g.bench_function("gelu forward 1024x1536", |b| {
        b.iter_batched_ref(
            || f.clone(),
            |v| activation(v, Activation::Gelu),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("gelu backward 1024x1536", |b| {
        b.iter_batched_ref(
            || f.clone(),
            |v| activation_backward(v, &f, Activation::Gelu),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn attention_bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("attention");
    let shape = AttentionShape::full(12, 32);
    let spans: Vec<Span> = (0..16)
        .map(|i| Span {
            start: i * 64,
            len: 64,
        })
        .collect();
    let (q, k, v) = (
        data(TOKENS * HIDDEN, 10),
        data(TOKENS * HIDDEN, 11),
        data(TOKENS * HIDDEN, 12),
    );
    let mut ctx = vec![0f32; TOKENS * HIDDEN];
    let mut saved = AttentionSaved::default();
    g.bench_function("forward 16 x 64 tokens, 12 heads, dropout 0.1", |b| {
        b.iter(|| {
            attention::forward(
                &mut ctx,
                &q,
                &k,
                &v,
                &spans,
                shape,
                0.1,
                &mut HoneRng::new(0, 0),
                &mut saved,
                None,
            )
        })
    });
    let dctx = data(TOKENS * HIDDEN, 13);
    let (mut dq, mut dk, mut dv) = (
        vec![0f32; TOKENS * HIDDEN],
        vec![0f32; TOKENS * HIDDEN],
        vec![0f32; TOKENS * HIDDEN],
    );
    g.bench_function("backward 16 x 64 tokens, 12 heads", |b| {
        b.iter(|| {
            attention::backward(
                &mut dq, &mut dk, &mut dv, &dctx, &q, &k, &v, &spans, shape, &saved, None,
            )
        })
    });
    g.finish();
}

fn adamw(c: &mut Criterion) {
    use candle_core::{Device, Tensor};
    use hone_engine::cpu::HostGrads;
    use hone_engine::optim::{Optimizer, ParamGroup, Rule};
    use hone_engine::params::{Param, ParamPosition, ParamStore};
    // The word embedding table of MiniLM: the largest tensor AdamW updates every step.
    let n = 30_522 * HIDDEN;
    let param = Param::new(
        "word_embeddings.weight",
        Tensor::from_vec(data(n, 14), (30_522, HIDDEN), &Device::Cpu).unwrap(),
        ParamPosition::EmbeddingTable { word: true },
    )
    .unwrap();
    let mut store = ParamStore::default();
    store.push(param.clone());
    let mut grads = HostGrads::default();
    grads.prepare(&store);
    grads.get_mut(0).unwrap().copy_from_slice(&data(n, 15));
    let mut opt = Optimizer::new(
        Rule::default(),
        vec![(
            param,
            ParamGroup {
                lr_scale: 1.0,
                weight_decay: 0.01,
            },
        )],
    );
    let mut g = c.benchmark_group("adamw");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("in-place step, 30522x384", |b| {
        b.iter(|| opt.step_host(&grads, &store, 1e-5, 1.0).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    matmul,
    norms_and_activations,
    attention_bench,
    adamw
);
criterion_main!(benches);
