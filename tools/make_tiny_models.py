#!/usr/bin/env python3
"""Tiny random models committed as test fixtures (needs torch, transformers, tokenizers).

  tests/fixtures/tiny-bert/      BertModel, WordPiece tokenizer (vocab ~500)
  tests/fixtures/tiny-bert-f16/  same weights, float16, keys prefixed "bert."
  tests/fixtures/tiny-xlmr/      XLMRobertaModel (gelu_new), Unigram tokenizer (vocab ~500)
                                 with the e5-small normalizer/pre-tokenizer/post-processor

Needs models/multilingual-e5-small/tokenizer.json (tools/build_models.py).
Then run tools/make_reference.py to write each model's reference.safetensors.
"""
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_models import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
E5_TOK = ROOT / "models" / "multilingual-e5-small" / "tokenizer.json"
SEED = 42


def corpus(langs=None):
    out = []
    for name in ["multilingual.jsonl", "tokenizer_edge_cases.jsonl"]:
        for line in open(FIX / "texts" / name, encoding="utf-8"):
            r = json.loads(line)
            if langs is None or r["lang"] in langs:
                out.append(r["text"])
    return out


# The Unigram trainer needs every character in the vocabulary, so tiny-xlmr is
# trained on European-script texts only; CJK etc. then hit <unk> (tested too).
XLMR_TRAIN_LANGS = {"en_Latn", "de_Latn", "fr_Latn", "es_Latn", "ru_Cyrl", "pt_Latn", "it_Latn", "nl_Latn",
                    "pl_Latn", "tr_Latn", "sw_Latn", "id_Latn", "uk_Cyrl", "el_Grek"}


def st_files(out, dim, max_seq_length, lower):
    write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True})
    write_json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "2_Normalize" / ".gitkeep").write_text("")


def randomize(model, std=0.1):
    """Non-trivial values everywhere (LayerNorm and biases too) so that a missed
    bias or LayerNorm parameter shows up in the reference comparison."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + std * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))


def tiny_bert(texts):
    out = FIX / "tiny-bert"
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials,
                                                             limit_alphabet=250, min_frequency=1))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.save(str(out / "tokenizer.json"))
    V = tok.get_vocab_size()
    write_json(out / "tokenizer_config.json", {
        "do_lower_case": True, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "cls_token": "[CLS]", "mask_token": "[MASK]", "tokenize_chinese_chars": True, "strip_accents": None,
        "tokenizer_class": "BertTokenizer", "model_max_length": 64})
    write_json(out / "special_tokens_map.json", {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                                                 "cls_token": "[CLS]", "mask_token": "[MASK]"})
    cfg = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12,
                     pad_token_id=0)
    torch.manual_seed(SEED)
    m = BertModel(cfg).eval()
    randomize(m)
    m.save_pretrained(out, safe_serialization=True)
    fix_config(out / "config.json", "float32", ["BertModel"])
    st_files(out, 32, 64, True)

    # f16 copy with "bert." prefix
    o16 = FIX / "tiny-bert-f16"
    o16.mkdir(parents=True, exist_ok=True)
    for f in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"]:
        shutil.copyfile(out / f, o16 / f)
    fix_config(o16 / "config.json", "float16", ["BertModel"])
    sd = {"bert." + k: v.detach().to(torch.float16).contiguous() for k, v in m.state_dict().items()}
    save_file(sd, str(o16 / "model.safetensors"), metadata={"format": "pt"})
    st_files(o16, 32, 64, True)
    print(f"tiny-bert: vocab {V}")


def fix_config(path, dtype, arch):
    c = json.load(open(path))
    c.pop("dtype", None)
    c["torch_dtype"] = dtype
    c["architectures"] = arch
    write_json(path, c)


def tiny_xlmr(texts):
    out = FIX / "tiny-xlmr"
    out.mkdir(parents=True, exist_ok=True)
    e5 = json.load(open(E5_TOK, encoding="utf-8"))
    base = Tokenizer.from_file(str(E5_TOK))
    tok = Tokenizer(models.Unigram())
    tok.normalizer = base.normalizer
    tok.pre_tokenizer = base.pre_tokenizer
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tok.train_from_iterator(texts, trainers.UnigramTrainer(vocab_size=500, special_tokens=specials, unk_token="<unk>",
                                                           shrinking_factor=0.75, max_piece_length=8))
    j = json.loads(tok.to_str())
    for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder"):
        j[k] = e5[k]
    j["truncation"] = None
    j["padding"] = None
    assert [v[0] for v in j["model"]["vocab"][:4]] == specials, j["model"]["vocab"][:4]
    assert j["model"]["unk_id"] == 3
    for a in j["added_tokens"]:
        a["normalized"] = False
    with open(out / "tokenizer.json", "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False)
    V = len(j["model"]["vocab"])
    write_json(out / "tokenizer_config.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "model_max_length": 64, "pad_token": "<pad>",
        "sep_token": "</s>", "tokenizer_class": "XLMRobertaTokenizer", "unk_token": "<unk>"})
    write_json(out / "special_tokens_map.json", {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
                                                 "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"})
    cfg = XLMRobertaConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=66, type_vocab_size=1,
                           hidden_act="gelu_new", layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(SEED)
    m = XLMRobertaModel(cfg).eval()
    randomize(m)
    m.save_pretrained(out, safe_serialization=True)
    fix_config(out / "config.json", "float32", ["XLMRobertaModel"])
    st_files(out, 32, 64, False)
    print(f"tiny-xlmr: vocab {V}")


def main():
    tiny_bert(corpus())
    tiny_xlmr(corpus(XLMR_TRAIN_LANGS))


if __name__ == "__main__":
    main()
