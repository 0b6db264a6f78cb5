#!/usr/bin/env python3
"""Export an HF checkpoint dir to ONNX (fp32) and a dynamic int8 copy, cached under models/onnx/.

Graph: transformers AutoModel (eager attention) + masked mean pooling + L2 normalize,
inputs input_ids/attention_mask int64 [batch, seq] (dynamic axes), output
`embeddings` float32 [batch, dim]. Exporter: torch.onnx.export(dynamo=False), opset 17.
int8: onnxruntime.quantization.quantize_dynamic(per_channel=True, weight_type=QInt8).
Run as a subprocess by tools/compare: `export_onnx.py MODEL_DIR OUT_DIR`.
"""
import json
import os
import sys
import time
from pathlib import Path


def export(model_dir, out_dir):
    import torch
    from transformers import AutoModel

    out_dir.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out_dir / "model.onnx", out_dir / "model.int8.onnx"
    if not fp32.exists():
        t0 = time.time()
        base = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager", add_pooling_layer=False).eval()

        class Pooled(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask):
                h = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                w = attention_mask.unsqueeze(-1).to(h.dtype)
                v = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
                return torch.nn.functional.normalize(v, p=2.0, dim=1)

        ids = torch.tensor([[0, 1000, 2000, 2], [0, 1000, 2, 1]], dtype=torch.long)
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.long)
        tmp = fp32.with_suffix(".tmp.onnx")
        torch.onnx.export(Pooled(base), (ids, mask), str(tmp), dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["embeddings"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                        "attention_mask": {0: "batch", 1: "seq"},
                                        "embeddings": {0: "batch"}})
        if tmp.with_suffix(".data").exists() or any(out_dir.glob("*.tmp.onnx.data")):
            raise RuntimeError("external data not expected for this model size")
        tmp.rename(fp32)
        print(f"export: {fp32} ({fp32.stat().st_size / 2**20:.0f} MiB, {time.time() - t0:.1f} s)", file=sys.stderr)
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic
        t0 = time.time()
        tmp = int8.with_suffix(".tmp.onnx")
        quantize_dynamic(str(fp32), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
        tmp.rename(int8)
        print(f"quantize: {int8} ({int8.stat().st_size / 2**20:.0f} MiB, {time.time() - t0:.1f} s)", file=sys.stderr)
    import onnxruntime, torch as _t
    meta = {"model_dir": str(model_dir), "torch": _t.__version__, "onnxruntime": onnxruntime.__version__,
            "exporter": "torch.onnx.export(dynamo=False, opset 17)", "quantization": "quantize_dynamic per_channel QInt8"}
    (out_dir / "export.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    export(Path(sys.argv[1]), Path(sys.argv[2]))
