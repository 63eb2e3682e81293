"""Side-by-side baseline: the same training configs as seedlab's bench, in PyTorch on the CPU.

Prints one JSON object: {"torch": version, "threads": n, "bigram": steps/s, "attention_head": steps/s}.
The data is random tokens over a vocabulary of 89 (the embedded corpus's size): speed does not
depend on the text.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 89
BATCH, BLOCK = 32, 8


class Bigram(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(VOCAB, VOCAB)

    def forward(self, idx):
        return self.table(idx)


class OneHead(nn.Module):
    def __init__(self, n_embd=32, head_size=32):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, n_embd)
        self.pos = nn.Embedding(BLOCK, n_embd)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.lm_head = nn.Linear(head_size, VOCAB)
        self.register_buffer("tril", torch.tril(torch.ones(BLOCK, BLOCK)))
        self.scale = head_size ** -0.5

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T))
        k, q, v = self.key(x), self.query(x), self.value(x)
        wei = (q @ k.transpose(-2, -1)) * self.scale
        wei = wei.masked_fill(self.tril[:T, :T] == 0, float("-inf")).softmax(-1)
        return self.lm_head(wei @ v)


def steps_per_second(model, steps):
    data = torch.randint(0, VOCAB, (200_000,))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        ix = torch.randint(len(data) - BLOCK, (BATCH,))
        x = torch.stack([data[i:i + BLOCK] for i in ix])
        y = torch.stack([data[i + 1:i + BLOCK + 1] for i in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, VOCAB), y.view(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(50):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    torch.manual_seed(1337)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "bigram": steps_per_second(Bigram(), steps),
        "attention_head": steps_per_second(OneHead(), steps // 2),
    }))


if __name__ == "__main__":
    main()
