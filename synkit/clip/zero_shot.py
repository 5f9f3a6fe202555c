"""Zero-shot classification with a CLIP model: each class named through templates (this world's own, or open_clip's 80
ImageNet ones), the mean of its template embeddings; top-1 and cross-entropy on val, every OOD view and the coarse task."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from synkit.clip.data import coarse_task, image_folder, split_arrays
from synkit.core import precision
from synkit.data.worlds.fashion import FashionWorld
from synkit.engine import runs

FASHION_TEMPLATES = FashionWorld.zero_shot_templates  # the default of run_ladder and the GPU check


@torch.inference_mode()
def class_embeddings(model, tokenizer, names: list[str], templates, device=None, autocast: bool = False) -> torch.Tensor:
    """The normalized mean of each class's template embeddings (C, D), on the model's device;
    templates are format strings or callables (open_clip's ImageNet templates)."""
    device = device or next(model.parameters()).device
    out = []
    for name in names:
        texts = [t(name) if callable(t) else t.format(name) for t in templates]
        with precision.autocast(device, autocast):
            emb = model.encode_text(tokenizer(texts).to(device), normalize=True).float()
        out.append(F.normalize(emb.mean(0), dim=-1))
    return torch.stack(out)


@torch.inference_mode()
def zero_shot(model, tokenizer, eval_sets: dict, tasks: list[dict], templates, batch_size: int = 1024, autocast: bool | None = None,
              accelerator=None) -> pd.DataFrame:
    """Top-1 and cross-entropy per task. ``eval_sets``: name -> (images (N,3,H,W), labels);
    ``tasks``: dicts with ``name`` (the row's eval_set), ``set`` (an eval set), ``classes`` (names)
    and ``mapping`` (eval-set label -> task label). Images go to the model's device in batches, in
    bf16 autocast where bf16 is native on that device (``autocast=None``; True or False forces it); with an ``accelerator`` of several processes
    each process encodes its shard and the per-image results are gathered (``runs.shard``/``gather``)."""
    model.eval()
    device = next(model.parameters()).device
    scale = model.logit_scale.exp().float()
    feats: dict[str, torch.Tensor] = {}
    rows = []
    for task in tasks:
        x, y = eval_sets[task["set"]]
        part = runs.shard(accelerator, len(y))
        if task["set"] not in feats:
            xs, parts = x[part], []
            for i in range(0, len(xs), batch_size):
                with precision.autocast(device, autocast):
                    parts.append(model.encode_image(xs[i : i + batch_size].to(device, non_blocking=True), normalize=True).float())
            feats[task["set"]] = torch.cat(parts)
        text = class_embeddings(model, tokenizer, task["classes"], templates, device)
        target = torch.as_tensor(np.asarray(task["mapping"])[y[part].numpy()], device=device)
        logits = scale * feats[task["set"]] @ text.T
        hit, loss = runs.gather(accelerator, part, (logits.argmax(1) == target).float().cpu().numpy(),
                                F.cross_entropy(logits, target, reduction="none").cpu().numpy())
        rows.append({"eval_set": task["name"], "task": task.get("task", "classes"), "top1": float(hit.mean()), "loss": float(loss.mean())})
    return pd.DataFrame(rows)


def world_tasks(world, eval_size: int, image_size: int | None, extra_eval: list[dict] = ()) -> tuple[dict, list[dict]]:
    """Eval sets and zero-shot tasks: the world's classes on val and every OOD view, the coarse
    WordNet task (fashion), and each extra torchvision-style folder ({"name", "root"}) with its own names."""
    views = ["val", *world.ood_views]
    evals = split_arrays(world, views, eval_size, image_size)
    names = [c.name for c in world.classes]
    tasks = [{"name": v, "set": v, "classes": names, "mapping": np.arange(len(names))} for v in views]
    if world.coarse_task:
        coarse_names, coarse_map = coarse_task(world.classes)
        tasks.append({"name": "val-coarse", "set": "val", "classes": coarse_names, "mapping": coarse_map, "task": "coarse"})
    for extra in extra_eval:
        if not {"name", "root"} <= set(extra):
            raise ValueError(f"clip_extra_eval entry {extra!r} needs a name and a root folder.")
        images, labels, classes = image_folder(extra["root"], image_size or 224, int(extra.get("per_class", 0)))
        evals[extra["name"]] = (images, labels)
        tasks.append({"name": extra["name"], "set": extra["name"], "classes": classes, "mapping": np.arange(len(classes)), "task": "dataset"})
    return evals, tasks


def templates_for(world):
    """The world's own zero-shot templates (fashion's), else open_clip's 80 ImageNet templates (as the paper)."""
    if world.zero_shot_templates:
        return world.zero_shot_templates
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return OPENAI_IMAGENET_TEMPLATES
