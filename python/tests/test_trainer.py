"""RegTrainerCallback with the real transformers Trainer: a tiny BERT
(BertConfig as tests/fixtures/tools / make_dir_fixtures.py makes it)
trained 16 steps with save_steps=8 leaves versions at steps 8 and 16 and
resumes from step 8 through reg.pull_dir.

Run by tests/interop/suites/31-python-api.sh.
"""

import filecmp
import os
import shutil
import tempfile

from harness import NEEDS_DIRS, assert_installed, check, finish

import torch
from torch.utils.data import Dataset
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

import reg

WORK = tempfile.mkdtemp(prefix="reg-trainer-test-")
REGISTRY = os.path.join(WORK, "registry")
STEPS, SAVE_STEPS, BATCH, VOCAB = 16, 8, 8, 500


def tiny_bert(seed: int) -> BertForSequenceClassification:
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(seed)
    return BertForSequenceClassification(cfg)


class Tokens(Dataset):
    def __len__(self):
        return STEPS * BATCH

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(1000 + i)
        return {"input_ids": torch.randint(0, VOCAB, (16,), generator=g), "labels": i % 3}


def args(out: str, **kw) -> TrainingArguments:
    return TrainingArguments(output_dir=out, per_device_train_batch_size=BATCH, max_steps=STEPS, save_steps=SAVE_STEPS,
                             save_strategy="steps", logging_steps=4, report_to=[], use_cpu=True, seed=5,
                             learning_rate=5e-4, lr_scheduler_type="cosine", disable_tqdm=True, **kw)


def train(out: str, callback, resume=None, extra=()):
    t = Trainer(model=tiny_bert(5), args=args(out), train_dataset=Tokens(), callbacks=[callback, *extra])
    t.train(resume_from_checkpoint=resume)
    return t


class Probe(TrainerCallback):
    """What the Trainer holds when training (re)starts."""

    def __init__(self):
        self.seen = {}

    def on_train_begin(self, args, state, control, **kw):
        self.seen["begin_step"] = state.global_step

    def on_step_begin(self, args, state, control, optimizer=None, **kw):
        if "adam_steps" not in self.seen and optimizer is not None:
            self.seen["adam_steps"] = sorted({float(s["step"]) for s in optimizer.state.values() if "step" in s})
            self.seen["lr"] = optimizer.param_groups[0]["lr"]

    def on_step_end(self, args, state, control, **kw):
        self.seen.setdefault("first_step_end", state.global_step)


def main() -> None:
    r = reg.Registry(REGISTRY)
    os.environ["REG_REGISTRY"] = REGISTRY
    run1 = os.path.join(WORK, "run1")

    @check("the callback under test is the installed wheel's")
    def _():
        assert_installed(reg)
        assert reg.RegTrainerCallback.__module__ == "reg.trainer"

    @check("a failing push stops training with reg's error")
    def _():
        broken = os.path.join(WORK, "broken")
        reg.Registry(broken).ls()
        with open(os.path.join(broken, "FORMAT"), "w") as f:
            f.write("not a registry\n")
        probe = Probe()
        try:
            train(os.path.join(WORK, "run-broken"), reg.RegTrainerCallback("x", registry=broken), extra=[probe])
        except reg.RegError as e:
            assert "not a reg registry" in str(e), str(e)
        else:
            raise AssertionError("training went on although the push failed")
        assert probe.seen["first_step_end"] == 1

    @check(NEEDS_DIRS + "16 steps with save_steps=8 leave versions at steps 8 and 16 with step, epoch and message")
    def _():
        cb = reg.RegTrainerCallback("bert", registry=r)
        train(run1, cb)
        assert cb.pushed == ["bert@v1", "bert@v2"], cb.pushed
        log = r.log("bert")
        assert [e["global_step"] for e in log] == [8, 16], log
        assert log[0]["message"].startswith("transformers Trainer: step 8"), log[0]["message"]
        shown = r.show("bert@step=16")
        assert shown.get("kind") == "directory" and shown.get("layout") == "hf-trainer", (shown.get("kind"), shown.get("layout"))
        assert shown["epoch"] is not None and shown["global_step"] == 16
        pulled = reg.pull_dir("bert@step=8", os.path.join(WORK, "pulled-8"))
        cmp = filecmp.dircmp(os.path.join(run1, "checkpoint-8"), pulled)
        assert not (cmp.left_only or cmp.right_only or cmp.diff_files), (cmp.left_only, cmp.right_only, cmp.diff_files)

    @check(NEEDS_DIRS + "trainer.train(resume_from_checkpoint=reg.pull_dir('bert@step=8')) resumes at step 9")
    def _():
        probe = Probe()
        cb = reg.RegTrainerCallback("bert-resumed", registry=r)
        train(os.path.join(WORK, "run2"), cb, resume=reg.pull_dir("bert@step=8"), extra=[probe])
        assert probe.seen["begin_step"] == 8 and probe.seen["first_step_end"] == 9, probe.seen
        assert probe.seen["adam_steps"] == [8.0], probe.seen  # optimizer state came back
        assert [e["global_step"] for e in r.log("bert-resumed")] == [16]
        first = reg.load_state_dict("bert@step=16")
        again = reg.load_state_dict("bert-resumed@step=16")
        assert sorted(first) == sorted(again) and first, sorted(first)[:3]

    @check(NEEDS_DIRS + "load_state_dict of a Trainer checkpoint gives the model weights it saved")
    def _():
        from safetensors.torch import load_file

        want = load_file(os.path.join(run1, "checkpoint-16", "model.safetensors"))
        got = reg.load_state_dict("bert@step=16")
        assert sorted(got) == sorted(want), sorted(set(got) ^ set(want))[:5]
        for k in want:
            assert torch.equal(got[k], want[k]), k

    @check(NEEDS_DIRS + "keep_optimizer_last=1 drops optimizer state from the older version")
    def _():
        cb = reg.RegTrainerCallback("bert-lean", registry=r, keep_optimizer_last=1)
        train(os.path.join(WORK, "run3"), cb)
        r.wait_background()
        assert r.show("bert-lean@v1").get("optimizer_dropped"), r.show("bert-lean@v1").get("optimizer_dropped")
        assert not r.show("bert-lean@v2").get("optimizer_dropped")

    @check(NEEDS_DIRS + "push_every_save=False pushes the last checkpoint once, at the end")
    def _():
        cb = reg.RegTrainerCallback("bert-last", registry=r, push_every_save=False)
        train(os.path.join(WORK, "run4"), cb)
        assert [e["global_step"] for e in r.log("bert-last")] == [16]

    @check(NEEDS_DIRS + "keep_local=False: no checkpoint folder stays but the best one; resume from reg.pull_dir works")
    def _():
        out = os.path.join(WORK, "run5")
        cb = reg.RegTrainerCallback("bert-lean-disk", registry=r, keep_local=False)
        t = Trainer(model=tiny_bert(5), args=args(out, save_total_limit=1), train_dataset=Tokens(), callbacks=[cb])
        t.train()
        left = sorted(d for d in os.listdir(out) if d.startswith("checkpoint-"))
        best = t.state.best_model_checkpoint
        assert left == ([os.path.basename(best)] if best else []), (left, best)
        assert [e["global_step"] for e in r.log("bert-lean-disk")] == [8, 16]
        probe = Probe()
        train(os.path.join(WORK, "run6"), reg.RegTrainerCallback("bert-lean-resumed", registry=r, keep_local=False),
              resume=reg.pull_dir("bert-lean-disk@step=8"), extra=[probe])
        assert probe.seen["begin_step"] == 8 and probe.seen["first_step_end"] == 9, probe.seen

    @check(NEEDS_DIRS + "keep_local=False with load_best_model_at_end keeps the best folder for the Trainer to load")
    def _():
        out = os.path.join(WORK, "run7")
        cb = reg.RegTrainerCallback("bert-best", registry=r, keep_local=False)
        kw = dict(eval_strategy="steps", eval_steps=SAVE_STEPS, load_best_model_at_end=True,
                  metric_for_best_model="loss", save_total_limit=1)
        t = Trainer(model=tiny_bert(5), args=args(out, **kw), train_dataset=Tokens(), eval_dataset=Tokens(),
                    callbacks=[cb])
        t.train()  # loads the best folder at the end: it must still be there
        best = t.state.best_model_checkpoint
        assert best and os.path.isdir(best), best
        left = sorted(d for d in os.listdir(out) if d.startswith("checkpoint-"))
        assert left == [os.path.basename(best)], left
        tagged = [e for e in r.log("bert-best") if "best" in e["tags"]]
        assert [e["global_step"] for e in tagged] == [int(best.rsplit("-", 1)[1])], tagged

    finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
