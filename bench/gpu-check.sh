#!/usr/bin/env bash
# The GPU check of issue 15, for a machine with the NVIDIA driver, CUDA 13's libraries and a
# Python with PyTorch + transformers, but no Rust toolchain and no network. It runs a `hone`
# built here with `--features cuda` (bench/gpu-binary.sh makes it, stripped and gzipped):
#
#   1. the machine: nvidia-smi, `hone devices`, the libraries the binary loads;
#   2. random models of MiniLM-L6's and BERT-base's configs (bench/gpu_step.py make-model) and
#      fixed batches (dense 32 × 128, and 16 × 64 with padding);
#   3. the golden step on the GPU: `hone bench check` compares one training step (loss,
#      logits, every gradient) on cuda:0 in fp32, bf16 and fp16 against the CPU graph in fp32
#      (and the repository's tiny DeBERTa, T5, Llama and Qwen2 models in fp32 and bf16), and
#      LoRA steps of MiniLM and the tiny Llama (`--lora-r 8`);
#   4. speed: `hone bench --device cuda` in fp32 and bf16 against PyTorch eager and SDPA
#      (bench/gpu_step.py step) on the same batches, in the same run;
#   5. whole runs (`hone train --device cuda:0`) of the tiny BERT fixture in bf16 and fp16;
#      (decoder) a random SmolLM2-135M's LoRA and full bf16 steps against PyTorch (+ PEFT);
#   6. out of memory: a batch far too large must end in a clear error, not a crash or a hang;
#   7. kernels: where a step's GPU time goes, kernel by kernel, for Hone and PyTorch alike
#      (the CUPTI profiler .gpu/libkprof.so; bench/kernel_profile.py reads its tables).
#
# Usage: bench/gpu-check.sh [OUT_DIR]   (HONE_GZ: the gzipped binary, default .gpu/hone.gz;
#   STAGES: which of "check speed profile quick kernels decoder train oom compile" to run, default
#   "check speed kernels train oom")
# Every stage runs under a timeout and the script goes on after a failure; the summary is in
# OUT_DIR/gpu-check.log and the JSON reports beside it.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-bench/out/gpu}}
mkdir -p "$out"
log="$out/gpu-check.log"
exec > >(tee -a "$log") 2>&1
stages=${STAGES:-check speed kernels train oom}
work=$(mktemp -d)
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
has() { [[ " $stages " == *" $1 "* ]]; }
run() { # run SECONDS DESCRIPTION COMMAND...: one step, timed, its exit status printed
  local limit=$1 what=$2
  shift 2
  local t0=$SECONDS
  echo "--- $what" >&2
  timeout "$limit" "$@"
  local rc=$?
  echo "--- $what: exit $rc in $((SECONDS - t0)) s" >&2
  return $rc
}

echo "=== gpu-check $(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.free,compute_cap --format=csv || true

# The binary and the CUDA libraries it links (cuBLAS, cuRAND, NVRTC, cudart from the Python
# environment's NVIDIA wheels; libcuda from the driver).
hone=$work/hone
gunzip -c "${HONE_GZ:-.gpu/hone.gz}" >"$hone" && chmod +x "$hone" || { echo "no binary"; exit 1; }
libs=$("$py" - <<'EOF'
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for f in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(f))
print(":".join(sorted(dirs)))
EOF
)
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}:/usr/local/nvidia/lib64:/usr/local/cuda/lib64"
missing=$(ldd "$hone" | grep "not found" || true)
[[ -z "$missing" ]] || echo "missing libraries: $missing"
ldd "$hone" | grep -E "cublas|curand|nvrtc|cudart|libcuda" || true
run 60 "hone devices" "$hone" devices

# Models and batches, made here with the machine's own transformers.
for m in minilm bert-base; do
  run 300 "make $m" "$py" bench/gpu_step.py make-model --config "$m" --out "$work/$m"
done
run 60 "batch 32x128 dense" "$py" bench/gpu_step.py dump-batch --out "$work/b32x128.json" --batch 32 --seq 128 --dense
run 60 "batch 16x64 padded" "$py" bench/gpu_step.py dump-batch --out "$work/b16x64.json" --batch 16 --seq 64

if has check; then
  for m in minilm bert-base; do
    for p in fp32 bf16 fp16; do
      run 300 "check $m $p" "$hone" bench check --model "$work/$m" --device cuda:0 --precision "$p" \
        --batch-file "$work/b16x64.json" --json >"$out/check-$m-$p.json"
      cat "$out/check-$m-$p.json" | tr -d '\n ' | cut -c1-400
      echo
    done
  done
  # The other families' own paths (DeBERTa's position gathers, T5's bias buckets and causal
  # decoder, a decoder LM's rotary grouped-query attention and language-model loss) on the
  # repository's tiny random models.
  for m in deberta deberta-v2 t5 llama qwen2; do
    for p in fp32 bf16; do
      run 120 "check tiny-$m $p" "$hone" bench check --model "tests/fixtures/tiny-$m" --device cuda:0 \
        --precision "$p" --batch-size 8 --max-length 32 --json >"$out/check-tiny-$m-$p.json"
      cat "$out/check-tiny-$m-$p.json" | tr -d '\n ' | cut -c1-400
      echo
    done
  done
  # LoRA: only the adapters and the head get gradients, and the frozen weights' skipped
  # gradients change none of theirs (an encoder and a decoder).
  # (The made MiniLM has no tokenizer: it reads the fixed batch.)
  for m in minilm tiny-llama; do
    case $m in
      minilm) model=(--model "$work/minilm" --batch-file "$work/b16x64.json") ;;
      *) model=(--model "tests/fixtures/$m" --batch-size 8 --max-length 32) ;;
    esac
    for p in fp32 bf16; do
      run 300 "check $m LoRA $p" "$hone" bench check "${model[@]}" --device cuda:0 --precision "$p" \
        --lora-r 8 --json >"$out/check-$m-lora-$p.json"
      cat "$out/check-$m-lora-$p.json" | tr -d '\n ' | cut -c1-400
      echo
    done
  done
fi

# hone_bench NAME ARGS...: `hone bench --device cuda:0 ARGS --json` into $out/hone-NAME.json,
# the GPU's memory in use and its utilisation sampled every 50 ms meanwhile (peak memory and
# mean utilisation printed: a low utilisation means the host, not the GPU, sets the pace).
hone_bench() {
  local name=$1
  shift
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -lms 50 \
    >"$work/smi.txt" 2>/dev/null &
  local sampler=$!
  run 300 "hone $name" "$hone" bench --device cuda:0 --steps 20 --warmup 3 --json "$@" >"$out/hone-$name.json"
  kill $sampler 2>/dev/null
  wait $sampler 2>/dev/null
  "$py" - "$out/hone-$name.json" "$work/smi.txt" "$name" <<'EOF'
import json, sys
path, smi, name = sys.argv[1:4]
rows = [l.split(",") for l in open(smi) if l.count(",") == 1]
mem = max((int(r[0]) for r in rows), default=0)
busy = [int(r[1]) for r in rows if int(r[0]) > 1024]  # while the model is on the GPU
try:
    r = json.load(open(path))
except Exception:
    print(f"hone {name}: no report")
    sys.exit()
p = r["train_phase_median_s"]
print("hone %s: step %.2f ms (fwd+loss %.1f, bwd %.1f, opt %.1f), fwd-only %.2f ms, %.0f samples/s, GPU memory %d MiB, utilisation %.0f%%"
      % (name, r["train_step"]["median_s"] * 1e3, p["forward_loss"] * 1e3, p["backward"] * 1e3,
         p["optimizer"] * 1e3, r["forward_only"]["median_s"] * 1e3, r["samples_per_s"], mem,
         sum(busy) / max(len(busy), 1)))
EOF
}

torch_step() { # torch_step NAME ARGS...: bench/gpu_step.py step ARGS into $out/torch-NAME.json
  local name=$1
  shift
  run 300 "torch $name" "$py" bench/gpu_step.py step --device cuda --steps 20 --warmup 3 \
    --json "$out/torch-$name.json" "$@"
}

if has speed; then
  # model batch precision: MiniLM and BERT-base on dense 32 × 128 in fp32 and bf16, MiniLM on
  # the padded 16 × 64 batch too (Hone's autograd graph pads to the longest as PyTorch does).
  for combo in "minilm b32x128 fp32" "minilm b32x128 bf16" "minilm b16x64 fp32" "minilm b16x64 bf16" \
    "bert-base b32x128 fp32" "bert-base b32x128 bf16"; do
    read -r m b p <<<"$combo"
    hone_bench "$m-$b-$p" --model "$work/$m" --precision "$p" --batch-file "$work/$b.json"
    for a in eager sdpa; do
      torch_step "$m-$b-$p-$a" --model "$work/$m" --batch-file "$work/$b.json" --precision "$p" --attn "$a"
    done
  done
fi

if has profile; then
  # Where Hone's GPU step goes: BERT-base 32 × 128 as it is, without dropout, with the word
  # embeddings frozen (no 23M-row gradient or update), and with LoRA (almost no optimizer).
  m=bert-base b=b32x128
  hone_bench "$m-$b-fp32" --model "$work/$m" --batch-file "$work/$b.json"
  hone_bench "$m-$b-bf16" --model "$work/$m" --batch-file "$work/$b.json" --precision bf16
  hone_bench "$m-$b-fp32-nodropout" --model "$work/$m" --batch-file "$work/$b.json" --no-dropout
  hone_bench "$m-$b-fp32-frozen" --model "$work/$m" --batch-file "$work/$b.json" --freeze-embeddings
  hone_bench "$m-$b-fp32-lora8" --model "$work/$m" --batch-file "$work/$b.json" --lora-r 8
  torch_step "$m-$b-fp32-eager" --model "$work/$m" --batch-file "$work/$b.json" --precision fp32 --attn eager
  torch_step "$m-$b-bf16-sdpa" --model "$work/$m" --batch-file "$work/$b.json" --precision bf16 --attn sdpa
fi

if has quick; then
  # After the first profile: BERT-base and MiniLM on the dense batch, BERT-base on the padded
  # one, against PyTorch's fp32 eager and bf16 SDPA steps on the same batch.
  hone_bench "bert-base-b32x128-fp32" --model "$work/bert-base" --batch-file "$work/b32x128.json"
  hone_bench "bert-base-b32x128-bf16" --model "$work/bert-base" --batch-file "$work/b32x128.json" --precision bf16
  hone_bench "bert-base-b16x64-fp32" --model "$work/bert-base" --batch-file "$work/b16x64.json"
  hone_bench "minilm-b32x128-fp32" --model "$work/minilm" --batch-file "$work/b32x128.json"
  torch_step "bert-base-b32x128-fp32-eager" --model "$work/bert-base" --batch-file "$work/b32x128.json" --precision fp32 --attn eager
  torch_step "bert-base-b32x128-bf16-sdpa" --model "$work/bert-base" --batch-file "$work/b32x128.json" --precision bf16 --attn sdpa
fi

if has kernels; then
  # Each kernel's GPU time per training step: the same step run SHORT and LONG times under the
  # CUPTI profiler (forward passes fixed at one), the two tables subtracted. BERT-base on the
  # dense 32 × 128 batch (Hone fp32 and bf16 against PyTorch eager fp32 and SDPA bf16) and on
  # the padded 16 × 64 one (the gathers of the padding layout).
  kprof=$PWD/.gpu/libkprof.so
  if [[ ! -f "$kprof" ]]; then
    echo "no .gpu/libkprof.so: bench/gpu-binary.sh builds it"
  else
    short=5 long=25
    kprof_run() { # kprof_run NAME STEPS COMMAND...: one profiled run
      local name=$1 n=$2
      shift 2
      KPROF_OUT="$out/kprof-$name-$n.csv" CUDA_INJECTION64_PATH=$kprof \
        run 300 "kernels $name $n steps" "$@" --steps "$n" >"$out/kprof-$name-$n.out"
    }
    # step_ms FILE KEY.PATH: a JSON report's median step in ms (empty when unreadable)
    step_ms() {
      "$py" -c 'import functools,json,sys; r=json.load(open(sys.argv[1])); print(1e3*functools.reduce(lambda d,k: d[k], sys.argv[2].split("."), r))' \
        "$1" "$2" 2>/dev/null || true
    }
    for combo in "bert-base b32x128 fp32" "bert-base b32x128 bf16" "bert-base b16x64 fp32"; do
      read -r m b p <<<"$combo"
      name="hone-$m-$b-$p"
      for n in $short $long; do
        kprof_run "$name" "$n" "$hone" bench --device cuda:0 --warmup 3 --forward-steps 1 --json \
          --model "$work/$m" --batch-file "$work/$b.json" --precision "$p"
      done
      ms=$(step_ms "$out/kprof-$name-$long.out" train_step.median_s)
      "$py" bench/kernel_profile.py "$out/kprof-$name-$short.csv" $short "$out/kprof-$name-$long.csv" $long \
        ${ms:+--step-ms "$ms"} --title "$name" --json "$out/kernels-$name.json"
    done
    for combo in "bert-base b32x128 fp32 eager" "bert-base b32x128 bf16 sdpa"; do
      read -r m b p a <<<"$combo"
      name="torch-$m-$b-$p-$a"
      for n in $short $long; do
        kprof_run "$name" "$n" "$py" bench/gpu_step.py step --device cuda --warmup 3 --forward-steps 1 \
          --model "$work/$m" --batch-file "$work/$b.json" --precision "$p" --attn "$a" \
          --json "$out/kprof-$name-$n.json"
      done
      ms=$(step_ms "$out/kprof-$name-$long.json" train_step_median_s)
      "$py" bench/kernel_profile.py "$out/kprof-$name-$short.csv" $short "$out/kprof-$name-$long.csv" $long \
        ${ms:+--step-ms "$ms"} --title "$name" --json "$out/kernels-$name.json"
    done
  fi
fi

if has compile; then
  torch_step "bert-base-b32x128-bf16-compile" --model "$work/bert-base" --batch-file "$work/b32x128.json" \
    --precision bf16 --attn sdpa --compile
fi

if has decoder; then
  # A decoder LM (a random SmolLM2-135M, bench/decoder/gpu_lm_step.py) on full 8 × 512
  # sequences, bf16: LoRA rank 16 on the query and value projections (PyTorch's through PEFT,
  # when it is installed) and full fine-tuning, Hone against PyTorch's SDPA step.
  run 300 "make decoder" "$py" bench/decoder/gpu_lm_step.py make-model --out "$work/smollm2" \
    --tokenizer tests/fixtures/tiny-llama
  for method in lora16 full; do
    lora=()
    [ "$method" = lora16 ] && lora=(--lora-r 16)
    hone_bench "decoder-$method-bf16-8x512" --model "$work/smollm2" --precision bf16 \
      --batch-size 8 --max-length 512 ${lora[@]+"${lora[@]}"}
    run 300 "torch decoder $method" "$py" bench/decoder/gpu_lm_step.py step --model "$work/smollm2" \
      --batch 8 --seq 512 --precision bf16 --attn sdpa --steps 20 --warmup 3 ${lora[@]+"${lora[@]}"} \
      --json "$out/torch-decoder-$method-bf16-8x512.json"
  done
fi

if has train; then
  # A whole run on the GPU through the trainer, the store and the export: the tiny BERT
  # fixture on the SST-2 sample, in bf16 and fp16 (fp16 says which steps it skipped).
  for p in bf16 fp16; do
    run 300 "train tiny-bert $p" "$hone" train --db "$work/hone.db" --model tests/fixtures/tiny-bert \
      --train tests/fixtures/data/sst2_sample.tsv --device cuda:0 --precision "$p" --epochs 3 \
      --batch-size 8 --lr 1e-3 --out "$work/run-$p"
  done
  run 60 "runs list" "$hone" runs list --db "$work/hone.db"
fi

if has oom; then
  run 120 "batch 1024x512" "$py" bench/gpu_step.py dump-batch --out "$work/b1024x512.json" --batch 1024 --seq 512 --dense
  run 300 "out of memory" "$hone" bench --model "$work/bert-base" --device cuda:0 --batch-file "$work/b1024x512.json" \
    --steps 1 --warmup 0
  echo "(expected: exit 1 with 'ran out of memory' and a batch to try)"
fi

"$py" - "$out" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for f in sorted(glob.glob(os.path.join(out, "hone-*.json"))):
    key = os.path.basename(f)[5:-5]
    try:
        r = json.load(open(f))
    except Exception:
        continue
    rows.setdefault(key, {})["hone"] = r["train_step"]["median_s"]
for f in sorted(glob.glob(os.path.join(out, "torch-*.json"))):
    name = os.path.basename(f)[6:-5]
    key, attn = name.rsplit("-", 1)
    try:
        r = json.load(open(f))
    except Exception:
        continue
    rows.setdefault(key, {})[attn] = r["train_step_median_s"]
print("\nmodel batch precision: Hone step | torch eager | torch sdpa | torch compile | torch's step over Hone's (above 1: Hone is faster)")
for key, r in sorted(rows.items()):
    h, e, s, c = r.get("hone"), r.get("eager"), r.get("sdpa"), r.get("compile")
    ms = lambda v: "%.2f ms" % (v * 1e3) if v else "-"
    ratio = lambda v: "%.2fx" % (v / h) if v and h else "-"
    print(f"{key}: {ms(h)} | {ms(e)} | {ms(s)} | {ms(c)} | {ratio(e)} / {ratio(s)} / {ratio(c)}")
EOF
rm -rf "$work"
