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

    def __init__(self, n_embd, head_size, block_size):
        super().__init__()
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        # A buffer, so it is in the state dict: seedlab computes it, and export writes it.
        self.register_buffer("tril", torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        B, T, C = x.shape
        k = self.key(x)
        q = self.query(x)
        # Scaled by the head size, as the lecture's final code and seedlab do (the lecture's
        # first version writes C**-0.5, the same number when n_embd == head_size).
        wei = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf"))
        wei = F.softmax(wei, dim=-1)
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


# seedlab experiment name -> module class (keyword arguments: vocab_size and the config's
# model.* and train.blockSize as block_size).
MODELS = {
    "bigram": lambda vocab_size, **_: BigramLanguageModel(vocab_size),
    "attention_head": lambda vocab_size, n_embd=32, head_size=32, block_size=8, **_: (
        AttentionHeadModel(vocab_size, n_embd, head_size, block_size)
    ),
}
