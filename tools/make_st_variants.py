#!/usr/bin/env python3
"""sentence-transformers variants of tests/fixtures/tiny-bert, with their reference vectors
(run here only; CI never runs it). Versions: tools/requirements-st-variants.txt.

Each tests/fixtures/st/<variant>/ holds the sentence-transformers files that make the
variant (modules.json, 1_Pooling/, Dense heads, config_sentence_transformers.json), written
by sentence-transformers itself (the legacy-* variants by hand, as older releases wrote
them), plus symlinks to tiny-bert's encoder and tokenizer, so each variant costs a few KB:

  mean, cls, max, mean-sqrt-len, weighted-mean, last-token   one ST6 "pooling_mode" string
  list-max-mean                                              ST6 list: max ++ mean
  legacy-all                                                 all six boolean keys (concatenated)
  legacy-cls                                                 boolean keys, CLS, no Normalize
  dense                                                      mean -> Dense 32->16 tanh -> Dense 16->8
                                                             identity, no bias -> Normalize
  prompts                                                    all six modes, include_prompt false,
                                                             named prompts + default_prompt_name,
                                                             Matryoshka dims in README.md
  lora/, lora-rslora/, lora-fan-in-fan-out/                  PEFT LoRA adapters (r 4, alpha 8) on
                                                             query, value and every dense, with
                                                             embeddings.LayerNorm in modules_to_save

reference.safetensors in each variant (and tests/fixtures/st/lora-reference.safetensors for
the adapters): F32 [n, dim] tensors, one per way of encoding the texts in __metadata__
"texts" (encode(batch_size=1) on CPU):
  raw                 prompt="" (no prompt)
  prompt.NAME         prompt_name=NAME
  default             no prompt argument (the model's default_prompt_name)
  prefix              prompt=PREFIX (metadata "prefix")
  dims.N              truncate_dim=N, then L2-normalized
  lora.NAME           the base model with adapter NAME merged (PeftModel.merge_and_unload)
"""
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.numpy import save_file
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import Dense, Normalize, Transformer
from sentence_transformers.sentence_transformer.modules import Pooling

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_models import write_json  # noqa: E402
from make_reference import tiny_texts  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "tests" / "fixtures" / "tiny-bert"
OUT = ROOT / "tests" / "fixtures" / "st"
LINKED = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
PREFIX = "Represent this sentence for retrieval: "
SEED = 7
ALL_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def texts():
    t = tiny_texts()
    return t[:6] + [t[12], "", "multiple     spaces   between    words"]  # t[12] is truncated at 64 tokens


def link_base(d):
    """Replaces the encoder and tokenizer files with links to tiny-bert's."""
    for f in LINKED:
        (d / f).unlink(missing_ok=True)
        (d / f).symlink_to(os.path.relpath(BASE / f, d))
    (d / "README.md").unlink(missing_ok=True)


def save_st(name, modules, **kw):
    d = OUT / name
    shutil.rmtree(d, ignore_errors=True)
    SentenceTransformer(modules=modules, device="cpu", **kw).save(str(d))
    link_base(d)
    return d


def transformer():
    return Transformer(str(BASE), max_seq_length=64)


def pooling(mode, include_prompt=True):
    return Pooling(32, pooling_mode=mode, include_prompt=include_prompt)


def load(d):
    torch.set_num_threads(2)
    m = SentenceTransformer(str(d), device="cpu")
    m.eval()
    return m


def encode(m, xs, **kw):
    with torch.no_grad():
        e = m.encode(xs, batch_size=1, convert_to_numpy=True, **kw)
    return np.ascontiguousarray(e.astype(np.float32))


def write_reference(path, tensors, extra=None):
    meta = {"texts": json.dumps(texts(), ensure_ascii=False), "prefix": PREFIX}
    meta.update(extra or {})
    save_file(tensors, str(path), metadata=meta)
    dims = {k: v.shape[1] for k, v in tensors.items()}
    print(f"{path.relative_to(ROOT)}: {dims}")


def legacy_pooling(d, modes, normalize):
    """The layout older sentence-transformers releases wrote: boolean keys, models.* types."""
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        mods.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (d / "2_Normalize").mkdir()
        (d / "2_Normalize" / ".gitkeep").write_text("")
    write_json(d / "modules.json", mods)
    keys = {"cls": "pooling_mode_cls_token", "max": "pooling_mode_max_tokens", "mean": "pooling_mode_mean_tokens",
            "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
            "weightedmean": "pooling_mode_weightedmean_tokens", "lasttoken": "pooling_mode_lasttoken"}
    cfg = {"word_embedding_dimension": 32}
    cfg.update({k: m in modes for m, k in keys.items()})
    write_json(d / "1_Pooling" / "config.json", cfg)
    write_json(d / "sentence_bert_config.json", {"max_seq_length": 64, "do_lower_case": False})
    link_base(d)
    return d


def plain_variants():
    single = {"mean": "mean", "cls": "cls", "max": "max", "mean-sqrt-len": "mean_sqrt_len_tokens",
              "weighted-mean": "weightedmean", "last-token": "lasttoken"}
    for name, mode in single.items():
        # max pooling is saved without Normalize: modules.json decides
        mods = [transformer(), pooling(mode)] + ([] if mode == "max" else [Normalize()])
        d = save_st(name, mods)
        write_reference(d / "reference.safetensors", {"raw": encode(load(d), texts())})
    d = save_st("list-max-mean", [transformer(), pooling(["max", "mean"]), Normalize()])
    write_reference(d / "reference.safetensors", {"raw": encode(load(d), texts())})
    for name, modes, normalize in [("legacy-all", ALL_MODES, True), ("legacy-cls", ("cls",), False)]:
        d = legacy_pooling(OUT / name, modes, normalize)
        write_reference(d / "reference.safetensors", {"raw": encode(load(d), texts())})


def dense_variant():
    torch.manual_seed(SEED)
    d1 = Dense(32, 16, bias=True, activation_function=torch.nn.Tanh())
    d2 = Dense(16, 8, bias=False, activation_function=torch.nn.Identity())
    with torch.no_grad():
        for p in list(d1.parameters()) + list(d2.parameters()):
            p.copy_(0.3 * torch.randn(p.shape))
    d = save_st("dense", [transformer(), pooling("mean"), d1, d2, Normalize()])
    write_reference(d / "reference.safetensors", {"raw": encode(load(d), texts())})


def prompts_variant():
    prompts = {"query": "query: ", "document": "passage: ", "classify": "Classify the topic of: "}
    d = save_st("prompts", [transformer(), pooling(ALL_MODES, include_prompt=False), Normalize()],
                prompts=prompts, default_prompt_name="classify")
    (d / "README.md").write_text("Trained with MatryoshkaLoss.\n\n```json\n{\n    \"loss\": \"MultipleNegativesRankingLoss\","
                                 "\n    \"matryoshka_dims\": [\n        192,\n        96,\n        48\n    ]\n}\n```\n")
    m = load(d)
    xs = texts()
    refs = {"raw": encode(m, xs, prompt=""), "default": encode(m, xs), "prefix": encode(m, xs, prompt=PREFIX)}
    for name in prompts:
        refs[f"prompt.{name}"] = encode(m, xs, prompt_name=name)
    for n in (96, 48):
        t = encode(m, xs, prompt="", truncate_dim=n)
        refs[f"dims.{n}"] = np.ascontiguousarray(t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12))
    write_reference(d / "reference.safetensors", refs)


def lora_variants():
    from transformers import BertModel

    base = BertModel.from_pretrained(str(BASE))
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value", "dense"],
                     modules_to_save=["embeddings.LayerNorm"])
    p = get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():  # a "trained" adapter: lora_B starts at zero, the saved LayerNorm at the base's
        for n, t in p.named_parameters():
            if "lora_" in n or "modules_to_save" in n:
                t.add_(0.2 * torch.randn(t.shape, generator=g))
    d = OUT / "lora"
    shutil.rmtree(d, ignore_errors=True)
    p.save_pretrained(str(d))
    (d / "README.md").unlink(missing_ok=True)
    c = json.load(open(d / "adapter_config.json"))
    c["base_model_name_or_path"] = "tiny-bert"
    write_json(d / "adapter_config.json", c)
    for name, change in [("lora-rslora", {"use_rslora": True}), ("lora-fan-in-fan-out", {"fan_in_fan_out": True})]:
        v = OUT / name
        shutil.rmtree(v, ignore_errors=True)
        v.mkdir()
        write_json(v / "adapter_config.json", {**c, **change})
        (v / "adapter_model.safetensors").symlink_to("../lora/adapter_model.safetensors")
    refs = {}
    for name in ["lora", "lora-rslora", "lora-fan-in-fan-out"]:
        m = load(BASE)
        hf = m[0].auto_model
        m[0].auto_model = PeftModel.from_pretrained(hf, str(OUT / name)).merge_and_unload()
        refs[f"lora.{name}"] = encode(m, texts())
    refs["raw"] = encode(load(BASE), texts())
    write_reference(OUT / "lora-reference.safetensors", refs)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    plain_variants()
    dense_variant()
    prompts_variant()
    lora_variants()


if __name__ == "__main__":
    main()
