"""The lecture's gpt.py model in PyTorch, configured by one of seedlab's gpt config files, for
side-by-side loss comparisons with `deno task exp gpt --config FILE`.

usage: python3 bench/gpt_torch.py CONFIG.json TEXT_FILE [SEED...]
       python3 bench/gpt_torch.py CONFIG.json TEXT_FILE --checkpoint RUN.safetensors

Prints one JSON line per seed: {"seed", "train", "val", "steps_per_sec"}. With --checkpoint it
trains nothing: it loads a seedlab gpt checkpoint's parameters into the PyTorch model with
load_state_dict(strict=True) (the names and shapes must be gpt.py's; only the heads' constant
`tril` buffers come from the model) and prints the loss
estimates over eval.iters batches of each split. The model is examples/torch_models.py's
GPTLanguageModel (gpt.py) with the ladder switches of experiments/gpt.ts: model.ffnMult (0 = no
feed-forward), model.residual (residual connections plus the projections gpt.py adds with them),
model.layerNorm (ln1, ln2, ln_f) and model.init ("gpt" = gpt.py's _init_weights, "pytorch" =
PyTorch's defaults, as in the lecture's early steps).
Batches, init and dropout come from torch's RNG, so losses match in distribution, not bit for bit.
"""
import json
import os
import sys
import time

import torch

# The model classes live in examples/torch_models.py, shared with the bench and `deno task export`.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from torch_models import GPTLanguageModel  # noqa: E402


def read_checkpoint(path):
    """The `param.*` tensors of a seedlab checkpoint (safetensors) as a state dict."""
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    state = {}
    for name, info in header.items():
        if not name.startswith("param."):
            continue
        start, end = info["data_offsets"]
        data = bytearray(raw[8 + n + start:8 + n + end])
        state[name[len("param."):]] = torch.frombuffer(data, dtype=torch.float32).reshape(info["shape"])
    return state


def main():
    cfg = json.load(open(sys.argv[1]))
    text = open(sys.argv[2], encoding="utf-8").read()
    checkpoint = sys.argv[4] if sys.argv[3:4] == ["--checkpoint"] else None
    seeds = [] if checkpoint else ([int(s) for s in sys.argv[3:]] or [1337])
    tr, ev, m = cfg.get("train", {}), cfg.get("eval", {}), cfg.get("model", {})
    batch_size, block_size = tr.get("batchSize", 16), tr.get("blockSize", 32)
    max_iters, lr, wd = tr.get("steps", 2000), tr.get("lr", 1e-3), tr.get("weightDecay", 0.01)
    eval_interval, eval_iters = ev.get("interval", 500), ev.get("iters", 200)
    n_embd, n_head, n_layer = m.get("nEmbd", 64), m.get("nHead", 4), m.get("nLayer", 4)
    dropout, ffn_mult = m.get("dropout", 0.0), m.get("ffnMult", 4)
    residual, layer_norm = m.get("residual", True), m.get("layerNorm", True)
    gpt_init = m.get("init", "gpt") == "gpt"

    chars = sorted(set(text))
    vocab_size = len(chars)
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = int(0.9 * len(data))
    train_data, val_data = data[:n], data[n:]

    def get_batch(split):
        d = train_data if split == "train" else val_data
        ix = torch.randint(len(d) - block_size, (batch_size,))
        x = torch.stack([d[i:i + block_size] for i in ix])
        y = torch.stack([d[i + 1:i + block_size + 1] for i in ix])
        return x, y

    def new_model():
        return GPTLanguageModel(vocab_size, n_embd, n_head, n_layer, block_size, dropout, ffn_mult,
                                residual, layer_norm, "gpt" if gpt_init else "pytorch")

    def loss_of(model, split):
        return model(*get_batch(split))[1]

    def estimate(model, seed):
        torch.manual_seed(seed)
        model.eval()
        out = {}
        with torch.no_grad():
            for split in ["train", "val"]:
                out[split] = sum(loss_of(model, split).item() for _ in range(eval_iters)) / eval_iters
        return out

    if checkpoint:
        model = new_model()
        # gpt.py's state dict also holds each head's constant `tril` mask buffer, which a
        # seedlab checkpoint does not store: take those from the model, everything else must
        # match by name and shape.
        state = read_checkpoint(checkpoint)
        state.update({k: v for k, v in model.state_dict().items() if k.endswith(".tril")})
        model.load_state_dict(state, strict=True)
        print(json.dumps({"checkpoint": checkpoint, **estimate(model, 0)}))

    for seed in seeds:
        torch.manual_seed(seed)
        model = new_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)

        @torch.no_grad()
        def estimate_loss():
            out = {}
            model.eval()
            for split in ["train", "val"]:
                losses = torch.zeros(eval_iters)
                for k in range(eval_iters):
                    losses[k] = loss_of(model, split).item()
                out[split] = losses.mean().item()
            model.train()
            return out

        train_time = 0.0
        losses = None
        for it in range(max_iters + 1):
            if it % eval_interval == 0 or it == max_iters:
                losses = estimate_loss()
                print(f"# seed {seed} step {it}: train {losses['train']:.4f}, val {losses['val']:.4f}",
                      file=sys.stderr)
            if it == max_iters:
                break
            t0 = time.perf_counter()
            loss = loss_of(model, "train")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            train_time += time.perf_counter() - t0
        print(json.dumps({"seed": seed, "train": round(losses["train"], 4), "val": round(losses["val"], 4),
                          "steps_per_sec": round(max_iters / train_time, 1)}), flush=True)


if __name__ == "__main__":
    main()
