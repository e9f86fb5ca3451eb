import io as _io

import pytest
from PIL import Image

from augment.core.names import DUPLICATE, PARSE_ERROR, SOURCE_URI
from augment.stages.validate.stage import ValidateOptions, ValidateStage
from testkit.photos import photo_file


def run(tmp_path, rows, **options):
    stage = ValidateStage(ValidateOptions(allowed_roots=[str(tmp_path)], **options))
    keys = ("product_id", "title", "image", "image_uri", PARSE_ERROR, DUPLICATE, SOURCE_URI)
    batch = {k: [r.get(k) for r in rows] for k in keys}
    batch["_source_uri"] = [str(tmp_path / "in.parquet")] * len(rows)
    batch[DUPLICATE] = [r.get(DUPLICATE, False) for r in rows]
    result = stage.process(batch)
    return result


def reason(tmp_path, **row):
    row = {"product_id": "p", "title": "Nike Shoe", "image": photo_file()} | row
    result = run(tmp_path, [row])
    rejection = result.rejects[0]
    return rejection.reason if rejection else None


def test_good_row_gets_a_working_jpeg(tmp_path):
    result = run(tmp_path, [{"product_id": "p", "title": "Nike Shoe", "image": photo_file(96, 128)}])
    assert result.rejects == [None]
    image = Image.open(_io.BytesIO(result.columns["_image"][0]))
    assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (96, 128))


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"title": ""}, "empty_title"),
        ({"title": " \t\x00 "}, "empty_title"),
        ({"title": None}, "missing_title"),
        ({"title": "x" * 3000}, "title_too_long"),
        ({"product_id": " "}, "missing_product_id"),
        ({"product_id": "\u200b"}, "missing_product_id"),  # a zero-width space
        ({"title": "\u200b\u200f\u200e\u202e\ufeff"}, "empty_title"),  # zero-width and bidi marks only
        ({DUPLICATE: True}, "duplicate_product_id"),
        ({PARSE_ERROR: "wrong_type:title (int)"}, "wrong_type:title"),
        ({"image": None}, "missing_image"),
        ({"image": b""}, "image_empty"),
        ({"image": photo_file()[:300]}, "image_undecodable"),
        ({"image": b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"}, "image_undecodable"),
        ({"image": b"<html><body>not an image</body></html>"}, "image_undecodable"),
        ({"image": photo_file(4, 4)}, "image_too_small"),
        ({"image": None, "image_uri": "../../etc/passwd"}, "image_path_outside_roots"),
        ({"image": None, "image_uri": "s3://other-bucket/x.jpg"}, "image_bucket_not_allowed"),
        ({"image": None, "image_uri": "https://example.com/x.jpg"}, "image_uri_unsupported"),
        ({"image": None, "image_uri": "missing.jpg"}, "image_not_found"),
    ],
)
def test_rejections(tmp_path, row, expected):
    assert reason(tmp_path, **row) == expected


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    big = photo_file(400, 400, fmt="PNG")
    assert reason(tmp_path, image=big) is None
    result = run(tmp_path, [{"product_id": "p", "title": "t", "image": big}], max_image_pixels=100_000)
    assert result.rejects[0].reason == "image_too_many_pixels"
    assert "400x400" in result.rejects[0].detail


def test_image_uri_relative_to_input_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "1.jpg").write_bytes(photo_file())
    assert reason(tmp_path, image=None, image_uri="images/1.jpg") is None


def test_symlink_out_of_the_root_is_rejected(tmp_path):
    outside = tmp_path.parent / f"{tmp_path.name}-outside.jpg"
    outside.write_bytes(photo_file())
    (tmp_path / "link.jpg").symlink_to(outside)
    assert reason(tmp_path, image=None, image_uri="link.jpg") == "image_path_outside_roots"


def test_png_with_alpha_is_flattened_on_white(tmp_path):
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    image.paste((0, 0, 200, 255), (20, 20, 32, 32))  # the product, opaque, in a corner
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG")
    result = run(tmp_path, [{"product_id": "p", "title": "t", "image": buffer.getvalue()}])
    pixel = Image.open(_io.BytesIO(result.columns["_image"][0])).getpixel((8, 8))
    assert all(channel >= 250 for channel in pixel)


def png(image) -> bytes:
    buffer = _io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_flat_placeholder_image_is_quarantined_as_blank(tmp_path):
    """White, grey and black placeholders, and a transparent PNG (white once flattened), show no product: their
    variants were flat frames that every score passed as ok."""
    import numpy as np

    noisy = np.full((40, 40, 3), 128, dtype=np.uint8) + np.random.default_rng(0).integers(0, 8, (40, 40, 3),
                                                                                          dtype=np.uint8)
    rows = [{"product_id": str(i), "title": "t", "image": png(image)} for i, image in enumerate([
        Image.new("RGB", (40, 40), (255, 255, 255)), Image.new("RGB", (40, 40), (0, 0, 0)),
        Image.fromarray(noisy), Image.new("RGBA", (40, 40), (255, 0, 0, 0)), Image.new("L", (40, 40), 90)])]
    rows.append({"product_id": "kept", "title": "t", "image": photo_file()})
    result = run(tmp_path, rows)
    assert [r and r.reason for r in result.rejects] == ["image_blank"] * 5 + [None]
    assert result.rejects[0].detail == "every pixel is within 8 levels of RGB(255, 255, 255): a placeholder, no product"


def test_cmyk_and_16_bit_images_are_converted(tmp_path):
    cmyk = photo_file(mode="CMYK")
    gray16 = Image.new("I;16", (32, 32), 40000)
    gray16.paste(0, (20, 20, 32, 32))
    buffer = _io.BytesIO()
    gray16.save(buffer, format="PNG")
    result = run(tmp_path, [{"product_id": "a", "title": "t", "image": cmyk},
                            {"product_id": "b", "title": "t", "image": buffer.getvalue()}])
    assert result.rejects == [None, None]
    value = Image.open(_io.BytesIO(result.columns["_image"][1])).getpixel((5, 5))[0]
    assert 150 <= value <= 160  # 40000 / 65535 * 255 = 155.6


def test_a_float_tiff_of_values_0_to_1_keeps_its_light(tmp_path):
    """Float images hold 0..1 as a rule: scaled as if they held 0..255, the product came out black, and its
    variants were still scored ok. NaN pixels are no light (they warned in the cast)."""
    import numpy as np

    values = np.full((32, 32), 0.6, dtype=np.float32)
    values[0, 0] = np.nan
    values[20:, 20:] = 0.0  # a product in the corner: a flat image is a placeholder
    buffer = _io.BytesIO()
    Image.fromarray(values, mode="F").save(buffer, format="TIFF")
    wide = _io.BytesIO()
    wide_values = np.full((32, 32), 153.0, dtype=np.float32)
    wide_values[20:, 20:] = 0.0
    Image.fromarray(wide_values, mode="F").save(wide, format="TIFF")
    result = run(tmp_path, [{"product_id": "a", "title": "t", "image": buffer.getvalue()},
                            {"product_id": "b", "title": "t", "image": wide.getvalue()}])
    assert result.rejects == [None, None]
    for column in result.columns["_image"]:
        assert 150 <= Image.open(_io.BytesIO(column)).getpixel((5, 5))[0] <= 156  # 0.6 * 255 = 153


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 255, 255), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = _io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    result = run(tmp_path, [{"product_id": "p", "title": "t", "image": buffer.getvalue()}])
    assert Image.open(_io.BytesIO(result.columns["_image"][0])).size == (20, 40)


def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 255, 0))]
    for frame in frames:
        frame.paste((255, 255, 255), (16, 16, 24, 24))
    buffer = _io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    result = run(tmp_path, [{"product_id": "p", "title": "t", "image": buffer.getvalue()}])
    r, g, _ = Image.open(_io.BytesIO(result.columns["_image"][0])).getpixel((12, 12))
    assert r > 200 and g < 60


def test_working_image_is_capped(tmp_path):
    result = run(tmp_path, [{"product_id": "p", "title": "t", "image": photo_file(600, 300)}], work_image_side=200)
    assert Image.open(_io.BytesIO(result.columns["_image"][0])).size == (200, 100)


def test_s3_addresses_are_read_as_s3_and_keep_within_their_keys():
    from augment.imaging.untrusted import ImageRejected, resolve_image_uri

    def resolve(uri):
        return resolve_image_uri(uri, "s3://shop/in/products.parquet", allowed_roots=[], allowed_buckets=["shop"])

    assert resolve("S3://shop/img/1.jpg") == "s3://shop/img/1.jpg"  # never the local path "S3:/shop/..."
    assert resolve("img/1.jpg") == "s3://shop/in/img/1.jpg"
    assert resolve("../img/1.jpg") == "s3://shop/img/1.jpg"
    for uri in ("s3://shop/in/../../other/1.jpg", "s3://shop/../1.jpg"):
        with pytest.raises(ImageRejected) as rejected:
            resolve(uri)
        assert rejected.value.reason == "image_path_outside_roots"
    for uri in ("S3://elsewhere/1.jpg", "s3:///1.jpg"):
        with pytest.raises(ImageRejected) as rejected:
            resolve(uri)
        assert rejected.value.reason == "image_bucket_not_allowed"


def test_s3_images_are_read_side_by_side_with_the_same_outcome(tmp_path, monkeypatch):
    """Each S3 read is a round trip or two: a shard's images are fetched FETCH_THREADS at a time, and every row
    gets the image or the rejection it would get read one by one."""
    import threading
    import time

    from augment.imaging import untrusted
    from augment.stages.validate import stage as V

    in_flight, peak, lock = [0], [0], threading.Lock()

    def fetch(uri, max_bytes):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        if "missing" in uri:
            raise untrusted.ImageRejected("image_not_found", uri)
        return photo_file()

    monkeypatch.setattr(untrusted, "load_image_bytes", fetch)
    uris = [f"s3://shop/img/{i}.jpg" for i in range(40)]
    uris[3], uris[7] = "s3://shop/img/missing.jpg", "s3://elsewhere/x.jpg"
    rows = [{"product_id": f"p{i}", "title": "t", "image": None, "image_uri": uri} for i, uri in enumerate(uris)]
    rows[5]["title"] = None  # rejected for its title before its image counts
    stage = V.ValidateStage(V.ValidateOptions(allowed_buckets=["shop"]))
    batch = {k: [r.get(k) for r in rows] for k in ("product_id", "title", "image", "image_uri", PARSE_ERROR)}
    batch |= {SOURCE_URI: ["s3://shop/in.parquet"] * 40, DUPLICATE: [False] * 40}
    result = stage.process(batch)
    reasons = {i: r.reason for i, r in enumerate(result.rejects) if r}
    assert reasons == {3: "image_not_found", 5: "missing_title", 7: "image_bucket_not_allowed"}
    assert all(result.columns["_image"][i] for i in range(40) if i not in reasons)
    assert 1 < peak[0] <= V.FETCH_THREADS


def claimed_png(width: int, height: int) -> bytes:
    """A PNG header claiming `width`x`height` pixels, with no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "row, expected, detail",
    [
        ({"image": None, "image_uri": "a.jpg\x00"}, "image_not_found", "no path or key holds a NUL character"),
        ({"image": None, "image_uri": "s3:shop/x.jpg"}, "image_uri_unsupported", "an S3 address is s3://bucket/key"),
        ({"image": None, "image_uri": "data:image/jpeg;base64,AAAA"}, "image_uri_unsupported",
         "a data URL is read from the `image` column"),
        ({"image": b"<svg xmlns='http://www.w3.org/2000/svg'></svg>"}, "image_undecodable",
         "not an image of an accepted format (BMP, GIF, JPEG, PNG, TIFF, WEBP)"),
        ({"image": claimed_png(100_000, 100_000)}, "image_too_many_pixels",
         "10000000000 pixels > input.max_image_pixels"),
        ({"image": photo_file(4000, 12, fmt="PNG")}, "image_too_small",
         "4000x12 is 1024x3 at input.work_image_side 1024, under input.min_image_side 8"),
    ],
)
def test_a_rejections_detail_names_the_problem_in_the_configs_terms(tmp_path, row, expected, detail):
    result = run(tmp_path, [{"product_id": "p", "title": "Nike Shoe", "image": photo_file()} | row])
    assert (result.rejects[0].reason, detail in result.rejects[0].detail) == (expected, True), result.rejects[0].detail
    assert " at 0x" not in result.rejects[0].detail  # no object's memory address


def test_a_folder_or_a_pipe_named_as_an_image_is_unreadable_not_missing(tmp_path):
    import os

    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "pipe.jpg")  # never opened: reading it would wait for a writer
    for name in ("folder.jpg", "pipe.jpg"):
        rejection = run(tmp_path, [{"product_id": "p", "title": "t", "image": None, "image_uri": name}]).rejects[0]
        assert (rejection.reason, rejection.detail) == ("image_unreadable", f"{tmp_path / name}: not a regular file")


def test_an_image_the_store_cannot_serve_now_stops_the_batch_and_quarantines_nothing(tmp_path, monkeypatch):
    """An outage is not the product's fault: quarantined as image_unreadable, it was committed and never retried."""
    from augment.core import storage

    real_size = storage.size

    def size(uri):
        if uri.endswith("2.jpg"):
            raise OSError("AWS Error NETWORK_CONNECTION during HeadObject operation: curl code 7")
        return real_size(uri)

    for i in range(3):
        (tmp_path / f"{i}.jpg").write_bytes(photo_file())
    rows = [{"product_id": f"p{i}", "title": "t", "image_uri": str(tmp_path / f"{i}.jpg")} for i in range(3)]
    monkeypatch.setattr(storage, "size", size)
    with pytest.raises(storage.StorageUnavailable, match=rf"^cannot fetch the image {tmp_path}/2\.jpg now \(AWS "
                                                          r"Error NETWORK_CONNECTION .*\): its product is left for "
                                                          r"the resume, not quarantined$"):
        run(tmp_path, rows)
    monkeypatch.setattr(storage, "size", real_size)  # the store is back: every product is accepted
    assert run(tmp_path, rows).rejects == [None, None, None]
