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
import torch.nn as nn
import torch.nn.functional as F


class Bigram(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.token_embedding_table = nn.Embedding(spec["vocab"], spec["vocab"])

    def forward(self, idx):
        return self.token_embedding_table(idx)


class Head(nn.Module):
    """One causal self-attention head: key, query and value projections without bias."""

    def __init__(self, n_embd, head_size, block, dropout):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(block, block)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        T = x.shape[1]
        k, q = self.key(x), self.query(x)
        scores = (q @ k.transpose(-2, -1)) * k.shape[-1] ** -0.5
        weights = scores.masked_fill(self.tril[:T, :T] == 0, float("-inf")).softmax(-1)
        return self.dropout(weights) @ self.value(x)


class AttentionHead(nn.Module):
    """The lecture's single-head model: embeddings, one head, lm_head."""

    def __init__(self, spec):
        super().__init__()
        n_embd, head_size = spec["n_embd"], spec["head_size"]
        self.token_embedding_table = nn.Embedding(spec["vocab"], n_embd)
        self.position_embedding_table = nn.Embedding(spec["block"], n_embd)
        self.sa_head = Head(n_embd, head_size, spec["block"], 0.0)
        self.lm_head = nn.Linear(head_size, spec["vocab"])

    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T))
        return self.lm_head(self.sa_head(x))


class MultiHeadAttention(nn.Module):
    def __init__(self, n_embd, n_head, block, dropout, project):
        super().__init__()
        size = n_embd // n_head
        self.heads = nn.ModuleList(Head(n_embd, size, block, dropout) for _ in range(n_head))
        self.proj = nn.Linear(size * n_head, n_embd) if project else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out)) if self.proj is not None else out


class FeedForward(nn.Module):
    """Linear(n, m·n), ReLU, Linear(m·n, n), Dropout. As in experiments/gpt.ts, the lecture's
    early rung without residual connections has no second Linear when m = 1."""

    def __init__(self, n_embd, mult, dropout, residual):
        super().__init__()
        layers = [nn.Linear(n_embd, mult * n_embd), nn.ReLU()]
        if residual or mult != 1:
            layers.append(nn.Linear(mult * n_embd, n_embd))
        self.net = nn.Sequential(*layers, nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Pre-LN transformer block: x + sa(ln1(x)), then x + ffwd(ln2(x))."""

    def __init__(self, spec):
        super().__init__()
        n_embd, dropout = spec["n_embd"], spec["dropout"]
        self.residual = spec["residual"]
        self.sa = MultiHeadAttention(n_embd, spec["n_head"], spec["block"], dropout, self.residual)
        mult = spec["ffn_mult"]
        self.ffwd = FeedForward(n_embd, mult, dropout, self.residual) if mult > 0 else None
        norm = spec["layer_norm"]
        self.ln1 = nn.LayerNorm(n_embd) if norm else nn.Identity()
        self.ln2 = nn.LayerNorm(n_embd) if norm else nn.Identity()

    def forward(self, x):
        x = x + self.sa(self.ln1(x)) if self.residual else self.sa(self.ln1(x))
        if self.ffwd is not None:
            x = x + self.ffwd(self.ln2(x)) if self.residual else self.ffwd(self.ln2(x))
        return x


class GPT(nn.Module):
    """The lecture's gpt.py: token + position embeddings, Blocks, ln_f, lm_head; N(0, 0.02) init."""

    def __init__(self, spec):
        super().__init__()
        n_embd = spec["n_embd"]
        self.token_embedding_table = nn.Embedding(spec["vocab"], n_embd)
        self.position_embedding_table = nn.Embedding(spec["block"], n_embd)
        self.blocks = nn.Sequential(*[Block(spec) for _ in range(spec["n_layer"])])
        self.ln_f = nn.LayerNorm(n_embd) if spec["layer_norm"] else nn.Identity()
        self.lm_head = nn.Linear(n_embd, spec["vocab"])
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.token_embedding_table(idx) + self.position_embedding_table(torch.arange(T))
        return self.lm_head(self.ln_f(self.blocks(x)))


MODELS = {"bigram": Bigram, "attention_head": AttentionHead, "gpt": GPT}

GPT_DEFAULTS = {"n_embd": 64, "n_head": 4, "n_layer": 4, "dropout": 0.0, "ffn_mult": 4,
                "residual": True, "layer_norm": True}

DEFAULT_SPEC = {"models": [
    {"name": "bigram", "kind": "bigram", "steps": 2000, "batch": 32, "block": 8, "vocab": 89,
     "lr": 1e-3},
    {"name": "attention_head", "kind": "attention_head", "steps": 1000, "batch": 32, "block": 8,
     "vocab": 89, "lr": 1e-3, "n_embd": 32, "head_size": 32},
    {"name": "gpt", "kind": "gpt", "steps": 100, "batch": 16, "block": 32, "vocab": 89,
     "lr": 1e-3, **GPT_DEFAULTS},
]}


def steps_per_second(spec):
    """Trains spec["steps"] timed steps (after a short warm-up) and returns steps/s."""
    model = MODELS[spec["kind"]]({**GPT_DEFAULTS, **spec})
    model.train()
    vocab, batch, block = spec["vocab"], spec["batch"], spec["block"]
    data = torch.randint(0, vocab, (200_000,))
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"])

    def step():
        ix = torch.randint(len(data) - block, (batch,))
        x = torch.stack([data[i:i + block] for i in ix])
        y = torch.stack([data[i + 1:i + block + 1] for i in ix])
        logits = model(x)
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
