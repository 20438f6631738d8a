"""Write float32 tensors of the last two epochs of a series as raw files
for reg-store's codec bench on real data (codecs_bench_real):
NAME.parent.f32 (epoch N-1) and NAME.f32 (epoch N), for a trainable
weight and its Adam exp_avg and exp_avg_sq; and a frozen embedding
(NAME.f32 only: it is the same blob in every epoch).

  python dump_tensors.py OUT_DIR EPOCH_N-1.ckpt EPOCH_N.ckpt

Loads with torch (weights_only=False: the files are the series this
benchmark made itself).
"""
import sys
from pathlib import Path

import torch


def main():
    out, older, newer = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    a = torch.load(older, map_location="cpu", weights_only=False)
    b = torch.load(newer, map_location="cpu", weights_only=False)
    sa, sb = a["state_dict"], b["state_dict"]
    trainable = [k for k in sa if k in sb and sa[k].dtype == torch.float32 and not torch.equal(sa[k], sb[k])]
    frozen = [k for k in sa if k in sb and sa[k].dtype == torch.float32 and torch.equal(sa[k], sb[k])]
    weight = max(trainable, key=lambda k: sa[k].numel())
    emb = max(frozen, key=lambda k: sa[k].numel())
    pairs = {"weight": (sa[weight], sb[weight]), "embedding": (sa[emb], sb[emb])}
    oa, ob = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    idx = max(oa, key=lambda i: oa[i]["exp_avg"].numel())
    for key in ("exp_avg", "exp_avg_sq"):
        pairs[key] = (oa[idx][key], ob[idx][key])
    for name, (x, y) in pairs.items():
        # A frozen tensor is the same blob in both epochs (deduplicated):
        # it has no parent to be a delta against.
        if name != "embedding":
            x.contiguous().numpy().tofile(out / f"{name}.parent.f32")
        y.contiguous().numpy().tofile(out / f"{name}.f32")
        print(f"dump_tensors: {name} {tuple(y.shape)} ({y.numel() * 4 / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
