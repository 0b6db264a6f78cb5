"""Random-weight models at multilingual-e5 shapes, saved like the hub repos.

usage: make_models.py TOKENIZER_JSON OUT_DIR  -> OUT_DIR/{e5-small,e5-base,e5-large}
"""
import json
import os
import shutil
import sys

import torch
from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

SHAPES = {
    # name: (model class, config class, hidden, layers, heads, intermediate, vocab, positions, eps)
    "e5-small": (BertModel, BertConfig, 384, 12, 12, 1536, 250037, 512, 1e-12),
    "e5-base": (XLMRobertaModel, XLMRobertaConfig, 768, 12, 12, 3072, 250002, 514, 1e-5),
    "e5-large": (XLMRobertaModel, XLMRobertaConfig, 1024, 24, 16, 4096, 250002, 514, 1e-5),
}
SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "sep_token": "</s>",
           "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>"}


def make(name, tokenizer_json, out):
    model_cls, cfg_cls, h, layers, heads, inter, vocab, pos, eps = SHAPES[name]
    cfg = cfg_cls(vocab_size=vocab, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                  intermediate_size=inter, max_position_embeddings=pos, layer_norm_eps=eps,
                  type_vocab_size=1 if name != "e5-small" else 2, pad_token_id=0 if name == "e5-small" else 1,
                  hidden_act="gelu")
    torch.manual_seed(1234)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = model_cls(cfg, add_pooling_layer=False)
    with torch.no_grad():  # non-trivial biases / LayerNorm so every fused term matters
        for n, p in model.named_parameters():
            if n.endswith("bias") or "LayerNorm" in n:
                p.add_(torch.randn_like(p) * 0.05)
    d = os.path.join(out, name)
    os.makedirs(os.path.join(d, "1_Pooling"), exist_ok=True)
    model.to("cpu").save_pretrained(d, safe_serialization=True)
    shutil.copy(tokenizer_json, os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 512, **SPECIAL}, f)
    with open(os.path.join(d, "special_tokens_map.json"), "w") as f:
        json.dump(SPECIAL, f)
    with open(os.path.join(d, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                  f)
    with open(os.path.join(d, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 512, "do_lower_case": False}, f)
    with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": h, "pooling_mode_cls_token": False,
                   "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
                   "pooling_mode_mean_sqrt_len_tokens": False}, f)
    print(f"made {d}", flush=True)


if __name__ == "__main__":
    tok, out = sys.argv[1], sys.argv[2]
    for n in (sys.argv[3].split(",") if len(sys.argv) > 3 else SHAPES):
        make(n, tok, out)
