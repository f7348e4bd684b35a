"""Reading inputs, sanitised names, and atomic per-sample output folders."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image
from support import write_png_header

from theworld.media import MediaError, MediaTooLarge, usual_mode
from theworld.world import io
from theworld.world.io import read_input, sanitize_name, unique_names, write_sample


def frames(t=5, h=32, w=48):
    return np.random.default_rng(0).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("../../etc/x", "etc_x"),
        ("..", "sample"),
        ("a/b\\c", "a_b_c"),
        (".hidden", "hidden"),
        ("robot arm: take 2!", "robot_arm_take_2"),
        ("", "sample"),
        ("x" * 300, "x" * 64),
        ("Ωmega", "mega"),
    ],
)
def test_sanitize_name_has_no_separators_no_dotdot_and_a_safe_charset(raw, expected):
    name = sanitize_name(raw)
    assert name == expected
    assert "/" not in name and "\\" not in name and ".." not in name and len(name) <= 64


def test_unique_names_suffix_duplicates_case_insensitively():
    assert unique_names(["a", "A", "a", "../a"]) == ["a", "A_2", "a_3", "a_4"]


def test_write_sample_writes_every_artifact(tmp_path):
    video = frames()
    out = write_sample(tmp_path, "robot", video, 8, {"prompt": "p"}, {"seed": 1})
    assert out.stat().st_mode & 0o777 == usual_mode(directory=True), "not mkdtemp's private 0700"
    assert out == tmp_path / "robot"
    assert sorted(p.name for p in out.iterdir()) == [
        "frames",
        "record.json",
        "robot.gif",
        "robot.mp4",
        "spec.json",
    ]
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:03d}.png" for i in range(5)]
    assert np.array_equal(np.asarray(Image.open(out / "frames" / "003.png")), video[3])  # PNG is lossless
    assert iio.improps(out / "robot.mp4", plugin="pyav").shape == (5, 32, 48, 3)
    assert json.loads((out / "record.json").read_text()) == {"seed": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["robot"]


def test_odd_sizes_are_padded_for_the_mp4(tmp_path):
    out = write_sample(tmp_path, "odd", frames(h=33, w=17), 8, {}, {})
    assert iio.improps(out / "odd.mp4", plugin="pyav").shape == (5, 34, 18, 3)


def test_failure_mid_sample_leaves_nothing_behind(tmp_path, monkeypatch):
    def explode(*args):
        raise OSError("disk full")

    monkeypatch.setattr(io, "write_gif", explode)  # after the PNGs and the mp4 were written
    with pytest.raises(OSError, match="disk full"):
        write_sample(tmp_path / "out", "robot", frames(), 8, {}, {})
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_rewrite_keeps_the_previous_complete_folder(tmp_path, monkeypatch):
    write_sample(tmp_path, "robot", frames(), 8, {}, {"run": 1})
    monkeypatch.setattr(io, "_write_json", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_sample(tmp_path, "robot", frames(), 8, {}, {"run": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["robot"]
    assert json.loads((tmp_path / "robot" / "record.json").read_text()) == {"run": 1}


def test_rewrite_replaces_the_folder(tmp_path):
    write_sample(tmp_path, "robot", frames(t=5), 8, {}, {"run": 1})
    write_sample(tmp_path, "robot", frames(t=3), 8, {}, {"run": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["robot"]
    assert len(list((tmp_path / "robot" / "frames").iterdir())) == 3


def test_unsanitised_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not sanitised"):
        write_sample(tmp_path, "../x", frames(), 8, {}, {})


def test_read_input_image_and_video(tmp_path):
    Image.fromarray(frames(t=1)[0]).convert("RGBA").save(tmp_path / "a.png")
    assert read_input(tmp_path / "a.png").shape == (1, 32, 48, 3)
    iio.imwrite(tmp_path / "v.mp4", frames(t=7), plugin="pyav", codec="libx264", fps=8)
    assert read_input(tmp_path / "v.mp4").shape == (7, 32, 48, 3)
    assert read_input(tmp_path / "v.mp4", max_frames=2).shape == (2, 32, 48, 3)


@pytest.mark.parametrize("name", ["broken.png", "broken.mp4", "missing.mp4"])
def test_read_input_reports_missing_or_corrupt_files_in_one_line(tmp_path, name):
    if not name.startswith("missing"):
        (tmp_path / name).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(MediaError) as err:
        read_input(tmp_path / name)
    assert name in str(err.value) and "\n" not in str(err.value)
    assert "replace it" in str(err.value) or "check input_path" in str(err.value)


def test_read_input_keeps_the_last_frames_of_a_full_decode(tmp_path):
    video = frames(t=9)
    iio.imwrite(tmp_path / "v.mp4", video, plugin="pyav", codec="libx264", fps=8)
    everything = iio.imread(tmp_path / "v.mp4", plugin="pyav")
    for keep in (1, 4, 9, 20):
        assert np.array_equal(read_input(tmp_path / "v.mp4", max_frames=keep), everything[-keep:])


@pytest.mark.parametrize("name", ["broken.tiff", "broken.heic"])
def test_a_bad_image_input_is_called_an_image(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(MediaError, match=f"cannot read image '.*{name}'.*replace it with a valid PNG or JPEG image"):
        read_input(tmp_path / name)


def test_a_directory_input_is_called_a_directory(tmp_path):
    with pytest.raises(MediaError, match="is a directory, not a file; check input_path"):
        read_input(tmp_path)


def test_an_input_over_the_pixel_bound_says_so(tmp_path):
    write_png_header(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(MediaTooLarge, match="huge.png is 400 megapixels; the limit is"):
        read_input(tmp_path / "huge.png")
