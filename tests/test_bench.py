"""The benchmark tool's shape: one parser over the registered subcommands, each with its
options declared once, and no script that edits sys.path (``python -m bench`` from the
repository root finds both ``bench`` and ``nstpipe``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import COMMANDS, parser
from nstpipe.config import build_settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_subcommand_module_is_registered_with_its_help() -> None:
    """A module of bench/ with add_arguments and main is a subcommand: one line in COMMANDS."""
    found = {p.stem for p in (ROOT / "bench").glob("*.py")
             if "def add_arguments(" in p.read_text() and "def main(" in p.read_text() and p.stem != "__main__"}
    assert found == {module.__name__.rpartition(".")[2] for module in COMMANDS.values()}
    for name, module in COMMANDS.items():
        assert (module.__doc__ or "").strip(), f"bench {name} has no docstring for its help"


@pytest.mark.parametrize("name", [n for n in COMMANDS if n not in ("sheet", "judge", "settling")])  # these need files
def test_each_subcommand_parses_its_defaults(name: str) -> None:
    args = parser().parse_args([name])
    assert args.subcommand == name
    assert args.data == ROOT / "data" and args.json is None  # the common options, from bench.common


def test_no_script_edits_sys_path() -> None:
    offenders = [str(p.relative_to(ROOT)) for folder in ("bench", "scripts") for p in sorted((ROOT / folder).iterdir())
                 if p.is_file() and "sys.path" in p.read_text(errors="replace")]
    assert offenders == []


def test_the_versus_part_times_two_tiled_passes_against_each_other(tmp_path: Path) -> None:
    from bench import tiles

    ours = ROOT / "nstpipe" / "engine" / "tiled.py"
    # Another tiled pass, whose gradient is twice ours: the part must read the file it is given.
    doubled = tmp_path / "tiled.py"
    doubled.write_text(ours.read_text() + "\n\n_Ours = TiledObjective\n\n\nclass TiledObjective(_Ours):  # type: ignore[no-redef]\n"
                       "    def losses_and_grad(self, x):  # type: ignore[no-untyped-def]\n"
                       "        losses, grad = super().losses_and_grad(x)\n        return losses, 2 * grad\n")
    options = ["tiles", "--parts", "versus", "--speed-size", "64", "--rounds", "2", "--device", "cpu", "--against"]
    (row,) = tiles.versus(parser().parse_args([*options, str(ours)]))
    assert row["tiles"] == 4 and row["rounds"] == 2
    assert row["gradient_difference"] < 1e-6  # the same file: the same gradient
    (other,) = tiles.versus(parser().parse_args([*options, str(doubled)]))
    assert other["gradient_difference"] == pytest.approx(0.5, rel=1e-4)
    assert all(len(each) == 2 and min(each) > 0 for each in row["each"].values())
    with pytest.raises(SystemExit, match="--against"):
        tiles.versus(parser().parse_args(["tiles", "--parts", "versus"]))


def test_the_speed_part_times_the_engines_plan_beside_four_tiles() -> None:
    from bench import tiles

    options = ["--speed-size", "256", "--speed-share", "0.2", "--rounds", "1", "--device", "cpu"]
    args = parser().parse_args(["tiles", "--parts", "speed", *options])
    plan, quarters = tiles.speed(args)
    assert (plan["layout"], quarters["layout"]) == ("plan", "quarters")
    # A fifth of the untiled pass's room for activations (at larger shares a picture this
    # small fits whole with fewer L-BFGS pairs): the plan tiles the encoder's head and runs
    # its tail whole.
    assert plan["split"].startswith("pool") and plan["tiles"] > 1 and 1 < plan["model_cost"] < 2
    assert quarters["split"] == "none" and quarters["tiles"] == 4
    assert all(row["tiled_s_per_mp_it"] > 0 and row["ratio"] > 0 for row in (plan, quarters))


def test_the_sheet_puts_each_stylized_video_in_a_row_and_zooms_a_detail(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from bench import sheet
    from clips import make_clip
    from nstpipe.media.video import read_frames

    source, a, b = (make_clip(tmp_path / f"{name}.mp4", n_frames=4) for name in ("source", "a", "b"))
    out = tmp_path / "sheet.png"
    args = parser().parse_args(["sheet", str(source), str(a), str(b), str(out), "--frames", "0,3", "--crop", "4,2,10,6", "--zoom", "3"])
    assert sheet.main(args) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (3 * 6 * 3, 2 * 10 * 3, 3)  # rows: the source, a, b; two frames; the detail, 3x
    first_of_a = next(read_frames(a)).rgb
    assert np.array_equal(picture[18:36:3, 0:30:3], first_of_a[2:8, 4:14])


def test_the_flow_part_counts_a_still_wall_that_dis_moves() -> None:
    import numpy as np

    from bench import flow

    wall = np.full((48, 64, 3), 100.0)
    frames = [np.clip(wall + np.random.default_rng(seed).normal(0, 1.0, wall.shape), 0, 255).astype(np.uint8) for seed in (1, 2)]
    alone, held = flow.measure(frames, None, 1), flow.measure(frames, 3e-4, 1)
    assert alone["still_moved"] > 0.5 and held["still_moved"] == 0.0
    assert held["trusted"] == 1.0 and held["footage_ewarp"] > 0


def test_the_frontier_splits_the_patch_distance_by_scale_over_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.frontier import Run, make_row, print_patch_parts

    ref = {"style": 1.0, "content": 1.0, "feature": 1.0, "patch": 0.7, "patch_full": 0.4, "patch_half": 0.3}
    ours = {"style": 0.5, "content": 0.5, "feature": 0.5, "patch": 0.8, "patch_full": 0.2, "patch_half": 0.6}
    row = make_row(Run("ours", "default", "preset default"), "starry_night", ours, ref)
    assert row["patch_over_ref"] == pytest.approx(0.8 / 0.7)
    assert row["patch_full_over_ref"] == pytest.approx(0.5)
    assert row["patch_half_over_ref"] == pytest.approx(2.0)
    print_patch_parts([make_row(None, "starry_night", ref, ref), row])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].split()[-2:] == ["1.000", "1.000"]
    assert lines[-1].split()[-2:] == ["0.500", "2.000"]


def test_the_palette_part_sends_the_stills_through_the_videos_h264(tmp_path: Path) -> None:
    """Stills are compared with the decoded video only after the same H.264: its 4:2:0
    colour smears one-pixel colour stripes toward grey, while a flat colour comes back."""
    import torch

    from bench.modes import through_h264

    stripes = torch.zeros(1, 3, 32, 48)
    stripes[:, 0, :, 0::2] = 1.0  # red and blue columns, one pixel each
    stripes[:, 2, :, 1::2] = 1.0
    flat = torch.full((1, 3, 32, 48), 0.5)
    back = through_h264(stripes, 18, tmp_path / "s.mp4")
    assert back.shape == stripes.shape
    assert (back - stripes).abs().mean() > 0.2
    assert (through_h264(flat, 18, tmp_path / "f.mp4") - flat).abs().max() < 0.02
    assert not list(tmp_path.iterdir())  # the clip it wrote is gone


def test_a_frontier_point_reads_its_values_as_a_config_file_does() -> None:
    from bench.frontier import point_changes

    base = build_settings().engine
    name, changes = point_changes("p:style_layer_weights=1,1,1,2,2;compile=false;style_weight=30", base)
    # Calling the field's type on the text gave nine one-character weights and a true "false".
    assert name == "p"
    assert changes == {"style_layer_weights": (1.0, 1.0, 1.0, 2.0, 2.0), "compile": False, "style_weight": 30.0}
    for bad, said in [("p:nope=1", "no engine setting 'nope'"), ("p:style_layer_weights=1,2", "2 weights for 5")]:
        with pytest.raises(SystemExit, match=said):
            point_changes(bad, base)


def test_judge_gives_each_pictures_distances_over_the_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each picture's distances over the reference's, the closer half's beside them, in the
    table and the JSON; a missing picture is one line. The distances themselves are
    bench.measure's, the frontier's own (faked here: measuring at 256 px is the frontier's
    test)."""
    import json

    import bench.judge as judge

    ref = {"style": 2.0, "content": 4.0, "feature": 1.0, "patch": 0.5, "patch_full": 0.2, "patch_half": 0.3, "feature_relu4_1": 0.1}
    ours = {"style": 1.0, "content": 1.0, "feature": 0.5, "patch": 0.25, "patch_full": 0.1, "patch_half": 0.3, "feature_relu4_1": 0.3}
    half = {"feature": 0.7, "patch": 2.0, "patch_full": 1.0, "patch_half": 1.0}
    picture = tmp_path / "mine.png"
    picture.write_bytes(b"")
    monkeypatch.setattr(judge, "meter", lambda: None)
    monkeypatch.setattr(judge, "lanczos", lambda path: path)
    monkeypatch.setattr(judge, "measure", lambda vgg, path, photo, style: ours if Path(path) == picture else ref)
    monkeypatch.setattr(judge, "painting_floor", lambda vgg, style: half)
    assert judge.main(parser().parse_args(["judge", str(picture), "--out", str(tmp_path / "out")])) == 0
    rows = {Path(r["name"]).name: r for r in json.loads((tmp_path / "out" / "judge.json").read_text())["rows"]}
    assert [rows["mine.png"][f"{k}_over_ref"] for k in judge.COLUMNS] == pytest.approx([0.5, 0.25, 0.5, 0.5, 0.5, 1.0])
    assert rows["reference"]["patch_over_ref"] == pytest.approx(1.0)
    assert rows["half"]["patch_over_ref"] == pytest.approx(4.0) and rows["half"]["style_over_ref"] is None
    table = capsys.readouterr().out.splitlines()
    assert next(line for line in table if "mine.png" in line).split()[1:] == ["0.500", "0.250", "0.500", "0.500", "0.500", "1.000"]
    assert rows["mine.png"]["feature_relu4_1_over_ref"] == pytest.approx(3.0)  # the layers: always in the JSON
    assert "relu4_1" not in table[1]
    assert judge.main(parser().parse_args(["judge", str(picture), "--layers", "--out", str(tmp_path / "out")])) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split()[-5:] == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    assert next(line for line in table if "mine.png" in line).split()[-5:] == ["-", "-", "-", "3.000", "-"]
    with pytest.raises(SystemExit, match="no file"):
        judge.main(parser().parse_args(["judge", str(tmp_path / "none.png")]))


def test_settling_splits_the_metrics_figure_by_what_the_footage_did(tmp_path: Path, tiny_encoder) -> None:
    """On a clip and a painting of it that flickers over its first frames: the split's whole
    figure is the metrics' own settling figure, its parts add up to each pair's E_warp, and
    a clip too short for the figure gives one line."""
    import json

    from PIL import Image

    from bench import settling
    from clips import make_clip
    from nstpipe.engine.metrics import PARTS, video_metrics
    from nstpipe.media.framestore import FRAME_NAME
    from nstpipe.media.video import read_frames

    clip = make_clip(tmp_path / "clip.mp4", n_frames=16, width=64, height=48)
    source = [f.rgb for f in read_frames(clip)]
    painted = [np.clip(f.astype(int) + (12 * (-1) ** t if t < 8 else 0), 0, 255).astype(np.uint8)
               for t, f in enumerate(source)]
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(painted):
        Image.fromarray(frame).save(folder / FRAME_NAME.format(t))
    args = parser().parse_args(["settling", str(clip), str(folder), "--out", str(tmp_path / "out")])
    assert settling.main(args) == 0
    record = json.loads((tmp_path / "out" / "settling.json").read_text())
    expected = video_metrics(tiny_encoder, source, painted, style_layers=("relu1_1",), content_layer="relu2_1")
    assert record["parts"]["stylized"]["all"]["settling"] == pytest.approx(expected.settling(), rel=1e-5)
    assert record["parts"]["source"]["all"]["settling"] == pytest.approx(expected.settling("source"), rel=1e-5)
    assert record["parts"]["stylized"]["all"]["settling"] > 5  # the flicker of the first frames
    for pair, measured in zip(record["pairs"], expected.pairs[1]):
        assert sum(pair["stylized"][p] for p in PARTS) == pytest.approx(measured.stylized, rel=1e-5, abs=1e-12)
    short = make_clip(tmp_path / "short.mp4", n_frames=8)
    with pytest.raises(SystemExit, match="frame pairs"):
        settling.main(parser().parse_args(["settling", str(short), str(short)]))


def test_video_checks_settling_plain_and_against_the_footages_motion() -> None:
    """A clip whose footage moves most at the start: the plain figure misses, the paired one
    is checked beside it; a clip too short for later pairs has neither."""
    from bench.video import footage_checks

    row = {"gaps": {"1": {"ratio": 0.2}, "5": {"ratio": None}}, "settling": 3.1, "paired_settling": 0.6, "frames": 60,
           "first_frame_s": 10.0, "later_frame_s": 1.0, "first_frame_iterations": 100, "later_frame_iterations": 8}
    checks = footage_checks(row)
    assert set(checks) == {"ratio_gap1", "settling", "paired_settling", "later_over_first_wall", "later_over_first_iterations"}
    assert not checks["settling"]["met"] and checks["paired_settling"]["met"]
    assert checks["paired_settling"]["value"] == 0.6 and checks["paired_settling"]["limit"] == 2.0
    short = footage_checks({**row, "settling": None, "paired_settling": None})
    assert "settling" not in short and "paired_settling" not in short
