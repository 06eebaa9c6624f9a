// Dropout's mask by hash, shared by dropout.cu and scores.cu (crates/hone-engine/src/graph/
// dropout.rs::uniform repeats it on the CPU): element i is kept when hone_uniform(seed, i) >= p.
#pragma once

#include <stdint.h>

// Uniform in [0, 1) from (seed, i): SplitMix64's finaliser, its top 24 bits.
__device__ __forceinline__ float hone_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z = z ^ (z >> 31);
  return (float)(z >> 40) * (1.0f / 16777216.0f);  // 24 bits: [0, 1)
}
