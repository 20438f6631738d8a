"""Train a small model with Lightning and keep every checkpoint in reg.

    pip install "./python[lightning]"
    python python/examples/train_with_reg.py            # trains 3 epochs, pushes 3 versions
    reg log demo                                        # the versions, with epochs
    python python/examples/train_with_reg.py --resume   # continues from reg://demo@epoch=1
"""

import argparse
import tempfile

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from reg.lightning import RegCheckpointIO


class Net(L.LightningModule):
    def __init__(self, lr: float = 1e-2, hidden: int = 32):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def data(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 8, generator=g)
    return DataLoader(TensorDataset(x, (x.sum(1) > 0).long()), batch_size=16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="demo")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--resume", action="store_true", help="continue from reg://NAME@epoch=1")
    args = ap.parse_args()
    L.seed_everything(0)
    trainer = L.Trainer(
        max_epochs=args.epochs + (2 if args.resume else 0),
        default_root_dir=tempfile.mkdtemp(),
        plugins=[RegCheckpointIO(args.name)],
        callbacks=[ModelCheckpoint(monitor="val_loss", save_top_k=-1, filename="{epoch}")],
        logger=False,
        enable_progress_bar=False,
    )
    ckpt = f"reg://{args.name}@epoch=1" if args.resume else None
    trainer.fit(Net(), data(0), data(1), ckpt_path=ckpt)
    best = Net.load_from_checkpoint(f"reg://{args.name}@best")
    print("best version's hparams:", dict(best.hparams))


if __name__ == "__main__":
    main()
