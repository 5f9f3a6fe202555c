"""synkit's training loops, in one place.

- ``optimizer_steps``: the step loop of every supervised and CLIP run (under accelerate): the run's loss on a batch,
  backward, optimizer and scheduler steps, a checkpoint every ``checkpoint_every`` steps on the main process.
- ``train_loop``: the loop of synkit's own text-to-image models: AdamW with warmup and cosine decay, gradient
  clipping, an EMA of the weights, per-step seeds (a resumed run draws what an uninterrupted one would), checkpoints
  (written atomically, loaded with ``weights_only``) and a progress bar with the loss.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from synkit.core.files import atomic
from synkit.core.progress import tqdm


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def save_state(state: dict, path: Path) -> None:
    with atomic(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path) -> dict | None:
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None


def step_rng(seed: int, stage: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    # each step draws from its own seed, so a resumed run sees the same batches as an uninterrupted one
    rng = np.random.default_rng([seed, stage, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


def train_loop(stage, model, total, config_lr, warmup, ckpt, checkpoint_every, progress, callback, step_fn, ema=None):
    """Shared loop: resume from ``ckpt``, step, checkpoint every ``checkpoint_every`` steps, show loss and time left."""
    params = list(model.parameters())
    # fused Adam and foreach clipping / EMA: one kernel per step over the UNet's 328 tensors instead of one per tensor
    opt = torch.optim.AdamW(params, lr=config_lr, weight_decay=0.0, fused=True)
    start = 0
    if (state := load_state(ckpt)) is not None:
        model.load_state_dict(state["model"])
        if state["opt"]:  # empty once a stage has finished
            opt.load_state_dict(state["opt"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start = int(state["step"])
    bar = tqdm(total=total, initial=start, desc=f"t2i {stage}", unit="step", disable=not progress)
    seen = {"smooth": None}

    def loss_of(_, step):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, total, config_lr, warmup)
        seen["loss"] = step_fn(step)
        return seen["loss"]

    def after_step(step):  # step: the steps done
        if ema is not None:
            decay = min(ema.decay, step / (9 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema.params, [p.detach() for p in params], 1 - decay)
        value = seen["loss"].item()
        seen["smooth"] = value if seen["smooth"] is None else 0.98 * seen["smooth"] + 0.02 * value
        bar.set_postfix(loss=f"{seen['smooth']:.4f}", refresh=False)
        if callback is not None:
            callback(stage, step, value)

    def checkpoint(step):
        save_state({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    **({"ema": ema.state_dict()} if ema is not None else {})}, ckpt)

    optimizer_steps(range(start, total), loss_of, None, opt, None, start, total, checkpoint_every, checkpoint, bar,
                    after_step=after_step, clip_grad_norm=1.0)


class EMA:
    """Exponential moving average of a model's parameters (the weights that get saved)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.params = [p.detach().clone() for p in model.parameters()]

    def state_dict(self) -> dict:
        return {str(i): p for i, p in enumerate(self.params)}

    def load_state_dict(self, state: dict) -> None:
        for i, p in enumerate(self.params):
            p.copy_(state[str(i)])

    def copy_to(self, model: torch.nn.Module) -> None:
        with torch.no_grad():
            for e, p in zip(self.params, model.parameters()):
                p.copy_(e)


def optimizer_steps(batches, loss_of, accelerator, optimizer, scheduler, start: int, steps: int, checkpoint_every: int,
                    checkpoint, bar, after_step=None, show_loss_every: int = 0, clip_grad_norm: float | None = None) -> None:
    """The one training loop of synkit: steps ``start``..``steps`` over ``batches`` (one batch a step):
    ``loss_of(batch, step)``, backward, the gradients clipped to ``clip_grad_norm`` (when given), optimizer step, zero
    grads, scheduler step (when there is one), ``after_step(steps done)`` (a constraint on the weights, an EMA, a
    report), then ``checkpoint(steps done)`` every ``checkpoint_every`` steps on the main process (not at the last: the
    finished run is saved instead). Without an ``accelerator`` (one process, no devices to place), a plain backward."""
    backward = accelerator.backward if accelerator is not None else torch.Tensor.backward
    main = accelerator is None or accelerator.is_main_process
    params = [p for group in optimizer.param_groups for p in group["params"]] if clip_grad_norm is not None else None
    step = start
    for batch in batches:
        loss = loss_of(batch, step)
        backward(loss)
        if params is not None:
            torch.nn.utils.clip_grad_norm_(params, clip_grad_norm, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        step += 1
        if after_step is not None:
            after_step(step)
        bar.update(1)
        if show_loss_every and step % show_loss_every == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        if checkpoint is not None and step % checkpoint_every == 0 and step < steps and main:
            checkpoint(step)
    bar.close()
