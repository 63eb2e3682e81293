"""The lecture's PyTorch modules for seedlab's experiments, with the parameter names seedlab uses.

This is the one place the PyTorch models live: bench/torch_bench.py (the bench's PyTorch column)
and bench/gpt_torch.py (side-by-side losses for configs/gpt/) import them from here.

Load a checkpoint exported by `deno task export CKPT --out model.safetensors`:

    import safetensors.torch
    from torch_models import MODELS
    model = MODELS["attention_head"](vocab_size=65, n_embd=32, head_size=32, block_size=8)
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

and the other way: `safetensors.torch.save_file(model.state_dict(), "w.safetensors")`, then
`deno task exp attention_head --init-from w.safetensors`.

Every model's forward is the lecture's: `logits, loss = model(idx, targets)` (loss None without
targets).
"""
import torch
import torch.nn as nn
from torch.nn import functional as F


def _logits_and_loss(logits, targets):
    if targets is None:
        return logits, None
    B, T, C = logits.shape
    return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


class BigramLanguageModel(nn.Module):
    """`bigram`: the next character's logits are a row of a V x V table."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        return _logits_and_loss(self.token_embedding_table(idx), targets)


class Head(nn.Module):
    """One head of causal self-attention (the lecture's `Head`)."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        # A buffer, so it is in the state dict: seedlab computes it, and export writes it.
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)
        q = self.query(x)
        # Scaled by the head size, as the lecture's final code and seedlab do (the lecture's
        # first version writes C**-0.5, the same number when n_embd == head_size).
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = self.dropout(F.softmax(wei, dim=-1))
        return wei @ self.value(x)


class AttentionHeadModel(nn.Module):
    """`attention_head`: token + position embeddings, one self-attention head, lm_head."""

    def __init__(self, vocab_size, n_embd=32, head_size=32, block_size=8):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.sa_head = Head(n_embd, head_size, block_size)
        self.lm_head = nn.Linear(head_size, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))
        return _logits_and_loss(self.lm_head(self.sa_head(tok_emb + pos_emb)), targets)


class MultiHeadAttention(nn.Module):
    """Heads side by side, concatenated, then gpt.py's projection (which the lecture adds with
    the residual connections: project=False is the earlier rung without it)."""

    def __init__(self, num_heads, head_size, n_embd, block_size, dropout=0.0, project=True):
        super().__init__()
        self.heads = nn.ModuleList(
            [Head(n_embd, head_size, block_size, dropout) for _ in range(num_heads)]
        )
        self.proj = nn.Linear(head_size * num_heads, n_embd) if project else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out) if self.proj is not None else out)


class FeedForward(nn.Module):
    """Linear(n, m·n), ReLU, Linear(m·n, n), Dropout. As in experiments/gpt.ts, the lecture's
    early rung without residual connections has no second Linear when m = 1."""

    def __init__(self, n_embd, mult=4, dropout=0.0, residual=True):
        super().__init__()
        layers = [nn.Linear(n_embd, mult * n_embd), nn.ReLU()]
        if residual or mult != 1:
            layers.append(nn.Linear(mult * n_embd, n_embd))
        self.net = nn.Sequential(*layers, nn.Dropout(dropout))

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Pre-LN transformer block: x + sa(ln1(x)), then x + ffwd(ln2(x)); the ladder's switches
    drop the residual adds, the LayerNorms (identity) or the feed-forward (ffn_mult 0)."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0, ffn_mult=4, residual=True,
                 layer_norm=True):
        super().__init__()
        self.residual = residual
        self.sa = MultiHeadAttention(n_head, n_embd // n_head, n_embd, block_size, dropout,
                                     project=residual)
        self.ffwd = FeedForward(n_embd, ffn_mult, dropout, residual) if ffn_mult > 0 else None
        self.ln1 = nn.LayerNorm(n_embd) if layer_norm else nn.Identity()
        self.ln2 = nn.LayerNorm(n_embd) if layer_norm else nn.Identity()

    def forward(self, x):
        y = self.sa(self.ln1(x))
        x = x + y if self.residual else y
        if self.ffwd is not None:
            y = self.ffwd(self.ln2(x))
            x = x + y if self.residual else y
        return x


class GPTLanguageModel(nn.Module):
    """`gpt` (the lecture's gpt.py) with experiments/gpt.ts's ladder switches: ffn_mult (0 = no
    feed-forward), residual, layer_norm (ln1, ln2, ln_f) and init ("gpt" = gpt.py's
    _init_weights, "pytorch" = PyTorch's defaults, as in the lecture's early steps)."""

    def __init__(self, vocab_size, n_embd=64, n_head=4, n_layer=4, block_size=32, dropout=0.0,
                 ffn_mult=4, residual=True, layer_norm=True, init="gpt"):
        super().__init__()
        if init not in ("gpt", "pytorch"):
            raise ValueError(f'init must be "gpt" or "pytorch", not {init!r}')
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*[
            Block(n_embd, n_head, block_size, dropout, ffn_mult, residual, layer_norm)
            for _ in range(n_layer)
        ])
        self.ln_f = nn.LayerNorm(n_embd) if layer_norm else nn.Identity()
        self.lm_head = nn.Linear(n_embd, vocab_size)
        if init == "gpt":
            self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))
        return _logits_and_loss(self.lm_head(self.ln_f(self.blocks(tok_emb + pos_emb))), targets)


def _gpt(vocab_size, n_embd=64, n_head=4, n_layer=4, block_size=32, dropout=0.0, ffn_mult=4,
         residual=True, layer_norm=True, init="gpt", **_):
    return GPTLanguageModel(vocab_size, n_embd, n_head, n_layer, block_size, dropout, ffn_mult,
                            residual, layer_norm, init)


# seedlab experiment name -> module (keyword arguments: vocab_size, and the run's model.* and
# train.blockSize in snake case: n_embd, head_size, n_head, n_layer, block_size, ffn_mult,
# residual, layer_norm, init, dropout; keys a model does not take are ignored).
MODELS = {
    "bigram": lambda vocab_size, **_: BigramLanguageModel(vocab_size),
    "attention_head": lambda vocab_size, n_embd=32, head_size=32, block_size=8, **_: (
        AttentionHeadModel(vocab_size, n_embd, head_size, block_size)
    ),
    "gpt": _gpt,
}

