"""A decoder the size of Qwen2.5-0.5B (its config.json's dimensions, random weights) with
SmolLM2's tokenizer and chat template (its 49,152 ids fit the 151,936-row table): what the memory
check of bench/decoder/memory_decoder.sh fine-tunes. Nothing real is learned from it; the
weights only have to be the right shapes.

Usage: python make_qwen05b.py TOKENIZER_DIR OUT_DIR
"""
import pathlib
import shutil
import sys

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def main() -> None:
    tokenizer, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    config = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, bos_token_id=1, eos_token_id=2,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
        if (tokenizer / name).exists():
            shutil.copy(tokenizer / name, out / name)
    print(f"{out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
