"""The AU datasets on files written in their exact on-disk layouts: BP4D's occurrence CSVs (header
"0", code 9), DISFA's per-AU intensity files (>= 2 present, 1-based frames against 0-based images),
the BP4D+ manifest and its registration check, fold assignment, frame padding, the face-crop cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from maekit_face.aus import BP4D_AUS, BP4D_PARTS, DISFA_AUS, DISFA_PARTS, fold_subjects
from maekit_face.data import BP4D, DISFA, BP4DPlus, read_bp4d_occurrence, write_face_crops
from PIL import Image


def save_png(path: Path, size: tuple[int, int] = (20, 24), value: int = 100, channels: int = 3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, channels) if channels == 3 else size
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def write_bp4d_csv(path: Path, rows: list[list[int]], columns: range = range(1, 40)) -> None:
    """BP4D's AU_OCC file: header '0' then AU numbers 1..39, one row per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(["0", *map(str, columns)])] + [",".join(map(str, row)) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def frame_row(frame: int, present: dict[int, int], columns: range = range(1, 40)) -> list[int]:
    return [frame] + [present.get(au, 9 if au not in BP4D_AUS else 0) for au in columns]


@pytest.fixture
def bp4d(tmp_path: Path) -> Path:
    root = tmp_path / "BP4D"
    occ = root / "AUCoding" / "AU_OCC"
    # F001 is in part 1 (fold 1's test), M011 in part 2 (fold 1's training subjects)
    write_bp4d_csv(occ / "F001_T1.csv", [frame_row(1, {1: 1, 12: 1}), frame_row(2, {4: 9, 24: 1}),
                                         frame_row(10, {})])
    write_bp4d_csv(occ / "M011_T8.csv", [frame_row(5, {2: 1})])
    images = tmp_path / "frames"
    save_png(images / "F001" / "T1" / "0001.jpg", value=10)   # padded names: matched by value
    save_png(images / "F001" / "T1" / "2.jpg", value=20)
    save_png(images / "F001" / "T1" / "010.png", value=30)
    save_png(images / "M011" / "T8" / "00005.jpg", value=40)
    return root


def test_bp4d_csv_reads_aus_by_header_and_code_9_as_unknown(bp4d):
    labels = read_bp4d_occurrence(bp4d / "AUCoding" / "AU_OCC" / "F001_T1.csv")
    assert sorted(labels) == [1, 2, 10]
    expected_1 = [1 if au in (1, 12) else 0 for au in BP4D_AUS]
    assert labels[1].tolist() == expected_1
    assert labels[2][BP4D_AUS.index(4)] == -1 and labels[2][BP4D_AUS.index(24)] == 1


def test_bp4d_fold_split_matches_frames_by_value_and_keeps_unknowns(bp4d, tmp_path):
    test = BP4D(bp4d, images=tmp_path / "frames", fold=1, split="test", size=None)
    assert len(test) == 3 and set(test.subjects) == {"F001"}
    sample = test[1]
    assert sample["inputs"].shape == (3, 20, 24) and abs(float(sample["inputs"].mean()) - 20 / 255) < 1e-6
    assert sample["label"][BP4D_AUS.index(4)] == -1
    train = BP4D(bp4d, images=tmp_path / "frames", fold=1, split="train", size=16)
    assert train.subjects == ["M011"] and train[0]["inputs"].shape == (3, 16, 16)
    assert train.labels[0].tolist() == [1 if au == 2 else 0 for au in BP4D_AUS]
    # fold 2 tests on part 2: M011 is its test subject now
    assert BP4D(bp4d, images=tmp_path / "frames", fold=2, split="test").subjects == ["M011"]


def test_bp4d_bad_files_are_named(bp4d, tmp_path):
    occ = bp4d / "AUCoding" / "AU_OCC"
    (tmp_path / "frames" / "F001" / "T1" / "2.jpg").unlink()
    with pytest.raises(ValueError, match=r"1 labelled BP4D frames have no image, e\.g\. .*F001/T1/2\."):
        BP4D(bp4d, images=tmp_path / "frames", fold=1, split="test")
    assert len(BP4D(bp4d, images=tmp_path / "frames", fold=1, split="test", missing="skip")) == 2
    write_bp4d_csv(occ / "F002_T2.csv", [frame_row(1, {1: 3})])
    with pytest.raises(ValueError, match=r"F002_T2\.csv:2: AU occurrence must be 0, 1 or 9"):
        BP4D(bp4d, fold=1, split="test")
    write_bp4d_csv(occ / "F002_T2.csv", [[1, 0]], columns=range(1, 2))
    with pytest.raises(ValueError, match=r"F002_T2\.csv: no column for AU 2, 4, 6"):
        BP4D(bp4d, fold=1, split="test")
    (occ / "F002_T2.csv").write_text("frame,1,2\n1,0,0\n")
    with pytest.raises(ValueError, match=r"first column must be '0'"):
        BP4D(bp4d, fold=1, split="test")
    with pytest.raises(ValueError, match=r"AUCoding/AU_OCC.*not found"):
        BP4D(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="fold must be one of"):
        fold_subjects(BP4D_PARTS, 0, "test")


def write_disfa(root: Path, subject: str, intensities: dict[int, list[int]]) -> None:
    folder = root / "ActionUnit_Labels" / subject
    folder.mkdir(parents=True, exist_ok=True)
    for au in (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26):  # DISFA ships 12 AU files
        values = intensities.get(au, [0] * len(next(iter(intensities.values()))))
        (folder / f"{subject}_au{au}.txt").write_text("".join(f"{k + 1},{v}\n" for k, v in enumerate(values)))


def test_disfa_binarises_at_intensity_2_and_offsets_frames(tmp_path):
    root = tmp_path / "DISFA"
    write_disfa(root, "SN002", {1: [0, 1, 2, 5], 26: [3, 0, 0, 1]})  # part 1
    for k in range(4):
        save_png(root / "SN002" / f"{k}.png", value=50 + k)  # extracted frames are 0-based
    data = DISFA(root, fold=1, split="test", size=None)
    assert len(data) == 4
    assert data.labels[:, DISFA_AUS.index(1)].tolist() == [0, 0, 1, 1]
    assert data.labels[:, DISFA_AUS.index(26)].tolist() == [1, 0, 0, 0]
    assert abs(float(data[2]["inputs"].mean()) - 52 / 255) < 1e-6  # label frame 3 → image 2.png
    assert DISFA(root, fold=1, split="test", threshold=1).labels[:, 0].tolist() == [0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"4 labelled DISFA frames have no image"):
        DISFA(root, fold=1, split="test", frame_offset=5)
    (root / "ActionUnit_Labels" / "SN002" / "SN002_au9.txt").write_text("1,0\n2,0\n")
    with pytest.raises(ValueError, match=r"SN002_au9\.txt: lists 2 frames, SN002_au1\.txt lists 4"):
        DISFA(root, fold=1, split="test")
    (root / "ActionUnit_Labels" / "SN002" / "SN002_au9.txt").write_text("1,0\n2,7\n3,0\n4,0\n")
    with pytest.raises(ValueError, match=r"SN002_au9\.txt:2: expected a frame >= 1 and an intensity 0-5"):
        DISFA(root, fold=1, split="test")
    (root / "ActionUnit_Labels" / "SN002" / "SN002_au9.txt").unlink()
    with pytest.raises(ValueError, match=r"SN002_au9\.txt: missing"):
        DISFA(root, fold=1, split="test")


def test_folds_are_subject_exclusive_and_cover_every_subject():
    for parts, count in ((BP4D_PARTS, 41), (DISFA_PARTS, 27)):
        assert len(fold_subjects(parts, 1, "all")) == count == len(set(fold_subjects(parts, 1, "all")))
        for fold in (1, 2, 3):
            train, test = set(fold_subjects(parts, fold, "train")), set(fold_subjects(parts, fold, "test"))
            assert not train & test and len(train | test) == count and set(parts[fold - 1]) == test
    assert {"SN014", "SN015", "SN019", "SN020", "SN022"}.isdisjoint(fold_subjects(DISFA_PARTS, 1, "all"))


def test_bp4d_plus_manifest_stacks_five_registered_channels(tmp_path):
    root = tmp_path / "BP4D+"
    save_png(root / "rgb" / "1.jpg", (12, 16), 200)
    save_png(root / "depth" / "1.png", (12, 16), 100, channels=1)
    save_png(root / "thermal" / "1.png", (12, 16), 50, channels=1)
    header = "subject,task,frame,rgb,depth,thermal," + ",".join(f"AU{au}" for au in BP4D_AUS)
    row = "F001,T1,1,rgb/1.jpg,depth/1.png,thermal/1.png," + ",".join(["1", "9"] + ["0"] * 10)
    (root / "manifest.csv").write_text(f"{header}\n{row}\n")
    data = BP4DPlus(root / "manifest.csv", size=None)
    sample = data[0]
    assert sample["inputs"].shape == (5, 12, 16)
    assert torch.allclose(sample["inputs"][:, 0, 0], torch.tensor([200, 200, 200, 100, 50]) / 255)
    assert sample["label"][:3].tolist() == [1, -1, 0]
    save_png(root / "thermal" / "1.png", (10, 16), 50, channels=1)
    with pytest.raises(ValueError, match=r"rgb \(12, 16\), depth \(12, 16\) and thermal \(10, 16\) differ"):
        data[0]
    (root / "manifest.csv").write_text(f"{header}\n{row.replace('depth/1.png', 'depth/2.png')}\n")
    with pytest.raises(ValueError, match=r"manifest\.csv:2: depth file depth/2\.png not found"):
        BP4DPlus(root / "manifest.csv")
    (root / "manifest.csv").write_text(f"{header.replace(',AU24', '')}\n{row[:-2]}\n")
    with pytest.raises(ValueError, match=r"AU columns for .* but not for \[24\]"):
        BP4DPlus(root / "manifest.csv")
    (root / "manifest.csv").write_text("subject,task,frame,rgb\n")
    with pytest.raises(ValueError, match="the header lacks depth, thermal"):
        BP4DPlus(root / "manifest.csv")


def test_face_crop_cache_finds_the_astronauts_face_and_lists_frames_without_one(tmp_path):
    from skimage import data

    images = tmp_path / "frames" / "F001" / "T1"
    images.mkdir(parents=True)
    Image.fromarray(data.astronaut()[:256, 64:320]).save(images / "1.jpg")
    Image.fromarray(np.zeros((64, 80, 3), np.uint8)).save(images / "2.jpg")
    manifest = write_face_crops(tmp_path / "frames", tmp_path / "crops", size=32, log=lambda *_: None)
    assert manifest["no_face"] == ["F001/T1/2.png"]
    top, left, side = manifest["boxes"]["F001/T1/1.png"]
    assert 40 < side < 200 and 0 < top < 120  # the face, not the whole frame
    assert Image.open(tmp_path / "crops" / "F001" / "T1" / "1.png").size == (32, 32)
    root = tmp_path / "BP4D"
    write_bp4d_csv(root / "AUCoding" / "AU_OCC" / "F001_T1.csv", [frame_row(1, {}), frame_row(2, {})])
    cropped = BP4D(root, images=tmp_path / "frames", fold=1, split="test", crops=tmp_path / "crops", size=None)
    assert cropped[0]["inputs"].shape == (3, 32, 32)
    with pytest.raises(ValueError, match="not a face-crop cache"):
        BP4D(root, images=tmp_path / "frames", fold=1, split="test", crops=tmp_path)
