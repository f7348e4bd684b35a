"""Peak memory of reading long videos: `chat --video`'s reader and a video2world run's, against decoding every frame.

    OMP_NUM_THREADS=1 python benchmarks/media_bounds.py
    OMP_NUM_THREADS=1 python benchmarks/media_bounds.py --workdir /tmp/clips   # keep the clips for another run

Two 640x480 clips at 30 fps are encoded once with PyAV (H.264, ultrafast, a keyframe every 30 frames): 60 s and
10 minutes. Each reader then runs in its own process, which reports
- peak RSS: the process's high-water mark (VmHWM), imports included: what `top` would have shown at worst;
- decoding's share: the high-water mark's growth over the RSS once the imports are done (reset through
  /proc/self/clear_refs), i.e. what the frames in flight cost;
- the wall time of the read.
Rows: `load_video(clip, 8)` (chat --video), `read_input(clip, max_frames=93)` (a video2world run keeps at most the
output's frame count, 93 for Cosmos), and, on the 60 s clip only, the old reader: every frame decoded, then 8 chosen
(on the 10-minute clip it would need about ten times as much).
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 30
CLIPS = {"60 s": 60, "10 min": 600}

# Each reader runs in a fresh process; `{path}` is the clip. The imports happen before the high-water mark is reset.
READERS = {
    "load_video(clip, 8)": (
        "from theworld.media import load_video",
        "frames = load_video({path!r}, 8)",
    ),
    "read_input(clip, max_frames=93)": (
        "from theworld.world.io import read_input",
        "frames = read_input({path!r}, max_frames=93)",
    ),
    "old: decode every frame, keep 8": (
        "import av, numpy as np",
        "with av.open({path!r}) as c:\n"
        "    every = np.stack([f.to_ndarray(format='rgb24') for f in c.decode(c.streams.video[0])])\n"
        "frames = every[np.linspace(0, len(every) - 1, 8).round().astype(int)]",
    ),
}
OLD_ONLY_ON = "60 s"

CHILD = """
import json, time
{imports}

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) / 1024

with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # resets VmHWM to the current RSS: the peak from here on is the read's
before = status("VmRSS")
start = time.perf_counter()
{read}
seconds = time.perf_counter() - start
print(json.dumps({{"peak_mb": status("VmHWM"), "before_mb": before, "seconds": seconds, "shape": list(frames.shape)}}))
"""


def make_clip(path: Path, seconds: int) -> None:
    """A textured pattern drifting across the frame, so that every frame differs, as in footage."""
    import av

    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(0, 256, (HEIGHT // 16, 2 * WIDTH // 16, 3), dtype=np.uint8), np.ones((16, 16, 1)))
    texture = texture.astype(np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": str(FPS)})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(seconds * FPS):
            shift = (i * 4) % WIDTH
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(texture[:, shift : shift + WIDTH]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def measure(reader: str, path: Path) -> dict:
    imports, read = READERS[reader]
    code = CHILD.format(imports=imports, read=read.format(path=str(path)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="where the clips are made (and kept); default a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"{'clip':8} {'frames':>6}  {'reader':34} {'peak RSS MB':>11} {'decoding MB':>11} {'seconds':>8}")
        for name, seconds in CLIPS.items():
            path = workdir / f"clip_{seconds}s_{WIDTH}x{HEIGHT}_{FPS}fps.mp4"
            if not path.exists():
                make_clip(path, seconds)
            for reader in READERS:
                if reader.startswith("old") and name != OLD_ONLY_ON:
                    continue
                row = measure(reader, path)
                growth = row["peak_mb"] - row["before_mb"]
                print(
                    f"{name:8} {seconds * FPS:>6}  {reader:34} {row['peak_mb']:>11.0f} {growth:>11.0f} "
                    f"{row['seconds']:>8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
