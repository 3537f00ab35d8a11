"""NTU RGB+D I/O: the raw .skeleton format, file names and splits, body selection, centring and
alignment, the preprocessed forms (.npz, .npy + .pkl) and MAMP's crop/resize."""
from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

from maekit_skeleton.data import (
    NTUNpy,
    NTUNpz,
    NTUSkeletons,
    SkeletonEvalTransform,
    read_label_pickle,
    valid_crop_resize,
    write_ntu_npz,
)
from maekit_skeleton.ntu import (
    SkeletonBody,
    SkeletonSequence,
    align_view,
    centre_on_spine,
    in_split,
    parse_ntu_name,
    read_skeleton,
    select_bodies,
    sequence_array,
    write_skeleton,
)

BODY_ID = "72057594037931101"  # beyond float precision: must stay text


def joint_line(j: int, body: int = 0) -> str:
    return (f"{0.1 * j + body:.7g} {0.2 * j:.7g} {3.5 + 0.01 * j:.7g} 277.419 191.8218 1036.233 519.1677 "
            f"-0.2059419 0.05349711 0.9692109 -0.1239193 2")


def raw_file(frames: list[list[tuple[str, int]]], joints: int = 25) -> str:
    """The exact NTU text: frame count; per frame its body count, per body id line, joint count, joints."""
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, offset in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.02764709 0.05745083 2")
            lines.append(str(joints))
            lines.extend(joint_line(j, offset) for j in range(joints))
    return "\n".join(lines) + "\n"


def test_a_skeleton_file_round_trips_exactly(tmp_path):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(raw_file([[(BODY_ID, 0)], [], [(BODY_ID, 0), ("72057594037931102", 1)]]))
    sequence = read_skeleton(path)
    assert [len(frame) for frame in sequence.frames] == [1, 0, 2]
    first = sequence.frames[0][0]
    assert first.body_id == BODY_ID and first.joints.shape == (25, 12)
    assert first.joints[7, 0] == float(f"{0.7:.7g}") and first.joints[3, 2] == float(f"{3.53:.7g}")
    assert first.joints[0, 11] == 2 and first.info[7] == 0.05745083
    again = read_skeleton(write_skeleton(tmp_path / "copy.skeleton", sequence))
    assert again.frames == sequence.frames
    # random values survive write → read bit for bit
    rng = np.random.default_rng(0)
    body = SkeletonBody("1", rng.normal(size=9), rng.normal(size=(25, 12)))
    assert read_skeleton(write_skeleton(tmp_path / "r.skeleton", SkeletonSequence([[body]]))).frames[0][0] == body


@pytest.mark.parametrize("corrupt, message", [
    (lambda text: text.replace("\n25\n", "\n24\n", 1), "line 4: a body has 24 joints"),
    (lambda text: text.replace(" 0.05349711 0.9692109 -0.1239193 2", "", 1), "line 5: expected 12 field(s)"),
    (lambda text: text.replace("277.419", "27x.4", 1), "line 5: non-numeric"),
    (lambda text: "\n".join(text.splitlines()[:20]), "file ends after line 20"),
    (lambda text: "3" + text[1:], "file ends after line"),
    (lambda text: text + "0\n", "content after the last frame"),
])
def test_bad_files_name_the_file_and_line(tmp_path, corrupt, message):
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text(corrupt(raw_file([[(BODY_ID, 0)], [(BODY_ID, 0)]])))
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        read_skeleton(path)
    assert str(path) in str(error.value)


def test_file_names_and_the_standard_splits():
    fields = parse_ntu_name("nturgb+d_skeletons/S017C003P020R002A060.skeleton")
    assert fields == dict(setup=17, camera=3, performer=20, replication=2, action=60)
    with pytest.raises(ValueError, match="SsssCcccPpppRrrrAaaa"):
        parse_ntu_name("clip_001.skeleton")
    sample = lambda **kw: {**dict(setup=1, camera=1, performer=1, replication=1, action=1), **kw}
    # cross-subject: NTU-60's 20 training performers are the NTU-120 list's members up to 40
    ntu60_train = [p for p in range(1, 41) if in_split(sample(performer=p), "xsub", "train")]
    assert ntu60_train == [1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38]
    assert in_split(sample(performer=45), "xsub", "train") and in_split(sample(performer=106), "xsub", "test")
    assert in_split(sample(camera=2), "xview", "train") and in_split(sample(camera=1), "xview", "test")
    assert in_split(sample(setup=18), "xset", "train") and in_split(sample(setup=19), "xset", "test")
    with pytest.raises(ValueError, match="benchmark"):
        in_split(sample(), "xcam", "train")


def track(length: int, start: int = 0, total: int = 20, amplitude: float = 0.1, wide: bool = False) -> np.ndarray:
    """A body's xyz (total × 25 × 3) present from ``start`` for ``length`` frames, moving by ``amplitude``."""
    out = np.zeros((total, 25, 3))
    joints = np.stack([np.linspace(0, 0.4, 25), np.linspace(0, 1.6, 25), np.full(25, 3.0)], axis=1)
    if wide:
        joints = joints[:, [1, 0, 2]]  # wider than tall: a table or a wall, not a person
    for t in range(start, start + length):
        out[t] = joints + amplitude * np.sin(t)
    return out


def test_noisy_bodies_are_removed_and_the_busiest_two_kept():
    person, still_person, flicker, furniture = track(20), track(20, amplitude=0.01), track(5), track(20, wide=True)
    chosen = select_bodies({"a": still_person, "b": flicker, "c": person, "d": furniture})
    assert len(chosen) == 2 and chosen[0] is person and chosen[1] is still_person
    assert select_bodies({"only": track(5)})[0].shape == (20, 25, 3)  # a sole body is kept whatever it is


def test_frames_without_bodies_are_dropped_and_centring_puts_the_spine_at_the_origin():
    rng = np.random.default_rng(1)
    frames = [[]]  # the first frame has no body
    for _ in range(6):
        joints = np.zeros((25, 12))
        joints[:, :3] = rng.normal(size=(25, 3)) + [1.0, 2.0, 3.0]
        frames.append([SkeletonBody("7", np.zeros(9), joints)])
    data = sequence_array(SkeletonSequence(frames))
    assert data.shape == (3, 6, 25, 2) and not data[..., 1].any()
    centred = centre_on_spine(data)
    np.testing.assert_allclose(centred[:, 0, 1, 0], 0, atol=1e-6)  # joint 2 of the first valid frame
    np.testing.assert_allclose(centred[..., 0] - data[..., 0], np.broadcast_to(-data[:, :1, 1:2, 0], data[..., 0].shape),
                               atol=1e-6)
    assert not centred[..., 1].any()  # the absent body stays zero, not minus the origin
    aligned = align_view(centred)
    spine = aligned[:, 0, 1, 0] - aligned[:, 0, 0, 0]
    shoulders = aligned[:, 0, 4, 0] - aligned[:, 0, 8, 0]
    np.testing.assert_allclose(spine[:2], 0, atol=1e-5)
    assert spine[2] > 0 and abs(shoulders[1]) < 1e-5 and shoulders[0] > 0
    np.testing.assert_allclose(np.linalg.norm(aligned[:, 0], axis=0), np.linalg.norm(centred[:, 0], axis=0), atol=1e-5)


def write_folder(root, names):
    root.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate(names):
        (root / f"{name}.skeleton").write_text(raw_file([[(str(n), 0)]] * (3 + n)))


def test_raw_folder_dataset_and_the_npz_cache_agree(tmp_path):
    names = ["S001C001P001R001A001", "S001C001P003R001A002", "S001C002P002R001A061", "S002C001P004R001A003"]
    write_folder(tmp_path / "raw", names)
    (tmp_path / "missing.txt").write_text("S002C001P004R001A003\n")
    train = NTUSkeletons(tmp_path / "raw", "xsub", "train", subset="ntu60", ignore_list=tmp_path / "missing.txt")
    assert [path.stem for path, _ in train.files] == ["S001C001P001R001A001"] and train[0]["label"] == 0
    ntu120 = NTUSkeletons(tmp_path / "raw", "xsub", "train", subset="ntu120")
    assert sorted(label for _, label in ntu120.files) == [0, 2, 60]
    counts = write_ntu_npz(tmp_path / "raw", tmp_path / "NTU120_XSub.npz", "xsub", "ntu120", max_frames=10)
    assert counts == {"train": 3, "test": 1}
    archive = np.load(tmp_path / "NTU120_XSub.npz")
    assert archive["x_train"].shape == (3, 10, 150) and archive["y_train"].shape == (3, 120)
    cached = NTUNpz(tmp_path / "NTU120_XSub.npz", "train")
    for n in range(3):
        raw = ntu120[n]["inputs"]
        assert cached[n]["label"] == ntu120[n]["label"]
        torch.testing.assert_close(cached[n]["inputs"][:, : raw.shape[1]], raw)
        assert not cached[n]["inputs"][:, raw.shape[1]:].any()  # zero-padded to max_frames
    with pytest.raises(ValueError, match="more than max_frames=4"):
        write_ntu_npz(tmp_path / "raw", tmp_path / "short.npz", "xsub", "ntu120", max_frames=4)
    with pytest.raises(ValueError, match="no .skeleton file of the xview train split"):
        NTUSkeletons(tmp_path / "raw", "xview", "train", subset="ntu60")  # its one camera-2 file is action 61


def test_npz_layout_is_bodies_joints_xyz(tmp_path):
    x = np.arange(2 * 4 * 150, dtype=np.float32).reshape(2, 4, 150)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.eye(3)[[2, 0]], x_test=x, y_test=np.array([1, 1]))
    sample = NTUNpz(tmp_path / "a.npz", "train")[1]
    assert sample["label"] == 0 and sample["inputs"].shape == (3, 4, 25, 2)
    # x[n, t, m·75 + v·3 + c] is coordinate c of joint v of body m at frame t
    assert sample["inputs"][2, 3, 7, 1] == x[1, 3, 75 + 7 * 3 + 2]
    assert NTUNpz(tmp_path / "a.npz", "test")[0]["label"] == 1
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.ones((2, 3)))
    with pytest.raises(ValueError, match="bad.npz: y_train is 2-D but not one-hot"):
        NTUNpz(tmp_path / "bad.npz", "train")
    with pytest.raises(ValueError, match="missing"):
        NTUNpz(tmp_path / "bad.npz", "test")


class Boom:
    def __reduce__(self):
        return (exec, ("open('PWNED', 'w').write('x')",))


def test_npy_and_label_pickle_are_read_without_running_code(tmp_path, monkeypatch):
    data = np.random.default_rng(0).normal(size=(3, 3, 8, 25, 2)).astype(np.float32)
    np.save(tmp_path / "train_data_joint.npy", data)
    with open(tmp_path / "train_label.pkl", "wb") as handle:
        pickle.dump((["S001C001P001R001A001.skeleton", "b", "c"], [np.int64(4), 0, 59]), handle)
    dataset = NTUNpy(tmp_path / "train_data_joint.npy", tmp_path / "train_label.pkl")
    assert len(dataset) == 3 and dataset[2]["label"] == 59 and dataset[0]["label"] == 4
    torch.testing.assert_close(dataset[1]["inputs"], torch.from_numpy(data[1]))
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pkl", "wb") as handle:
        pickle.dump((["a"], [Boom()]), handle)
    with pytest.raises(ValueError, match="evil.pkl: holds a pickled builtins.exec"):
        read_label_pickle(tmp_path / "evil.pkl")
    assert not (tmp_path / "PWNED").exists()
    with open(tmp_path / "short.pkl", "wb") as handle:
        pickle.dump((["a"], [1]), handle)
    with pytest.raises(ValueError, match="1 labels but .* 3 samples"):
        NTUNpy(tmp_path / "train_data_joint.npy", tmp_path / "short.pkl")


def test_valid_crop_resize_uses_only_the_valid_frames():
    data = torch.zeros(3, 20, 25, 2)
    data[:, :8] = torch.arange(1, 9, dtype=torch.float32).view(1, 8, 1, 1)  # 8 valid frames, then padding
    same = valid_crop_resize(data, 8, (1.0,))
    torch.testing.assert_close(same, data[:, :8])  # a full crop at its own length is the identity
    stretched = SkeletonEvalTransform(num_frames=16, crop=1.0)(data)
    assert stretched.shape == (3, 16, 25, 2) and stretched.min() >= 1 and stretched.max() <= 8  # no padding mixed in
    torch.manual_seed(0)
    crop = valid_crop_resize(data, 4, (0.5, 0.5), min_length=1)
    assert crop.shape == (3, 4, 25, 2) and (crop[0, 1:, 0, 0] - crop[0, :-1, 0, 0] > 0).all()
    with pytest.raises(ValueError, match="all zeros"):
        valid_crop_resize(torch.zeros(3, 5, 25, 1), 4, (1.0,))
