"""Property-based tests of where outputs go: for any input tree, every output path stays
inside the output root, no two inputs share an output, and no input is read from outside
the input root.

hypothesis builds trees of awkward names (``a..b``, ``...``, leading dashes, backslashes,
spaces, ``C:``, non-UTF-8 bytes, names differing only in case), deep folders, and
symbolic links to files and folders inside and outside the root, dangling ones and loops.
Examples are bounded (50 a test) so this runs in seconds.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nstpipe.errors import InputError
from nstpipe.jobs.plan import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageTask, output_names, plan_images, plan_videos

BOUNDED = settings(
    max_examples=50,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

AWKWARD = [
    "a..b", "...", "..x", "-rf", "--help", "-", "\\x", "a\\..\\b", "C:", "C:\\x", " space ", "two  spaces",
    os.fsdecode(b"caf\xe9"), os.fsdecode(b"\xff\xfe"), "~1", "a~1", ".hidden", "nul", "A", "a", "x.png", "x.PNG",
    "photo", "Photo", "\u00e9t\u00e9", "e\u0301te\u0301",
]
SUFFIXES = ["", ".jpg", ".JPG", ".png", ".PNG", ".jpeg", ".png.jpg", ".jpg.png", ".tif", ".txt", ".mp4", ".MOV", ".mkv"]


def _encodable(name: str) -> bool:
    try:
        return 0 < len(os.fsencode(name)) <= 120
    except UnicodeEncodeError:  # a lone surrogate outside the escaped-byte range
        return False


stems = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=["Cs"]), min_size=1, max_size=10),
    st.binary(min_size=1, max_size=6).map(lambda raw: os.fsdecode(raw.replace(b"/", b"_").replace(b"\x00", b"_"))),
)
names = st.builds(lambda stem, suffix: stem + suffix, stems, st.sampled_from(SUFFIXES)).filter(
    lambda name: name not in (".", "..") and _encodable(name)
)
folders = st.lists(names, min_size=0, max_size=7)  # a path below the root, up to 7 deep

LINK_KINDS = ["file-inside", "folder-inside", "file-outside", "folder-outside", "dangling", "loop"]
entries = st.lists(
    st.one_of(
        st.tuples(st.just("file"), folders, names),
        st.tuples(st.just("folder"), folders, names),
        st.tuples(st.sampled_from(LINK_KINDS), folders, names),
    ),
    min_size=1,
    max_size=25,
)


def build_tree(base: Path, spec: list[tuple[str, list[str], str]]) -> tuple[Path, Path]:
    """Make the tree under ``base/in`` (and things to link to under ``base/outside``).

    Folders and files first, links after, each only where its name is still free, so that
    nothing is ever written through a link. Returns (input root, a file inside it).
    """
    root, outside = base / "in", base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"x")
    (outside / "dir" / "secret.png").write_bytes(b"x")
    anchor = root / "anchor.jpg"
    root.mkdir()
    anchor.write_bytes(b"x")
    links = {
        "file-inside": anchor,
        "folder-inside": root,
        "file-outside": outside / "secret.jpg",
        "folder-outside": outside / "dir",
        "dangling": base / "nowhere.jpg",
        "loop": root,
    }
    for kind, parts, name in sorted(spec, key=lambda entry: entry[0] in links):
        folder = root.joinpath(*parts)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / name
            if os.path.lexists(target) or any(p.is_symlink() for p in [folder, *folder.parents]):
                continue
            if kind == "file":
                target.write_bytes(b"x")
            elif kind == "folder":
                target.mkdir()
            else:
                os.symlink(links[kind], target, target_is_directory=links[kind].is_dir())
        except (FileExistsError, NotADirectoryError):
            continue  # a name already taken by a file, or a path through one
    return root, anchor


def inside(path: str | Path, root: str | Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([real, real_root]) == real_root and real != real_root


def check_tasks(tasks: list[ImageTask], root: Path, out: Path) -> None:
    outputs = [task.output for task in tasks]
    assert len(set(outputs)) == len(outputs), "two inputs share an output"
    assert len(set(map(str, [t.source for t in tasks]))) == len(tasks)
    ancestors = {parent for output in outputs for parent in output.parents}
    assert not ancestors & set(outputs), "an output file would sit where an output folder must be"
    by_folder: dict[Path, list[str]] = {}
    for task in tasks:
        assert inside(task.output, out), task.output
        assert task.output.suffix == ".png" and len(task.output.name) > len(".png")
        assert inside(task.source, root), f"{task.source} is read from outside the input root"
        assert not inside(task.source, out), "an output was taken for an input"
        assert task.source.is_file()
        by_folder.setdefault(task.output.parent, []).append(task.output.name.casefold())
    for folder, taken in by_folder.items():
        assert len(set(taken)) == len(taken), f"names in {folder} differ only in case"


@BOUNDED
@given(spec=entries, output_inside=st.booleans())
def test_every_output_stays_inside_the_output_root(tmp_path: Path, spec: list[tuple[str, list[str], str]], output_inside: bool) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    root, anchor = build_tree(base, spec)
    out = root / "styled-output" if output_inside else base / "out"
    if output_inside:  # with the outputs of an earlier run, which must not become inputs
        out.mkdir()
        (out / "earlier.png").write_bytes(b"x")
    tasks = list(plan_images(root, out))
    check_tasks(tasks, root, out)
    planned = {str(t.source) for t in tasks}
    assert str(anchor) in planned
    # Every real image file in the tree is planned (nothing lost), links leaving the root are not.
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder) / d != out]
        for name in files:
            path = Path(folder) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_symlink():
                assert str(path) in planned, path
    # Planning twice gives the same plan: a rerun resumes into the very same outputs.
    assert [t.output for t in plan_images(root, out)] == [t.output for t in tasks]


@BOUNDED
@given(
    files=st.lists(names, max_size=30, unique=True),
    folders_beside=st.lists(names, max_size=5, unique=True),
    most=st.sampled_from([255, 40, 24]),
)
def test_output_names_never_collide(files: list[str], folders_beside: list[str], most: int) -> None:
    """Whatever the names, and however few bytes the file system gives a name."""
    chosen = output_names(files, reserved=folders_beside, most=most)
    assert sorted(chosen) == sorted(files)
    values = [name.casefold() for name in chosen.values()]
    assert len(set(values)) == len(values)
    assert not set(values) & {f.casefold() for f in folders_beside}
    for out in chosen.values():
        assert out.endswith(".png") and len(out) > len(".png") and "/" not in out and "\x00" not in out
        assert len(os.fsencode(out)) <= most
    # Deterministic, whatever the order the folder was listed in.
    assert output_names(list(reversed(files)), reserved=folders_beside, most=most) == chosen


@BOUNDED
@given(spec=st.lists(st.tuples(st.booleans(), names), min_size=1, max_size=12))
def test_video_outputs_stay_inside_and_never_collide(tmp_path: Path, spec: list[tuple[bool, str]]) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    (base / "folder").mkdir()
    inputs: list[Path] = [base / "folder"]
    for in_folder, name in spec:
        path = (base / "folder" / name) if in_folder else (base / "single" / name)
        if os.path.lexists(path):
            continue
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"x")
        if not in_folder:
            inputs.append(path)
    out = base / "out"
    try:
        jobs = plan_videos(inputs, out)
    except InputError as exc:
        assert "collide" in exc.reason
        return
    outputs = [target for _, target in jobs]
    assert len({o.name.casefold() for o in outputs}) == len(outputs)
    for source, target in jobs:
        assert inside(target, out) and target.suffix == ".mp4" and target.parent == out
        assert source.is_file()
    videos_in_folder = {p.name for p in (base / "folder").iterdir() if p.suffix.lower() in VIDEO_SUFFIXES}
    assert videos_in_folder <= {source.name for source, _ in jobs}


@pytest.mark.parametrize("name", ["x.jpg", "X.JPG"])
def test_a_file_never_takes_the_name_of_a_folder_beside_it(tmp_path: Path, name: str) -> None:
    """x.jpg becomes x.png; a folder x.png/ beside it is mirrored as a folder of that name."""
    root = tmp_path / "in"
    (root / "x.png").mkdir(parents=True)
    (root / "x.png" / "inner.jpg").write_bytes(b"x")
    (root / name).write_bytes(b"x")
    tasks = list(plan_images(root, tmp_path / "out"))
    assert {str(t.output.relative_to(tmp_path / "out")) for t in tasks} == {"x.png/inner.png", f"{name[0]}~1.png"}
