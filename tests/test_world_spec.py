"""Spec loading: Cosmos-Predict2.5 JSON files, globs, Cosmos-Predict1 JSONL, validation messages."""

import json

import pytest

from theworld.world.spec import SpecError, check_overrides, load_specs


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


@pytest.fixture
def assets(tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "robot.png").write_bytes(b"not decoded at load time")
    (tmp_path / "assets" / "clip.mp4").write_bytes(b"")
    return tmp_path


def one_error(batch):
    assert not batch.specs and len(batch.errors) == 1
    message = str(batch.errors[0])
    assert "\n" not in message
    return message


def test_full_spec_round_trips_and_relative_input_resolves_against_spec_file(assets, monkeypatch):
    spec_file = write(
        assets / "specs" / "a.json",
        {
            "inference_type": "image2world",
            "name": "robot",
            "prompt": "a robot",
            "negative_prompt": "blur",
            "input_path": "../assets/robot.png",
            "seed": 7,
            "num_output_frames": 9,
            "guidance": 3,
            "resolution": "480",
            "fps": 10,
        },
    )
    monkeypatch.chdir(assets / "assets")  # the working directory must not matter
    (spec,) = load_specs([str(spec_file)]).specs
    assert spec.input_path == (assets / "assets" / "robot.png").resolve()
    assert (spec.seed, spec.num_output_frames, spec.guidance, spec.resolution, spec.fps) == (
        7,
        9,
        3.0,
        (480, 832),
        10,
    )


def test_inference_type_is_inferred_from_the_input(assets):
    write(assets / "t.json", {"prompt": "p"})
    write(assets / "i.json", {"prompt": "p", "input_path": "assets/robot.png"})
    write(assets / "v.json", {"prompt": "p", "input_path": "assets/clip.mp4"})
    specs = load_specs([str(assets / n) for n in ("t.json", "i.json", "v.json")]).specs
    assert [s.inference_type for s in specs] == ["text2world", "image2world", "video2world"]
    assert [s.name for s in specs] == ["t", "i", "v"]


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"prompt": "a", ', "not valid JSON"),
        ('["prompt"]', "expected a JSON object"),
        ({"prompt": "a", "promt": "b"}, "unknown key(s) ['promt']; allowed keys are ['inference_type'"),
        ({"prompt": ""}, 'missing or empty "prompt"'),
        ({"prompt": "a", "input_path": "nowhere.mp4"}, "input_path 'nowhere.mp4' not found"),
        ({"prompt": "a", "inference_type": "video2world"}, "video2world needs an input"),
        ({"prompt": "a", "inference_type": "text2image"}, "inference_type='text2image' is unknown"),
        ({"prompt": "a", "num_output_frames": 0}, "num_output_frames=0 is impossible"),
        ({"prompt": "a", "num_output_frames": 9.5}, "num_output_frames=9.5 is impossible"),
        ({"prompt": "a", "num_input_frames": 9, "num_output_frames": 9}, "must exceed num_input_frames"),
        ({"prompt": "a", "resolution": [100, 64]}, "resolution=[100, 64] is impossible"),
        ({"prompt": "a", "resolution": "1080"}, "resolution='1080' is not understood"),
        ({"prompt": "a", "resolution": [64]}, "is not understood"),
        ({"prompt": "a", "seed": -1}, "seed=-1 is impossible; use an integer in [0, 2**63 - 1]"),
        ({"prompt": "a", "seed": 2**80}, f"seed={2**80} is impossible; use an integer in [0, 2**63 - 1]"),
        ({"prompt": 5}, '"prompt" must be a string, got int 5'),
        ({"prompt": ["a", "ball"]}, "\"prompt\" must be a string, got list ['a', 'ball']"),
        ({"prompt": "a", "guidance": "high"}, "guidance='high' is out of range"),
    ],
)
def test_invalid_specs_give_one_line_naming_file_problem_and_fix(tmp_path, content, expected):
    path = write(tmp_path / "bad.json", content)
    message = one_error(load_specs([str(path)]))
    assert message.startswith(f"{path}: ")
    assert expected in message
    assert any(fix in message for fix in ("; use", "; fix", "; add", "; set", "; wrap", "; raise", "allowed keys"))


def test_missing_spec_file_and_empty_glob_are_reported(tmp_path):
    batch = load_specs([str(tmp_path / "missing.json"), str(tmp_path / "none" / "*.json")])
    assert [("not found" in str(e)) or ("matched no files" in str(e)) for e in batch.errors] == [True, True]


def test_quoted_globs_expand_sorted_and_good_specs_survive_bad_ones(tmp_path):
    for name in ("b", "a", "c"):
        write(tmp_path / "assets" / f"{name}.json", {"prompt": name})
    write(tmp_path / "assets" / "z.json", {"prompt": name, "bogus": 1})
    write(tmp_path / "one.json", {"prompt": "one"})
    batch = load_specs([str(tmp_path / "one.json"), str(tmp_path / "assets" / "*.json")])
    assert [s.name for s in batch.specs] == ["one", "a", "b", "c"]
    assert len(batch.errors) == 1 and "z.json" in str(batch.errors[0])


def test_predict1_jsonl_reports_bad_lines_by_number_and_keeps_the_rest(assets):
    path = write(
        assets / "batch.jsonl",
        "\n".join(
            [
                json.dumps({"visual_input": "assets/robot.png", "prompt": "first"}),
                "{not json",
                "",
                json.dumps({"visual_input": "assets/missing.mp4", "prompt": "fourth"}),
                json.dumps({"prompt": "fifth", "seed": 3}),
            ]
        ),
    )
    batch = load_specs(batch_input_path=str(path))
    assert [(s.name, s.inference_type, s.source) for s in batch.specs] == [
        ("robot", "image2world", f"{path}:1"),
        ("batch_0005", "text2world", f"{path}:5"),
    ]
    assert batch.specs[0].input_path == (assets / "assets" / "robot.png").resolve()
    assert [str(e).split(": ")[0] for e in batch.errors] == [f"{path}:2", f"{path}:4"]


def test_cli_overrides_beat_spec_values_and_are_validated(tmp_path):
    write(tmp_path / "a.json", {"prompt": "a", "seed": 1, "fps": 8})
    (spec,) = load_specs([str(tmp_path / "a.json")]).specs
    overrides = check_overrides({"seed": 5, "fps": None, "resolution": "64x64"})
    spec = spec.with_overrides(**overrides)
    assert (spec.seed, spec.fps, spec.resolution) == (5, 8, (64, 64))
    with pytest.raises(SpecError, match="command line: num_output_frames=0 is impossible"):
        check_overrides({"num_output_frames": 0})


def test_frame_counts_are_checked_on_the_command_line_and_with_the_spec(tmp_path):
    with pytest.raises(SpecError, match="command line: num_output_frames=5 must exceed num_input_frames=9; raise it"):
        check_overrides({"num_input_frames": 9, "num_output_frames": 5})
    write(tmp_path / "a.json", {"prompt": "a", "num_output_frames": 9})
    (spec,) = load_specs([str(tmp_path / "a.json")]).specs
    with pytest.raises(SpecError, match=r"a.json: num_output_frames=9 must exceed num_input_frames=12 \(spec and"):
        spec.with_overrides(**check_overrides({"num_input_frames": 12}))
