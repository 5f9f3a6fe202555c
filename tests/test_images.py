import numpy as np
import torch

from synkit.core.images import resize, to_tensor


def test_to_tensor_layout_and_known_values():
    gray = np.array([[[0, 255], [51, 102]]], np.uint8)  # (1, 2, 2)
    x = to_tensor(gray, 255.0, 0.5, 0.25)
    assert x.shape == (1, 1, 2, 2) and x.dtype == torch.float32
    assert torch.allclose(x[0, 0], torch.tensor([[-2.0, 2.0], [-1.2, -0.4]]))
    rgb = np.zeros((2, 3, 4, 3), np.uint8)
    rgb[..., 1] = 255  # green everywhere
    y = to_tensor(rgb, 255.0, (0.0, 0.5, 0.0), (1.0, 0.5, 2.0))
    assert y.shape == (2, 3, 3, 4)
    assert torch.equal(y[:, 0], torch.zeros(2, 3, 4)) and torch.equal(y[:, 1], torch.ones(2, 3, 4)) and torch.equal(y[:, 2], torch.zeros(2, 3, 4))
    assert torch.equal(to_tensor(gray, 127.5, 1.0), torch.tensor(gray, dtype=torch.float32).div(127.5).sub(1).unsqueeze(1))


def test_resize_keeps_size_and_range():
    x = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    assert resize(x, 8, -1, 1) is x
    y = resize(x, 4, -0.5, 0.5)
    assert y.shape == (1, 1, 4, 4) and y.min() >= -0.5 and y.max() <= 0.5
