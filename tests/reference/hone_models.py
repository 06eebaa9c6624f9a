"""Loading a folder Hone exported, as a user of transformers would: a full model folder with
`from_pretrained`, or a LoRA adapter folder (PEFT's format) with `PeftModel.from_pretrained` on
its base model, given the head's labels Hone keeps in head_config.json."""
import json
import os


def load_exported(export_dir, auto_class):
    """The model in `export_dir` (an `AutoModelFor…` class for `auto_class`), in eval mode."""
    adapter_config = os.path.join(export_dir, "adapter_config.json")
    if not os.path.exists(adapter_config):
        return auto_class.from_pretrained(export_dir).eval()
    from peft import PeftModel

    with open(adapter_config, encoding="utf-8") as f:
        settings = json.load(f)
    base = settings["base_model_name_or_path"]
    with open(os.path.join(export_dir, "head_config.json"), encoding="utf-8") as f:
        head = json.load(f)
    if not os.path.isdir(base):
        # A Hub id: on this machine Hone also recorded the base model's folder.
        base = head.get("hone_base_model_folder", base)
    labels = {}
    if "id2label" in head:
        labels = {"id2label": {int(k): v for k, v in head["id2label"].items()},
                  "label2id": head["label2id"]}
    model = auto_class.from_pretrained(base, ignore_mismatched_sizes=True, **labels)
    if settings["peft_type"] == "PREFIX_TUNING":
        # A prefix lives in the PeftModel wrapper (its past key values), not in the layers.
        return PeftModel.from_pretrained(model, export_dir).eval()
    # The transformers model with PEFT's LoRA layers in it. Not the PeftModel wrapper itself:
    # PEFT 0.21's PeftModelForQuestionAnswering.forward drops `token_type_ids` (and
    # `position_ids`) before calling the model, so BERT's question / passage segments would be
    # lost; the wrapped model computes what PEFT's layers compute, with every input.
    return PeftModel.from_pretrained(model, export_dir).get_base_model().eval()

