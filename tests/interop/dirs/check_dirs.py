#!/usr/bin/env python3
"""Directory versions against real torch and transformers (issue 13).

usage: check_dirs.py --reg BIN --root REPO --scratch DIR

Makes checkpoint directories here with real libraries (not the committed
fixtures: a 4-rank FSDP2 run, bf16 Hugging Face shards, a Trainer run),
pushes them with `reg push DIR`, and checks:

  dcp export        `reg pull --format safetensors` of each DCP version
                    equals what torch's dcp_to_torch_save gives, tensor for
                    tensor (bit for bit)
  hf export         that of a sharded HF model equals its shards; the
                    weights saved with another max_shard_size add no tensor
                    bytes
  round trip        every pulled directory is byte-identical
  trainer resume    Trainer.train(resume_from_checkpoint=<pulled checkpoint-N>)
                    resumes at step N+1 with the pulled optimizer and
                    scheduler state, and ends with the same weights as the
                    run that never stopped

The last line is `N passed, M failed`.
"""
import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")

import torch
import torch.nn as nn

PASSED, FAILED = 0, 0


def check(name, ok, why=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"ok   {name}")
    else:
        FAILED += 1
        print(f"FAIL {name}: {why}")


def reg(args, registry, **kw):
    return subprocess.run([ARGS.reg, "--registry", registry, *args], capture_output=True, text=kw.pop("text", True), **kw)


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    for f in cmp.common_files:
        if not filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False):
            return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d)) for d in cmp.common_dirs)


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        elif torch.is_tensor(v):
            out[key] = v
    return out


def bitwise_equal(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    ra, rb = a.contiguous().reshape(-1), b.contiguous().reshape(-1)
    return torch.equal(ra.view(torch.uint8), rb.view(torch.uint8))


# ------------------------------------------------------------------ DCP


def _fsdp_worker(rank, world, root, port):
    warnings.filterwarnings("ignore")
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.fsdp import fully_shard

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(3)
    m = nn.Sequential(nn.Linear(24, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 7))
    for layer in m:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(100 + rank)
    for step in (1, 2, 3):
        m(torch.randn(8, 24, generator=g)).square().mean().backward()
        opt.step()
        opt.zero_grad()
        msd, osd = get_state_dict(m, opt)
        dcp.save({"model": msd, "optimizer": osd}, checkpoint_id=os.path.join(root, f"step={step}"))
        dist.barrier()
    dist.barrier()
    os._exit(0)


def check_dcp(scratch, registry):
    import torch.multiprocessing as mp
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    root = os.path.join(scratch, "fsdp4")
    mp.spawn(_fsdp_worker, args=(4, root, 29621), nprocs=4)
    for step in (1, 2, 3):
        d = os.path.join(root, f"step={step}")
        r = reg(["push", d, "--name", "fsdp4", "--json"], registry)
        check(f"dcp 4 ranks step={step}: push", r.returncode == 0, r.stderr)
    for step in (1, 2, 3):
        d = os.path.join(root, f"step={step}")
        out = os.path.join(scratch, f"pulled-fsdp4-{step}")
        r = reg(["pull", f"fsdp4@v{step}", "-o", out], registry)
        check(f"dcp step={step}: pulled tree is byte-identical", r.returncode == 0 and same_tree(d, out), r.stderr)
        st = os.path.join(scratch, f"fsdp4-{step}.safetensors")
        r = reg(["pull", f"fsdp4@v{step}", "--format", "safetensors", "-o", st], registry)
        if r.returncode != 0:
            check(f"dcp step={step}: export equals dcp_to_torch_save", False, r.stderr)
            continue
        ref_path = os.path.join(scratch, f"ref-{step}.pt")
        dcp_to_torch_save(d, ref_path)
        ref = flat(torch.load(ref_path, weights_only=False))
        got = load_file(st)
        missing = sorted(set(ref) - set(got))
        extra = sorted(set(got) - set(ref))
        unequal = [k for k in ref if k in got and not bitwise_equal(ref[k], got[k])]
        check(
            f"dcp step={step}: export equals dcp_to_torch_save ({len(ref)} tensors)",
            not missing and not extra and not unequal,
            f"missing {missing[:3]} extra {extra[:3]} unequal {unequal[:3]}",
        )
    w = os.path.join(scratch, "fsdp4-weights.safetensors")
    r = reg(["pull", "fsdp4", "--format", "safetensors", "--weights-only", "-o", w], registry)
    keys = list(load_file(w)) if r.returncode == 0 else []
    check("dcp --weights-only keeps only model weights", keys and all(k.startswith("model.") for k in keys), f"{r.stderr} {keys[:4]}")
    d = reg(["diff", "fsdp4@v1", "fsdp4@v2", "--json"], registry)
    changed = {c["path"] for c in json.loads(d.stdout)["tensors"]["changed"]} if d.returncode == 0 else set()
    check("dcp diff: every trained tensor changed, by key", "model.2.weight" in changed and "optimizer.state.2.weight.exp_avg" in changed, d.stderr)


# ------------------------------------------------------------------- HF


def tiny_bert(seed, dtype=torch.float32):
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=300, hidden_size=48, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=96, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg).to(dtype)


def check_hf(scratch, registry):
    from safetensors.torch import load_file

    model = tiny_bert(5, torch.bfloat16)
    dirs = {}
    for label, size in (("30KB", "30KB"), ("80KB", "80KB"), ("single", "100MB")):
        d = os.path.join(scratch, "hf", label)
        model.save_pretrained(d, max_shard_size=size)
        dirs[label] = d
    shards = [f for f in os.listdir(dirs["30KB"]) if f.endswith(".safetensors")]
    check("hf: the model is sharded", len(shards) > 2, shards)
    first = None
    for label, d in dirs.items():
        r = reg(["push", d, "--name", "bert16", "--json"], registry)
        ok = r.returncode == 0
        report = json.loads(r.stdout) if ok else {}
        if first is None:
            first = report
            check("hf bf16 shards: push", ok and report.get("new_raw_bytes", 0) > 0, r.stderr)
        else:
            check(f"hf {label}: the same weights add no tensor bytes", ok and report.get("new_raw_bytes") == 0, r.stderr or report)
    n = 1
    for label, d in dirs.items():
        st = os.path.join(scratch, f"hf-{label}.safetensors")
        r = reg(["pull", f"bert16@v{n}", "--format", "safetensors", "-o", st], registry)
        want = {}
        for f in os.listdir(d):
            if f.endswith(".safetensors"):
                want.update(load_file(os.path.join(d, f)))
        got = load_file(st) if r.returncode == 0 else {}
        ok = set(got) == set(want) and all(bitwise_equal(got[k], want[k]) for k in want)
        check(f"hf {label}: export equals its shards ({len(want)} tensors, bf16)", ok, r.stderr)
        out = os.path.join(scratch, f"pulled-hf-{label}")
        r = reg(["pull", f"bert16@v{n}", "-o", out], registry)
        check(f"hf {label}: pulled tree is byte-identical", r.returncode == 0 and same_tree(d, out), r.stderr)
        n += 1


# -------------------------------------------------------------- Trainer


def run_trainer(output_dir, steps, resume=None, seen=None):
    from torch.utils.data import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if seen is not None:
                seen.append(state.global_step)

    model = tiny_bert(11)

    class Data(Dataset):
        def __len__(self):
            return 16 * 8

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(1000 + i)
            return {"input_ids": torch.randint(0, 300, (16,), generator=g), "labels": i % 3}

    args = TrainingArguments(output_dir=output_dir, per_device_train_batch_size=8, max_steps=steps, save_steps=8,
                             save_strategy="steps", logging_steps=4, report_to=[], use_cpu=True, seed=11,
                             learning_rate=5e-4, lr_scheduler_type="cosine", disable_tqdm=True, data_seed=11)
    trainer = Trainer(model=model, args=args, train_dataset=Data(), callbacks=[Steps()])
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def check_trainer(scratch, registry):
    full_dir = os.path.join(scratch, "trainer-full")
    full = run_trainer(full_dir, 16)
    for step in (8, 16):
        r = reg(["push", os.path.join(full_dir, f"checkpoint-{step}"), "--name", "bert-run"], registry)
        check(f"trainer checkpoint-{step}: push", r.returncode == 0, r.stderr)
    log = reg(["log", "bert-run", "--json"], registry)
    steps = [e.get("global_step") for e in json.loads(log.stdout)] if log.returncode == 0 else []
    check("trainer: versions carry steps 8 and 16", steps == [8, 16], steps)
    pulled = os.path.join(scratch, "resume-from", "checkpoint-8")
    os.makedirs(os.path.dirname(pulled), exist_ok=True)
    r = reg(["pull", "bert-run@step=8", "-o", pulled], registry)
    check("trainer: pull checkpoint-8 by step", r.returncode == 0 and same_tree(os.path.join(full_dir, "checkpoint-8"), pulled), r.stderr)
    seen = []
    resumed = run_trainer(os.path.join(scratch, "trainer-resumed"), 16, resume=pulled, seen=seen)
    check("trainer: resumed run trains steps 9..16 only", seen == list(range(9, 17)), seen)
    opt_state = resumed.optimizer.state_dict()["state"]
    step_counts = {int(v["step"]) for v in opt_state.values() if "step" in v}
    check("trainer: optimizer state continued (Adam step 16 at the end)", step_counts == {16}, step_counts)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    same = all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    check("trainer: resumed weights equal the uninterrupted run's", same, "weights differ")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--reg", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--scratch", required=True)
    ARGS = p.parse_args()
    registry = os.path.join(ARGS.scratch, "registry")
    for part in (check_dcp, check_hf, check_trainer):
        try:
            part(ARGS.scratch, registry)
        except Exception as e:  # a broken part fails its checks, the rest still run
            check(part.__name__, False, f"{type(e).__name__}: {e}")
    r = reg(["verify", "--full"], registry)
    check("verify --full after everything", r.returncode == 0, r.stdout + r.stderr)
    print(f"{PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
