"""The lecture's PyTorch modules for seedlab's experiments, with the parameter names seedlab uses.

Load a checkpoint exported by `deno task export CKPT --out model.safetensors`:

    import safetensors.torch
    from torch_models import MODELS
    model = MODELS["attention_head"](vocab_size=65, n_embd=32, head_size=32, block_size=8)
    model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

and the other way: `safetensors.torch.save_file(model.state_dict(), "w.safetensors")`, then
`deno task exp attention_head --init-from w.safetensors`.
"""
import torch
import torch.nn as nn
from torch.nn import functional as F


class BigramLanguageModel(nn.Module):
    """`bigram`: the next character's logits are a row of a V x V table."""

    def __init__(self, vocab_size):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx, targets=None):
        logits = self.token_embedding_table(idx)  # (B, T, V)
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


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
        logits = self.lm_head(self.sa_head(tok_emb + pos_emb))
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


class MultiHeadAttention(nn.Module):
    """Heads side by side, concatenated, then a projection (gpt.py)."""

    def __init__(self, num_heads, head_size, n_embd, block_size, dropout=0.0):
        super().__init__()
        self.heads = nn.ModuleList(
            [Head(n_embd, head_size, block_size, dropout) for _ in range(num_heads)]
        )
        self.proj = nn.Linear(head_size * num_heads, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        out = torch.cat([h(x) for h in self.heads], dim=-1)
        return self.dropout(self.proj(out))


class FeedForward(nn.Module):
    def __init__(self, n_embd, mult=4, dropout=0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_embd, mult * n_embd),
            nn.ReLU(),
            nn.Linear(mult * n_embd, n_embd),
            nn.Dropout(dropout),
        )

    def forward(self, x):
        return self.net(x)


class Block(nn.Module):
    """Pre-LN transformer block: x + sa(ln1(x)), then x + ffwd(ln2(x))."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0, ffn_mult=4):
        super().__init__()
        self.sa = MultiHeadAttention(n_head, n_embd // n_head, n_embd, block_size, dropout)
        self.ffwd = FeedForward(n_embd, ffn_mult, dropout)
        self.ln1 = nn.LayerNorm(n_embd)
        self.ln2 = nn.LayerNorm(n_embd)

    def forward(self, x):
        x = x + self.sa(self.ln1(x))
        return x + self.ffwd(self.ln2(x))


class GPTLanguageModel(nn.Module):
    """`gpt` (the lecture's gpt.py) with its default model switches (residual, layerNorm on)."""

    def __init__(self, vocab_size, n_embd=64, n_head=4, n_layer=4, block_size=32, dropout=0.0,
                 ffn_mult=4):
        super().__init__()
        self.token_embedding_table = nn.Embedding(vocab_size, n_embd)
        self.position_embedding_table = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(
            *[Block(n_embd, n_head, block_size, dropout, ffn_mult) for _ in range(n_layer)]
        )
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        tok_emb = self.token_embedding_table(idx)
        pos_emb = self.position_embedding_table(torch.arange(T, device=idx.device))
        logits = self.lm_head(self.ln_f(self.blocks(tok_emb + pos_emb)))
        if targets is None:
            return logits, None
        B, T, C = logits.shape
        return logits, F.cross_entropy(logits.view(B * T, C), targets.view(B * T))


def _gpt(vocab_size, n_embd=64, n_head=4, n_layer=4, block_size=32, dropout=0.0, ffn_mult=4,
         residual=True, layer_norm=True, **_):
    if not (residual and layer_norm and ffn_mult > 0):
        raise NotImplementedError("this module is gpt.py's full model (residual, layerNorm, FFN)")
    return GPTLanguageModel(vocab_size, n_embd, n_head, n_layer, block_size, dropout, ffn_mult)


# seedlab experiment name -> module (keyword arguments: vocab_size, and the run's model.* and
# train.blockSize in snake case: n_embd, head_size, n_head, n_layer, block_size, ...).
MODELS = {
    "bigram": lambda vocab_size, **_: BigramLanguageModel(vocab_size),
    "attention_head": lambda vocab_size, n_embd=32, head_size=32, block_size=8, **_: (
        AttentionHeadModel(vocab_size, n_embd, head_size, block_size)
    ),
    "gpt": _gpt,
}
