"""The Python API in one run: save three checkpoints of a small model, push
them, look at them, load weights back without a file in between.

    pip install ./python torch safetensors
    python python/examples/api_example.py
"""

import os
import tempfile

import torch
from torch import nn

import reg

work = tempfile.mkdtemp()
registry = reg.Registry(os.path.join(work, "registry"))  # Registry() uses the one reg finds

model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
for epoch in range(3):
    model(torch.randn(16, 8)).sum().backward()
    opt.step()
    opt.zero_grad()
    path = os.path.join(work, f"epoch={epoch}.pt")
    torch.save({"epoch": epoch, "state_dict": model.state_dict(), "optimizer": opt.state_dict()}, path)
    report = registry.push(path, name="demo", message=f"epoch {epoch}")
    print(f"pushed {report['name']}@v{report['version']}: {report['new_raw_bytes']} new bytes")

print([(v["version"], v["message"]) for v in registry.log("demo")])
changed = registry.diff("demo@v1", "demo@v3", stats=True)["tensors"]["changed"]
print({c["path"]: round(c["rel_l2"], 4) for c in changed if c.get("rel_l2") is not None})

weights = reg.load_state_dict("demo@v3", registry=registry)  # from reg's stdout, in memory
model.load_state_dict(weights)
checkpoint = reg.load_checkpoint("demo@v2", registry=registry)  # torch.load(weights_only=True) semantics
print(checkpoint["epoch"], sorted(checkpoint["optimizer"]))

try:
    registry.show("demo@v9")
except reg.VersionNotFoundError as e:
    print(f"RegError (exit {e.code}): {e}")
