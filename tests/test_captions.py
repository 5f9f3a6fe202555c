import numpy as np
import pytest
from PIL import Image

from synkit.data.captions import Blip2Captioner, FashionCaptioner, ImageCaptioner, fashion_attributes, load_captioner


def test_fashion_captions_describe_measured_attributes():
    img = np.zeros((4, 28, 28), np.uint8)
    img[0, 1:27, 12:16] = 240  # a narrow, long, bright bar
    img[1, 18:24, 1:27] = 90  # a wide, short, dark block
    img[2, 1:27, 1:27] = 160  # a large flat block: smooth
    img[3, 1:27, 1:27] = np.random.default_rng(0).integers(40, 255, (26, 26))  # noise: intricate
    a, b, flat, noisy = fashion_attributes(img)
    assert (a["width"], a["length"], a["tone"]) == ("narrow", "long", "bright")
    assert (b["width"], b["length"], b["tone"]) == ("wide", "short", "dark")
    assert (flat["texture"], flat["contrast"], flat["fill"]) == ("smooth", "even", "solid")
    assert (noisy["texture"], noisy["contrast"]) == ("intricate", "high-contrast")
    caps = FashionCaptioner().caption_arrays(img)
    assert caps[0].startswith("bright") and "narrow and long" in caps[0]
    assert "wide and short" in caps[1]
    assert caps[2] == "light, smooth, even, wide and long, solid"


def test_fashion_captions_differ_within_a_class_and_never_name_it(fashion):
    real = fashion.split("real")
    names = [c.name.lower() for c in fashion.classes]
    for k in range(10):
        idx = np.flatnonzero(real.labels == k)[:30]
        caps = FashionCaptioner().caption_arrays(real.images[idx])
        assert len(set(caps)) >= 10, (k, caps)
        assert not any(name in cap for cap in caps for name in names)


def test_fashion_captioner_pil_and_blank():
    caps = FashionCaptioner().caption([Image.new("L", (28, 28))])
    assert caps == ["a blank image"]
    with pytest.raises(ValueError, match="uint8 grayscale"):
        FashionCaptioner().caption_arrays(np.zeros((1, 28, 28, 3), np.uint8))


def test_load_captioner_choices(tiny_blip2):
    assert isinstance(load_captioner("fashion"), FashionCaptioner)
    assert isinstance(load_captioner("imagenet"), ImageCaptioner) and isinstance(load_captioner("folder"), ImageCaptioner)  # offline
    assert isinstance(load_captioner("imagenet", str(tiny_blip2)), Blip2Captioner)


def test_blip2_tiny_random_model(tiny_blip2):
    cap = Blip2Captioner(str(tiny_blip2), batch_size=2, max_new_tokens=4)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(3)]
    out = cap.caption(images)
    assert len(out) == 3 and all(isinstance(s, str) for s in out)


def test_blip2_missing_checkpoint_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="captioner_model=.*that folder does not exist"):
        Blip2Captioner(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="captioner_model='Salesforce/blip2-opt-2.7b'.*not in the local Hugging Face cache"):
        Blip2Captioner("Salesforce/blip2-opt-2.7b")


def test_image_captioner_any_size_colour_and_background():
    from PIL import Image, ImageDraw

    red_on_white = Image.new("RGB", (40, 40), "white")
    ImageDraw.Draw(red_on_white).ellipse((8, 6, 32, 34), fill=(210, 20, 20))
    blue_on_black = Image.new("RGB", (20, 20), "black")
    ImageDraw.Draw(blue_on_black).rectangle((4, 2, 9, 17), fill=(20, 40, 220))
    gray = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(gray).rectangle((0, 10, 27, 17), fill=220)
    red, blue, bar = ImageCaptioner().caption([red_on_white, blue_on_black, gray])
    assert red.startswith("red, ") and blue.startswith("blue, ") and "narrow" in blue and "short" not in blue
    assert bar.startswith("bright") and "wide" in bar and "short" in bar  # no colour word for a gray object
    assert ImageCaptioner().caption([Image.new("RGB", (16, 16), "white")]) == ["a blank image"]
    assert ImageCaptioner().caption_arrays(np.stack([np.asarray(red_on_white)]))[0] == red
    with pytest.raises(ValueError, match="uint8 images"):
        ImageCaptioner().caption_arrays(np.zeros((2, 8, 8, 4), np.uint8))
