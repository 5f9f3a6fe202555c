"""Known answers: the training loop learns a task any working loop learns (and a loop whose optimizer does nothing
fails the same check), and zero-shot classification scores a model whose answers are known exactly."""

import math

import numpy as np
import pytest
import torch

from synkit.classify import train
from synkit.clip import zero_shot

TINY = {"model": "resnet18", "model_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8},
        "batch_size": 32, "steps_min": 80, "steps_max": 80, "checkpoint_every": 1000, "augment": False}


def quadrants(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28x28 noise with one bright quadrant: the quadrant is the class (4 classes, separable by any working learner)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        images[i, r * 14 : r * 14 + 14, q * 14 : q * 14 + 14] += 150
    return images, labels


def val_top1(tmp_path, name: str) -> float:
    images, labels = quadrants(256, 0)
    val_x, val_y = quadrants(200, 1)
    evals = {"val": (train.to_tensor(val_x), torch.as_tensor(val_y))}
    config = train.TrainConfig(**TINY)
    metrics, _ = train.train_run(images, labels, evals, ["a", "b", "c", "d"], 80, config, tmp_path / name, progress=False)
    return float(metrics.query("eval_set == 'val' and class_index == -1")["top1"].iloc[0])


def test_the_training_loop_learns_a_separable_task_and_a_frozen_one_does_not(tmp_path, monkeypatch):
    assert val_top1(tmp_path, "learns") >= 0.95
    # the same run with every optimizer step doing nothing: the same check must fail (chance is 0.25)
    monkeypatch.setattr(torch.optim.Optimizer, "step", lambda self, closure=None: None)
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    assert val_top1(tmp_path, "frozen") < 0.5


class OneHotClip(torch.nn.Module):
    """A CLIP whose image features are the one-hot of the class drawn in pixel [0, 0, 0] and whose text features are
    the one-hot of the class number at the end of the text: zero-shot is exact, with a known loss."""

    def __init__(self, classes: int, scale: float):
        super().__init__()
        self.classes = classes
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(scale)))

    def encode_image(self, x, normalize=True):
        return torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), self.classes).float()

    def encode_text(self, tokens, normalize=True):
        return torch.nn.functional.one_hot(tokens, self.classes).float()


def test_zero_shot_scores_a_model_with_known_answers():
    classes, scale = 4, 10.0
    model = OneHotClip(classes, scale)
    tokenizer = lambda texts: torch.tensor([int(t.rsplit(" ", 1)[-1]) for t in texts])  # noqa: E731
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    images = torch.zeros(len(labels), 3, 2, 2)
    images[:, 0, 0, 0] = labels.float()
    names = [f"class {c}" for c in range(classes)]
    tasks = [{"name": "val", "set": "val", "classes": names, "mapping": np.arange(classes)},
             {"name": "shuffled", "set": "val", "classes": names, "mapping": np.array([1, 2, 3, 0])}]
    table = zero_shot.zero_shot(model, tokenizer, {"val": (images, labels)}, tasks, ["{}", "a photo of {}"])
    table = table.set_index("eval_set")
    assert table.loc["val", "top1"] == 1.0 and table.loc["shuffled", "top1"] == 0.0
    # logits: scale on the true class, 0 on the other three; a wrong scale (say 9) would give 3.7e-4
    expected = -math.log(math.exp(scale) / (math.exp(scale) + classes - 1))
    assert table.loc["val", "loss"] == pytest.approx(expected, abs=1e-6)  # float32: 1 + 1.4e-4 is rounded to about 1e-7


QUADRANT_NAMES = ["top left", "top right", "bottom left", "bottom right"]


def clip_val_top1(tmp_path, name: str) -> float:
    """CLIP trained from scratch on quadrant images captioned with their quadrant's name, then zero-shot on new ones."""
    from synkit.clip import train as clip_train
    from synkit.clip.data import to_clip_tensor

    images, labels = quadrants(512, 0)
    val_x, val_y = quadrants(200, 1)
    config = clip_train.ClipConfig(epochs=int(__import__("os").environ.get("KA_EPOCHS", 6)), batch_size=int(__import__("os").environ.get("KA_BATCH", 64)), checkpoint_every=1000)
    tokenizer = clip_train.open_clip_tokenizer(config.model)
    tokens = tokenizer([f"a photo, {QUADRANT_NAMES[c]}" for c in labels])
    bank = torch.cat([to_clip_tensor(images), to_clip_tensor(images)])  # real then synthetic: the real setup reads the first half
    tasks = [{"name": "val", "set": "val", "classes": QUADRANT_NAMES, "mapping": np.arange(4)}]
    evals = {"val": (to_clip_tensor(val_x), torch.as_tensor(val_y))}
    metrics, _ = clip_train.train_clip(bank, tokens, "real", config, tmp_path / name,
                                       lambda m, acc: zero_shot.zero_shot(m, tokenizer, evals, tasks, ["a photo, {}"], accelerator=acc),
                                       progress=False)
    return float(metrics.query("eval_set == 'val'")["top1"].iloc[0])


def test_clip_learns_a_separable_task_and_a_frozen_one_does_not(tmp_path, monkeypatch):
    assert clip_val_top1(tmp_path, "learns") >= 0.9
    monkeypatch.setattr(torch.optim.Optimizer, "step", lambda self, closure=None: None)
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    assert clip_val_top1(tmp_path, "frozen") < 0.5
