"""NIfTI volumes written by the tests in BraTS and IXI layouts: normalisation as predicted, bad
volumes named, subject-level splits, the slice cache, the augmentation and the demo slices."""
from __future__ import annotations

import json

import nibabel
import numpy as np
import pytest
import torch

from maekit.authoring.testing import run_cli
from maekit_mri.data import DemoVolumeSlices, MRIAugment, MRIPairs, MRISlices, simulated_contrast
from maekit_mri.nifti import Preprocessing, find_subjects, load_volume, normalise_volume, split_subjects, volume_slices

AFFINE = np.array([[0.9, 0, 0, -10.0], [0, 1.1, 0, 5.0], [0, 0, 2.0, 3.0], [0, 0, 0, 1]])
SMALL = dict(crop=(1, 9, 2, 10), slices=(1, 5), size=8)  # 8×8 crop, no resize needed


def head(shape=(10, 12, 6), seed=0, scale=1.0) -> np.ndarray:
    """A volume with a zero background border and a random positive 'head' inside."""
    rng = np.random.default_rng(seed)
    volume = np.zeros(shape, np.float32)
    volume[1:-1, 1:-1, :] = rng.uniform(50, 1000, size=(shape[0] - 2, shape[1] - 2, shape[2])) * scale
    return volume


def write_nifti(path, volume, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(volume, affine), str(path))
    return path


def write_brats(root, subjects=5, contrasts=("t1", "t2")):
    for s in range(subjects):
        name = f"BraTS20_Training_{s:03d}"
        for c, contrast in enumerate(contrasts):
            write_nifti(root / name / f"{name}_{contrast}.nii.gz", head(seed=10 * s + c))
    return root


def test_a_written_volume_survives_normalisation_as_predicted(tmp_path):
    volume = head()
    volume[3, 4, 2] = 1e6  # an outlier above the 99.8th percentile of the foreground
    data, affine = load_volume(write_nifti(tmp_path / "v.nii.gz", volume))
    np.testing.assert_allclose(affine, AFFINE)
    np.testing.assert_allclose(data, volume)
    foreground = volume[volume != 0]
    low, high = np.percentile(foreground, [0.2, 99.8])
    # MT-Net's preprocessing: clipped and scaled inside the brain, the background kept at 0
    expected = np.where(volume != 0, np.clip(volume, low, high) / high, 0.0)
    normalised = normalise_volume(data)
    np.testing.assert_allclose(normalised, expected, rtol=1e-6)
    assert normalised.min() >= 0 and normalised.max() == pytest.approx(1.0) and low > 0
    assert (normalised[0] == 0).all() and (normalised[:, 0] == 0).all()  # the zero border stays zero
    # crop [1:9, 2:10] of the in-plane axes, axial slices 1..4, no resize at size 8
    slices = volume_slices(data, Preprocessing(**SMALL))
    np.testing.assert_allclose(slices, np.moveaxis(expected, 2, 0)[1:5, 1:9, 2:10], rtol=1e-6, atol=1e-7)


def test_bad_volumes_are_named(tmp_path):
    flat = write_nifti(tmp_path / "flat.nii.gz", np.zeros((4, 4, 4), np.float32))
    with pytest.raises(ValueError, match="flat.nii.gz: empty foreground"):
        normalise_volume(load_volume(flat)[0], name=str(flat))
    plane = write_nifti(tmp_path / "plane.nii.gz", np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"plane.nii.gz: expected a 3-D volume, got shape \(4, 4\)"):
        load_volume(plane)
    broken = head()
    broken[2, 2, 2] = np.nan
    with pytest.raises(ValueError, match="nan.nii.gz: 1 voxels are NaN"):
        load_volume(write_nifti(tmp_path / "nan.nii.gz", broken))
    (tmp_path / "junk.nii").write_bytes(b"not nifti")
    with pytest.raises(ValueError, match="junk.nii: cannot read NIfTI"):
        load_volume(tmp_path / "junk.nii")
    with pytest.raises(ValueError, match="crop .* exceeds"):
        volume_slices(head(), Preprocessing(crop=(0, 40, 0, 40), slices=None, size=8))


def test_brats_and_ixi_layouts_and_their_errors(tmp_path):
    brats = write_brats(tmp_path / "brats", subjects=2)
    found = find_subjects(brats, "brats", ("t1", "t2"))
    assert list(found) == ["BraTS20_Training_000", "BraTS20_Training_001"]
    assert found["BraTS20_Training_001"]["t2"].name == "BraTS20_Training_001_t2.nii.gz"
    with pytest.raises(ValueError, match="subject BraTS20_Training_000 has no flair volume"):
        find_subjects(brats, "brats", ("t1", "flair"))
    ixi = tmp_path / "ixi"
    for subject in ("IXI002-Guys-0828", "IXI012-HH-1211"):
        for contrast in ("T1", "T2"):
            write_nifti(ixi / f"{subject}-{contrast}.nii.gz", head())
    assert sorted(find_subjects(ixi, "ixi", ("T1", "T2"))) == ["IXI002-Guys-0828", "IXI012-HH-1211"]
    # contrasts of one subject on different grids cannot pair
    write_nifti(ixi / "IXI020-IOP-0001-T1.nii.gz", head())
    write_nifti(ixi / "IXI020-IOP-0001-T2.nii.gz", head(shape=(10, 12, 9)))
    with pytest.raises(ValueError, match=r"IXI020-IOP-0001-T1.nii.gz has shape \(10, 12, 6\) but .*"
                                         r"IXI020-IOP-0001-T2.nii.gz has \(10, 12, 9\)"):
        MRIPairs(ixi, layout="ixi", source="T1", target="T2", split="all", preprocessing=dict(crop=None, slices=None, size=8))
    # the same volumes cropped to the same slice range would pair silently: refused before preprocessing
    with pytest.raises(ValueError, match="must share one voxel grid"):
        MRIPairs(ixi, layout="ixi", source="T1", target="T2", split="all", preprocessing=dict(crop=None, slices=(0, 4), size=8))


def test_brats_2023_names_are_read_as_the_2020_contrasts_and_the_error_says_what_is_expected(tmp_path):
    root = tmp_path / "brats2023"
    for subject in ("BraTS-GLI-00000-000", "BraTS-GLI-00002-000"):
        for contrast in ("t1n", "t1c", "t2w", "t2f"):
            write_nifti(root / subject / f"{subject}-{contrast}.nii.gz", head())
    found = find_subjects(root, "brats", ("t1", "t2", "t1ce", "flair"))
    assert found["BraTS-GLI-00002-000"]["flair"].name == "BraTS-GLI-00002-000-t2f.nii.gz"
    assert found["BraTS-GLI-00000-000"]["t1ce"].name == "BraTS-GLI-00000-000-t1c.nii.gz"
    (tmp_path / "empty" / "subject").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"no NIfTI files in the brats layout \(expected one folder per subject .*t1n"):
        find_subjects(tmp_path / "empty", "brats", ("t1",))


def test_subject_level_split_never_shares_a_subject(tmp_path):
    root = write_brats(tmp_path / "brats", subjects=10)
    subjects = list(find_subjects(root, "brats", ("t1",)))
    train, test = split_subjects(subjects, "train"), split_subjects(subjects, "test")
    assert len(train) == 8 and len(test) == 2 and not set(train) & set(test) and set(train) | set(test) == set(subjects)
    assert split_subjects(subjects, "train", seed=1) != train  # the seed draws another split
    pairs = {split: MRIPairs(root, source="t1", target="t2", split=split, preprocessing=SMALL) for split in ("train", "test")}
    seen = {split: {pairs[split][i]["subject"] for i in range(len(pairs[split]))} for split in pairs}
    assert seen["train"] == set(train) and seen["test"] == set(test)
    assert len(pairs["train"]) == 8 * 4  # 4 slices per subject
    sample = pairs["test"][5]  # subject test[1], slice 1: source and target are the same slice of its two volumes
    subject = test[1]
    expected_t2 = volume_slices(load_volume(root / subject / f"{subject}_t2.nii.gz")[0], Preprocessing(**SMALL))[1]
    assert sample["subject"] == subject and sample["slice"] == 1
    np.testing.assert_allclose(sample["target"][0].numpy(), expected_t2, rtol=1e-6)
    single = MRISlices(root, contrasts=("t1", "t2"), split="train", preprocessing=SMALL)
    assert len(single) == 8 * 2 * 4 and single[0]["inputs"].shape == (1, 8, 8)


def test_slice_cache_through_the_command(tmp_path):
    root = write_brats(tmp_path / "brats", subjects=3)
    cache = tmp_path / "cache"
    result = run_cli("mri-preprocess", str(root), "--out", str(cache), "--contrasts", "t1,t2", "--size", "8",
                     "--crop", "1,9,2,10", "--slices", "1,5", env_extra={"MAEKIT_PLUGINS": "maekit-mri"})
    assert "wrote 3 subjects (t1, t2)" in result.stdout
    manifest = json.loads((cache / "slice_cache.json").read_text())
    np.testing.assert_allclose(manifest["affines"]["BraTS20_Training_002"]["t1"], AFFINE)
    direct = MRIPairs(root, source="t1", target="t2", split="all", preprocessing=SMALL)
    cached = MRIPairs(cache=cache, source="t1", target="t2", split="all", preprocessing=SMALL)
    assert len(cached) == len(direct) == 12
    for index in (0, 7, 11):  # float16 storage
        torch.testing.assert_close(cached[index]["inputs"], direct[index]["inputs"], atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match="written with preprocessing"):
        MRIPairs(cache=cache, source="t1", target="t2", preprocessing=dict(SMALL, size=16))
    with pytest.raises(ValueError, match=r"holds contrasts \['t1', 't2'\], not \['flair'\]"):
        MRISlices(cache=cache, contrasts=("flair",), preprocessing=SMALL)
    bad = run_cli("mri-preprocess", str(root), "--out", str(cache), "--crop", "1,2", check=False,
                  env_extra={"MAEKIT_PLUGINS": "maekit-mri"})
    assert bad.returncode != 0 and "--crop must be 4 comma-separated integers" in bad.stderr


def test_augmentation_keeps_shape_and_range_and_is_seeded():
    image = torch.rand(1, 16, 16)
    augment = MRIAugment(p=1.0)
    torch.manual_seed(3)
    first = augment(image)
    torch.manual_seed(3)
    assert torch.equal(first, augment(image))
    assert first.shape == image.shape and 0 <= first.min() and first.max() <= 1
    assert not torch.equal(first, image)
    assert torch.equal(MRIAugment(p=0.0)(image), image)


def test_demo_slices_hold_out_every_fifth_slice_and_pair_with_the_simulated_contrast():
    train, test = DemoVolumeSlices("train", size=16), DemoVolumeSlices("test", size=16, pairs=True)
    everything = DemoVolumeSlices("all", size=16)
    assert len(train) + len(test) == len(everything) and abs(len(test) / len(everything) - 0.2) < 0.05
    held_out = {tuple(image.flatten().tolist()) for image in test.images}
    assert not any(tuple(image.flatten().tolist()) in held_out for image in train.images)
    sample = test[3]
    assert sample["inputs"].shape == sample["target"].shape == (1, 16, 16)
    np.testing.assert_allclose(sample["target"][0].numpy(), simulated_contrast(sample["inputs"][0].numpy()), rtol=1e-6)
    both = DemoVolumeSlices("train", size=16, contrasts=("t1", "simulated"))  # unpaired, for pre-training
    assert len(both) == 2 * len(train)
    np.testing.assert_allclose(both[len(train) + 4]["inputs"][0].numpy(), simulated_contrast(train[4]["inputs"][0].numpy()),
                               rtol=1e-6)
    few = DemoVolumeSlices("train", size=16, pairs=True, paired_every=4)
    assert len(few) == (len(train) + 3) // 4 and torch.equal(few[1]["inputs"], train[4]["inputs"])


def test_a_folder_mixing_good_and_bad_subjects_skips_and_lists_the_bad_ones(tmp_path):
    root = write_brats(tmp_path / "brats", subjects=4)
    (root / "BraTS20_Training_001" / "BraTS20_Training_001_t2.nii.gz").unlink()  # a missing contrast
    broken = head()
    broken[2, 2, 2] = np.nan
    write_nifti(root / "BraTS20_Training_002" / "BraTS20_Training_002_t2.nii.gz", broken)
    write_nifti(root / "BraTS20_Training_003" / "BraTS20_Training_003_t1.nii.gz", head(shape=(10, 12, 9)))
    with pytest.raises(ValueError, match="BraTS20_Training_001 has no t2 volume"):
        MRIPairs(root, split="all", preprocessing=SMALL)
    pairs = MRIPairs(root, split="all", preprocessing=SMALL, on_error="skip")
    assert pairs.subjects == ["BraTS20_Training_000"] and len(pairs) == 4
    reasons = pairs.skipped_subjects
    assert set(reasons) == {"BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003"}
    assert "no t2 volume" in reasons["BraTS20_Training_001"] and "NaN" in reasons["BraTS20_Training_002"]
    assert "must share one voxel grid" in reasons["BraTS20_Training_003"]
    result = run_cli("mri-preprocess", str(root), "--out", str(tmp_path / "cache"), "--contrasts", "t1,t2", "--size", "8",
                     "--crop", "1,9,2,10", "--slices", "1,5", "--skip-invalid", env_extra={"MAEKIT_PLUGINS": "maekit-mri"})
    assert "skipped BraTS20_Training_002" in result.stdout
    manifest = json.loads((tmp_path / "cache" / "slice_cache.json").read_text())
    assert manifest["subjects"] == ["BraTS20_Training_000"] and set(manifest["skipped"]) == set(reasons)
    cached = MRISlices(cache=tmp_path / "cache", contrasts=("t1", "t2"), split="all", preprocessing=SMALL)
    assert cached.subjects == ["BraTS20_Training_000"] and set(cached.skipped_subjects) == set(reasons)
