"""Decoding to 8-bit grayscale from every image mode, face cropping and resizing."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fer_attention.data import preprocess
from fer_attention.data.preprocess import crop_square, detect_face, prepare_face, read_gray, to_gray8


def test_palette_image_is_looked_up(tmp_path):
    im = Image.new("P", (8, 8))
    im.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0] + [0] * (256 * 3 - 9))
    im.paste(1, (0, 0, 4, 8))  # white
    im.paste(2, (4, 0, 8, 8))  # red
    im.save(tmp_path / "p.png")
    gray = read_gray(tmp_path / "p.png")
    assert gray[0, 0] == 255 and gray[0, 7] == 76  # red's luma (0.299 * 255), not the palette index 2


def test_16bit_image_is_scaled_not_clipped(tmp_path):
    arr = np.array([[0, 257 * 100, 65535, 32896]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert read_gray(tmp_path / "g16.png").tolist() == [[0, 100, 255, 128]]


def test_rgb_uses_luma_and_rgba_composites_on_black(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (0, 255, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_gray(tmp_path / "rgb.png")[0, 0] == 150  # 0.587 * 255
    rgba = np.full((2, 2, 4), 255, dtype=np.uint8)
    rgba[0, 0, 3] = 0  # fully transparent white -> black
    rgba[0, 1, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    gray = read_gray(tmp_path / "rgba.png")
    assert gray[0, 0] == 0 and gray[0, 1] == 128 and gray[1, 1] == 255


def test_other_modes():
    assert to_gray8(Image.new("1", (2, 2), 1)).tolist() == [[255, 255], [255, 255]]
    assert to_gray8(Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), "F")).tolist() == [
        [0, 128, 255]
    ]
    assert to_gray8(Image.new("LA", (1, 1), (200, 255))).tolist() == [[200]]
    assert to_gray8(Image.new("CMYK", (1, 1), (0, 0, 0, 0))).tolist() == [[255]]


def test_jpeg_and_tiff_decode(tmp_path):
    Image.new("RGB", (10, 6), (100, 100, 100)).save(tmp_path / "a.jpg", quality=95)
    Image.new("L", (5, 5), 42).save(tmp_path / "b.tiff")
    assert abs(int(read_gray(tmp_path / "a.jpg").mean()) - 100) <= 1
    assert read_gray(tmp_path / "b.tiff").shape == (5, 5)


def test_crop_square_pads_outside_with_black():
    img = np.full((10, 10), 9, dtype=np.uint8)
    out = crop_square(img, 1, 1, 6)
    assert out.shape == (6, 6) and out[0, 0] == 0 and out[5, 5] == 9


def test_non_square_images_take_the_centred_square():
    img = np.zeros((40, 80), dtype=np.uint8)
    img[:, 20:60] = 200
    face, fell_back = prepare_face(img, 20, "none")
    assert face.shape == (20, 20) and face.min() == 200 and not fell_back


def test_resize_area_when_shrinking_and_linear_when_enlarging():
    img = np.zeros((4, 4), dtype=np.uint8)
    img[:2] = 200
    small, _ = prepare_face(img, 2, "none")
    assert small.tolist() == [[200, 200], [0, 0]]
    big, _ = prepare_face(img, 8, "none")
    assert big.shape == (8, 8) and 0 < big[3, 0] < 200


def test_haar_without_a_face_falls_back_to_the_whole_image():
    img = np.full((100, 100), 128, dtype=np.uint8)
    face, fell_back = prepare_face(img, 32, "haar")
    assert fell_back and face.shape == (32, 32)


def test_box_crop_uses_the_box():
    img = np.zeros((80, 80), dtype=np.uint8)
    img[10:50, 20:60] = 255
    face, fell_back = prepare_face(img, 16, "box", (20, 10, 40, 40))
    assert face.min() == 255 and not fell_back
    _, fell_back = prepare_face(img, 16, "box", None)
    assert fell_back


def test_haar_finds_a_real_face():
    from skimage import data

    rgb = data.astronaut()  # bundled with scikit-image, no download
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    box = detect_face(gray)
    assert box is not None
    x, y, w, h = box
    # Eileen Collins's face is around columns 170-270, rows 60-170 of the 512x512 picture
    assert 140 < x + w / 2 < 300 and 60 < y + h / 2 < 200 and 60 < w < 200
    face, fell_back = prepare_face(gray, 48, "haar")
    assert not fell_back and face.shape == (48, 48)
    assert preprocess.face_detector()[0] in ("opencv-haar-frontalface-default", "skimage-lbp-frontalface")
