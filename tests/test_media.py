"""Reading the media users give: transparency, images over the pixel bound, videos decoded a frame at a time, audio
longer than the encoder hears, and folders or wrong kinds of file named as what they are."""

import copy
import subprocess
import sys

import av
import imageio.v3 as iio
import numpy as np
import pytest
import soundfile
from PIL import Image
from support import write_png_header

from theworld.media import MAX_IMAGE_PIXELS, MediaError, MediaTooLarge, load_image, load_video, video
from theworld.modeling.processing_theworld import MAX_AUDIO_SAMPLES, add_hearing_to_processor
from theworld.omni.audio import MAX_AUDIO_SECONDS, SAMPLING_RATE, load_audio


def clip(count: int = 23, height: int = 32, width: int = 48) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)


def write_clip(path, frames: np.ndarray) -> None:
    """An mp4 (the container counts its frames), a WebM or a GIF (it does not: the packets are counted)."""
    if path.suffix == ".gif":
        images = [Image.fromarray(frame) for frame in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=125)
    else:
        iio.imwrite(path, frames, plugin="pyav", codec="libvpx-vp9" if path.suffix == ".webm" else "libx264", fps=8)


def every_frame(path) -> np.ndarray:
    """What the reader did before it kept only the chosen frames: decode the whole clip."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(container.streams.video[0])])


def test_transparency_is_composited_onto_white(tmp_path):
    pixels = np.zeros((2, 2, 4), dtype=np.uint8)
    pixels[...] = (255, 0, 0, 128)  # red, half transparent
    pixels[1, 1] = (0, 0, 255, 0)  # fully transparent: its stored blue must not show
    Image.fromarray(pixels, "RGBA").save(tmp_path / "half.png")
    rgb = np.asarray(load_image(tmp_path / "half.png")).astype(int)
    expected = np.rint(255 * (1 - 128 / 255))  # red over white: green and blue come from the background
    assert np.abs(rgb[0, 0] - [255, expected, expected]).max() <= 1
    assert rgb[1, 1].tolist() == [255, 255, 255]
    assert np.array_equal(np.asarray(load_image(Image.open(tmp_path / "half.png"))), rgb), "PIL images too"


def test_palette_transparency_is_composited_and_opaque_images_are_unchanged(tmp_path):
    palette = Image.new("P", (2, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.save(tmp_path / "palette.png", transparency=1)
    assert np.asarray(load_image(tmp_path / "palette.png")).tolist() == [[[255, 0, 0], [255, 255, 255]]]
    opaque = clip(1)[0]
    Image.fromarray(opaque).convert("RGBA").save(tmp_path / "opaque.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "opaque.png")), opaque)


def test_an_image_over_the_pixel_bound_is_refused_from_its_header(tmp_path):
    write_png_header(tmp_path / "huge.png", 20000, 20000)  # its pixels would take over a gigabyte
    with pytest.raises(MediaTooLarge) as refused:
        load_image(tmp_path / "huge.png")
    message = str(refused.value)
    assert "huge.png is 400 megapixels" in message and f"limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels" in message
    assert "Downscale" in message and "\n" not in message


def test_the_bound_holds_where_a_program_lifted_pils_own(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    write_png_header(tmp_path / "huge.png", 20000, 20000)
    with pytest.raises(MediaTooLarge, match="huge.png is 20000x20000, 400 megapixels; the limit is"):
        load_image(tmp_path / "huge.png")


def test_an_image_between_pils_warning_and_its_bound_is_read_without_a_warning(tmp_path, monkeypatch, recwarn):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # PIL warns over 100 pixels and refuses over 200
    Image.fromarray(clip(1, 10, 15)[0]).save(tmp_path / "warned.png")
    assert load_image(tmp_path / "warned.png").size == (15, 10)
    assert not [warning for warning in recwarn if issubclass(warning.category, Image.DecompressionBombWarning)]


@pytest.mark.parametrize("reader, kind", [(load_image, "Image"), (load_video, "Video"), (load_audio, "Audio")])
def test_a_directory_is_called_a_directory(tmp_path, reader, kind):
    with pytest.raises(MediaError, match=f"^{kind} .* is a directory, not a file"):
        reader(tmp_path)
    with pytest.raises(MediaError, match=f"^{kind} not found"):
        reader(tmp_path / "missing")


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_sampled_frames_are_those_a_full_decode_picks(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    write_clip(path, clip())
    everything = every_frame(path)
    for num_frames in (1, 3, 8, 40):
        chosen = np.linspace(0, len(everything) - 1, num=min(num_frames, len(everything))).round().astype(int)
        assert np.array_equal(load_video(path, num_frames), everything[chosen]), num_frames


@pytest.mark.parametrize("error", [-5, 4])
def test_a_wrong_frame_count_in_the_container_is_corrected(tmp_path, monkeypatch, error):
    path = tmp_path / "clip.mp4"
    write_clip(path, clip())
    truth = load_video(path, 5)
    probe = video.probe_video
    monkeypatch.setattr(video, "probe_video", lambda p: (probe(p)[0] + error, *probe(p)[1:]))
    assert np.array_equal(load_video(path, 5), truth)


def test_only_the_chosen_frames_are_converted(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    write_clip(path, clip(40))
    converted = []
    to_ndarray = av.VideoFrame.to_ndarray
    monkeypatch.setattr(av.VideoFrame, "to_ndarray", lambda frame, **kw: converted.append(1) or to_ndarray(frame, **kw))
    assert len(load_video(path, 8)) == 8 and len(converted) == 8


def test_audio_passed_as_a_video_says_it_has_no_video_stream(tmp_path):
    soundfile.write(tmp_path / "speech.wav", np.zeros(1600, dtype=np.float32), SAMPLING_RATE)
    with pytest.raises(MediaError, match="speech.wav: it has no video stream, only audio streams. Pass an MP4"):
        load_video(tmp_path / "speech.wav")


def test_audio_longer_than_the_encoder_hears_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    soundfile.write(tmp_path / "long.flac", np.zeros(42 * 8000, dtype=np.float32), 8000)
    monkeypatch.setattr(soundfile, "read", lambda *a, **k: pytest.fail("decoded before its length was checked"))
    with pytest.raises(MediaTooLarge, match=r"long.flac is 42.0 s; the model hears at most 30 s. Trim it"):
        load_audio(tmp_path / "long.flac")
    with pytest.raises(MediaTooLarge, match="the model hears at most 30 s"):
        load_audio(np.zeros(MAX_AUDIO_SAMPLES + 1, dtype=np.float32))


def test_audio_of_exactly_the_window_is_heard_whole(tmp_path):
    soundfile.write(tmp_path / "full.wav", np.zeros(MAX_AUDIO_SECONDS * SAMPLING_RATE, dtype=np.float32), SAMPLING_RATE)
    assert len(load_audio(tmp_path / "full.wav")) == MAX_AUDIO_SAMPLES


def test_the_processor_refuses_audio_it_would_cut(processor):
    hearing = add_hearing_to_processor(copy.deepcopy(processor), 2)
    with pytest.raises(ValueError, match=r"audio is 31.0 s; the model hears at most 30 s; trim it"):
        hearing(audio=np.zeros(31 * SAMPLING_RATE, dtype=np.float32), return_tensors="pt")


@pytest.mark.slow
def test_a_long_clip_costs_the_frames_kept_not_the_frames_decoded(tmp_path):
    """300 frames of 640x480 take 276 MB decoded; sampling 8 of them must hold only a few frames at a time.
    benchmarks/media_bounds.py measures the same on a 10-minute clip."""
    texture = np.kron(np.random.default_rng(0).integers(0, 256, (30, 80, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    moving = np.stack([texture[:, i * 2 : i * 2 + 640] for i in range(300)])
    iio.imwrite(tmp_path / "long.mp4", moving, plugin="pyav", codec="libx264", fps=30)
    del moving
    code = f"""
from theworld.media import load_video
def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024
open("/proc/self/clear_refs", "w").write("5")  # the high-water mark starts again from here
before = status("VmRSS")
assert load_video({str(tmp_path / "long.mp4")!r}, 8).shape == (8, 480, 640, 3)
print(status("VmHWM") - before)
"""
    growth_mb = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert growth_mb < 100, f"reading 8 frames grew the process by {growth_mb:.0f} MB"
