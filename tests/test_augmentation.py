"""FaceTransform: Pillow-exact resize in compat, within one grey level by default, the
original's normalisation bit for bit, one crop and flip per window."""
import numpy as np
import pytest
import torch
from PIL import Image

from bah.train.augmentation import FaceTransform, pil_bilinear_resize, resize_faces, resized_size


def _faces(n, size, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, size, size, 3), dtype=np.uint8)


def _pil(faces, out):
    return np.stack([np.asarray(Image.fromarray(f).resize((out, out), Image.BILINEAR)) for f in faces])


def _original_eval(faces, resize, crop):
    """The original's eval transform per frame: PIL resize, centre crop, ToTensor, Normalize(0.5, 0.5)."""
    out = []
    for f in faces:
        img = Image.fromarray(f)
        if min(img.size) != resize:
            img = img.resize((resize, resize), Image.BILINEAR)
        top = int(round((resize - crop) / 2.0))
        a = np.asarray(img)[top:top + crop, top:top + crop]
        t = torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)
        out.append((t - 0.5) / 0.5)
    return torch.stack(out)


@pytest.mark.parametrize("size,out", [(48, 40), (256, 48), (256, 124), (128, 48), (40, 48)])
def test_pil_exact_resize_equals_pillow_bit_for_bit(size, out):
    faces = _faces(5, size, seed=size + out)
    got = pil_bilinear_resize(torch.from_numpy(faces).permute(0, 3, 1, 2), (out, out))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy().astype(np.uint8), _pil(faces, out))


@pytest.mark.parametrize("size", [256, 128, 64])
def test_default_resize_is_within_one_grey_level_of_pillow(size):
    faces = _faces(4, size, seed=size)
    x = torch.from_numpy(faces).permute(0, 3, 1, 2)
    got = resize_faces(x, 48).permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(got - _pil(faces, 48).astype(int)).max() <= 1


@pytest.mark.parametrize("size,resize,crop", [(256, 48, 40), (48, 40, 32), (48, 48, 40), (128, 124, 112)])
def test_compat_eval_transform_is_the_originals_to_the_bit(size, resize, crop):
    faces = _faces(6, size, seed=1)
    got = FaceTransform(resize, crop, train=False, pil_exact=True)(torch.from_numpy(faces).reshape(2, 3, size, size, 3))
    want = _original_eval(faces, resize, crop).reshape(2, 3, 3, crop, crop)
    assert got.dtype == torch.float32 and got.permute(0, 1, 3, 4, 2).is_contiguous()  # channels innermost
    assert torch.equal(got, want)


def test_default_eval_transform_is_within_one_grey_level_of_the_original():
    faces = _faces(6, 256, seed=2)
    got = FaceTransform(48, 40, train=False)(torch.from_numpy(faces).reshape(2, 3, 256, 256, 3))
    want = _original_eval(faces, 48, 40).reshape(2, 3, 3, 40, 40)
    assert (got - want).abs().max() <= 1 / 127.5 + 1e-6


def test_train_crop_and_flip_come_from_the_generator_and_match_the_eval_pixels():
    faces = torch.from_numpy(_faces(8, 48, seed=3)).reshape(2, 4, 48, 48, 3)
    tf = FaceTransform(48, 40, train=True)
    a = tf(faces, generator=torch.Generator().manual_seed(5))
    b = tf(faces, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == (2, 4, 3, 40, 40)
    g = torch.Generator().manual_seed(5)
    top = torch.randint(0, 9, (2,), generator=g).tolist()
    left = torch.randint(0, 9, (2,), generator=g).tolist()
    flip = (torch.rand(2, generator=g) < 0.5).tolist()
    assert flip == [False, True]  # both the plain and the mirrored path are checked
    for i in range(2):
        want = faces[i, :, top[i]:top[i] + 40, left[i]:left[i] + 40].permute(0, 3, 1, 2).float() / 127.5 - 1
        torch.testing.assert_close(a[i], want.flip(-1) if flip[i] else want, rtol=0, atol=0)


def test_resized_size_follows_torchvision():
    assert resized_size(60, 90, 48) == (48, 72) and resized_size(90, 61, 48) == (70, 48)
    assert resized_size(256, 256, 48) == (48, 48)


def test_bad_faces_are_refused_with_their_shape():
    with pytest.raises(ValueError, match=r"\(2, 3, 48, 48\) torch.uint8"):
        FaceTransform()(torch.zeros(2, 3, 48, 48, dtype=torch.uint8))
    with pytest.raises(ValueError, match="crop 50 is larger than resize 48"):
        FaceTransform(48, 50)


def test_device_crop_by_gathers_equals_the_sliced_crop():
    from bah.train.augmentation import crop_windows

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (5, 3, 3, 48, 48), dtype=torch.uint8, generator=g)
    top, left = torch.randint(0, 9, (5,), generator=g), torch.randint(0, 9, (5,), generator=g)
    flip = torch.tensor([True, False, True, False, False])
    got = crop_windows(x, top, left, flip, 40)
    for i in range(5):
        want = x[i, :, :, top[i]:top[i] + 40, left[i]:left[i] + 40]
        assert torch.equal(got[i], want.flip(-1) if flip[i] else want)
