"""Side-by-side baseline: seedlab's bench configs trained in PyTorch on the CPU.

Usage: python3 torch_bench.py [SPEC.json | -]   (no argument: the three default configs)

SPEC is {"models": [{"name", "kind": "bigram"|"attention_head"|"gpt", "steps", "batch",
"block", "vocab", "lr", ...model keys}]}; bench/main.ts writes it from each experiment's
default config. Prints one JSON object: {"torch", "threads", "blas": {"name", "library",
"threads"}, "figures": {name: steps/s}}. "blas" names the library that actually provides the
sgemm_ libtorch calls (resolved through libtorch's own symbol scope, as its calls are), so
LD_LIBRARY_PATH and Debian's BLAS alternatives are both accounted for. The data is random
tokens: speed does not depend on the text.
"""
import ctypes
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

# The model classes live in examples/torch_models.py, shared with gpt_torch.py and export users.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from torch_models import MODELS  # noqa: E402


# The spec's model keys, as MODELS (examples/torch_models.py) names its arguments.
MODEL_KEYS = ("n_embd", "head_size", "n_head", "n_layer", "dropout", "ffn_mult", "residual",
              "layer_norm")


def new_model(spec):
    """The spec's model: the lecture's module, gpt with gpt.py's init."""
    keys = {k: spec[k] for k in MODEL_KEYS if k in spec}
    return MODELS[spec["kind"]](vocab_size=spec["vocab"], block_size=spec["block"], **keys)


DEFAULT_SPEC = {"models": [
    {"name": "bigram", "kind": "bigram", "steps": 2000, "batch": 32, "block": 8, "vocab": 89,
     "lr": 1e-3},
    {"name": "attention_head", "kind": "attention_head", "steps": 1000, "batch": 32, "block": 8,
     "vocab": 89, "lr": 1e-3, "n_embd": 32, "head_size": 32},
    {"name": "gpt", "kind": "gpt", "steps": 100, "batch": 16, "block": 32, "vocab": 89,
     "lr": 1e-3, "n_embd": 64, "n_head": 4, "n_layer": 4},
]}


def steps_per_second(spec):
    """Trains spec["steps"] timed steps (after a short warm-up) and returns steps/s."""
    model = new_model(spec)
    model.train()
    vocab, batch, block = spec["vocab"], spec["batch"], spec["block"]
    data = torch.randint(0, vocab, (200_000,))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"])

    def step():
        ix = torch.randint(len(data) - block, (batch,))
        x = torch.stack([data[i:i + block] for i in ix])
        y = torch.stack([data[i + 1:i + block + 1] for i in ix])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.view(-1, vocab), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    steps = spec["steps"]
    for _ in range(max(5, min(50, steps // 10))):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


class DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def blas_in_use():
    """The library whose sgemm_ libtorch binds to, found through libtorch's symbol scope."""
    mapped = [line.split()[-1] for line in open("/proc/self/maps") if "libtorch_cpu" in line]
    if not mapped:
        return {"name": "unknown (libtorch_cpu not mapped)", "library": None}
    torch_cpu = ctypes.CDLL(mapped[0], mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    try:
        sgemm = ctypes.cast(torch_cpu.sgemm_, ctypes.c_void_p)
    except AttributeError:
        return {"name": "none (libtorch resolves no sgemm_)", "library": None}
    info = DlInfo()
    if not ctypes.CDLL("libc.so.6").dladdr(sgemm, ctypes.byref(info)):
        return {"name": "unknown (dladdr failed)", "library": None}
    library = os.path.realpath(info.dli_fname.decode())
    if "openblas" in library:
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "default (all cores)")
        name = f"OpenBLAS, {threads} thread(s)"
    elif "/blas/" in library:
        name = "reference BLAS (netlib)"
    else:
        name = os.path.basename(library)
    return {"name": name, "library": library}


def main():
    arg = sys.argv[1] if len(sys.argv) > 1 else None
    if arg is None:
        spec = DEFAULT_SPEC
    else:
        spec = json.load(sys.stdin if arg == "-" else open(arg))
    torch.manual_seed(1337)
    figures = {m["name"]: steps_per_second(m) for m in spec["models"]}
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "blas": blas_in_use(),
        "figures": figures,
    }))


if __name__ == "__main__":
    main()
