"""Procedural NTU-layout motions for the demo, written as real ``.skeleton`` files and read back
through the same parser and preprocessing as NTU RGB+D.

Nine actions (labels 0–8, :data:`ACTIONS`) are built by forward kinematics on a 25-joint Kinect
skeleton, three of them mirror images of others (waving or kicking with the left instead of the
right limb); every sample varies the performer's size, the speed, phase and amplitude of the
motion, the clip length, the view (rotation about the vertical axis, distance to the camera),
adds idle swinging of every limb and per-joint noise. Performers 1–10 follow NTU's
cross-subject rule (performers 1, 2, 4, 5, 8, 9 train; 3, 6, 7, 10 test).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from maekit.data.bundled import demo_folder
from maekit_skeleton.ntu import NUM_JOINTS, SkeletonBody, SkeletonSequence, write_skeleton

__all__ = ["ACTIONS", "pose_sequence", "write_demo_skeletons", "DemoSkeletons"]

ACTIONS = ("waving", "clapping", "squatting", "jumping", "walking", "kicking", "waving left", "kicking left",
           "raising both hands")
# left/right joint pairs of the NTU layout, swapped to mirror a motion
_MIRROR = np.arange(NUM_JOINTS)
for _left, _right in ((4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18), (15, 19), (21, 23), (22, 24)):
    _MIRROR[_left], _MIRROR[_right] = _right, _left


def _limb(start: np.ndarray, lengths: tuple[float, ...], angles: list[np.ndarray], side: float) -> list[np.ndarray]:
    """Joint positions down a chain: each segment at ``angles`` (radians from straight down, in the
    body's sagittal/frontal plane given as (forward, sideways) pairs per frame)."""
    points, current = [], start
    for length, (forward, sideways) in zip(lengths, angles):
        direction = np.stack([side * np.sin(sideways), -np.cos(forward) * np.cos(sideways),
                              -np.sin(forward) * np.cos(sideways)], axis=-1)
        current = current + length * direction
        points.append(current)
    return points


def pose_sequence(action: int, frames: int, rng: np.random.Generator, size: float = 1.0) -> np.ndarray:
    """(frames, 25, 3) joint positions in metres (x right, y up, z towards the camera) of one action."""
    if action in (6, 7):  # the mirror image of waving / kicking
        joints = pose_sequence(action - 6 if action == 6 else 5, frames, rng, size)[:, _MIRROR]
        return joints * np.array([-1.0, 1.0, 1.0])
    t = np.linspace(0, 1, frames)
    speed = rng.uniform(0.8, 1.25)
    phase = 2 * np.pi * (speed * t * rng.uniform(1.5, 2.5) + rng.uniform())
    amp = rng.uniform(0.8, 1.2)
    zero = np.zeros(frames)
    hip_height = 0.95 * size * np.ones(frames)
    knee_bend = zero.copy()
    leg_l, leg_r = zero.copy(), zero.copy()  # forward swing of each thigh
    arm_l = [(zero + 0.1, zero + 0.15), (zero + 0.2, zero)]  # (forward, sideways) of upper arm, forearm
    arm_r = [(zero + 0.1, zero + 0.15), (zero + 0.2, zero)]
    forward_z = zero.copy()

    def idle() -> np.ndarray:  # an unrelated slow swing of a limb, different in every sample
        return 0.25 * rng.uniform(0, 1) * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t + rng.uniform(0, 2 * np.pi))

    if action == 0:  # waving: right arm up, forearm swinging side to side
        arm_r = [(zero + 0.3, zero + 1.9), (zero + 0.3, 2.6 + 0.5 * amp * np.sin(phase))]
    elif action == 1:  # clapping: both forearms swing in and out in front of the chest
        swing = 0.5 + 0.35 * amp * np.sin(2 * phase)
        arm_l = [(zero + 0.7, zero + 0.2), (zero + 1.5, -swing)]
        arm_r = [(zero + 0.7, zero + 0.2), (zero + 1.5, -swing)]
    elif action == 2:  # squatting: knees bend, hips drop
        depth = 0.5 * (1 - np.cos(phase)) * amp
        knee_bend, hip_height = 1.2 * depth, hip_height - 0.35 * size * depth
        leg_l = leg_r = 0.9 * depth
        arm_l = arm_r = [(0.8 * depth, zero + 0.1), (0.9 * depth, zero)]
    elif action == 3:  # jumping: the body leaves the floor, arms swing up
        lift = np.clip(np.sin(phase), 0, None) * amp
        hip_height = hip_height + 0.25 * size * lift
        knee_bend = 0.4 * (1 - lift)
        arm_l = arm_r = [(zero + 0.2, 0.15 + 1.5 * lift), (zero + 0.1, 0.2 * lift)]
    elif action == 4:  # walking: legs and arms swing in opposition, moving towards the camera
        swing = 0.45 * amp * np.sin(phase)
        leg_l, leg_r = swing, -swing
        knee_bend = 0.3 * np.abs(swing)
        arm_l = [(-swing, zero + 0.1), (0.2 - 0.5 * swing, zero)]
        arm_r = [(swing, zero + 0.1), (0.2 + 0.5 * swing, zero)]
        forward_z = 0.6 * speed * t
    elif action == 5:  # kicking: the right leg kicks forward
        kick = np.clip(np.sin(phase), 0, None) ** 2 * amp
        leg_r, knee_bend = 1.3 * kick, zero
        arm_l = arm_r = [(-0.3 * kick, zero + 0.3), (zero + 0.2, zero)]
    else:  # raising both hands above the head and lowering them
        lift = 0.5 * (1 - np.cos(phase)) * amp
        arm_l = arm_r = [(zero + 0.2, 0.15 + 2.5 * lift), (zero + 0.1, 0.3 * lift)]
    arm_l = [(forward + idle(), sideways) for forward, sideways in arm_l]
    arm_r = [(forward + idle(), sideways) for forward, sideways in arm_r]
    leg_l, leg_r = leg_l + 0.5 * idle(), leg_r + 0.5 * idle()

    joints = np.zeros((frames, NUM_JOINTS, 3))
    base = np.stack([zero, hip_height, forward_z], axis=-1)
    up = np.array([0.0, 1.0, 0.0])
    joints[:, 0] = base
    joints[:, 1] = base + 0.25 * size * up
    joints[:, 20] = base + 0.48 * size * up
    joints[:, 2] = base + 0.55 * size * up
    joints[:, 3] = base + 0.68 * size * up
    for side, shoulder, arm in ((-1.0, 4, arm_l), (1.0, 8, arm_r)):
        joints[:, shoulder] = joints[:, 20] + np.array([side * 0.18 * size, -0.02, 0.0])
        elbow, wrist, hand = _limb(joints[:, shoulder], (0.28 * size, 0.25 * size, 0.08 * size),
                                   [arm[0], arm[1], arm[1]], side)
        joints[:, shoulder + 1], joints[:, shoulder + 2], joints[:, shoulder + 3] = elbow, wrist, hand
        tip, thumb = (21, 22) if shoulder == 4 else (23, 24)
        joints[:, tip] = hand + (hand - wrist) * 0.6
        joints[:, thumb] = hand + np.array([side * 0.03, 0.0, 0.02])
    for side, hip, swing in ((-1.0, 12, leg_l), (1.0, 16, leg_r)):
        joints[:, hip] = base + np.array([side * 0.09 * size, -0.03, 0.0])
        knee, ankle = _limb(joints[:, hip], (0.42 * size, 0.42 * size), [(swing, zero), (swing - knee_bend, zero)], side)
        joints[:, hip + 1], joints[:, hip + 2] = knee, ankle
        joints[:, hip + 3] = ankle + np.array([0.0, -0.05, 0.1]) * size
    return joints


def _body_sequence(joints: np.ndarray, rng: np.random.Generator, body_id: str) -> SkeletonSequence:
    """Camera view of ``joints``: turned about the vertical axis, 2.5–3.5 m away, noisy, as Kinect bodies."""
    angle = rng.uniform(-1.0, 1.0)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    camera = joints @ rotation.T + np.array([rng.uniform(-0.3, 0.3), -0.8, -rng.uniform(2.5, 3.5)])
    camera[..., 2] *= -1  # Kinect z grows away from the camera
    camera = camera + rng.normal(0, 0.015, camera.shape)
    frames = []
    info = np.array([0, 1, 1, 1, 1, 0, 0.0, 0.0, 2])
    for coordinates in camera:
        full = np.zeros((NUM_JOINTS, 12))
        full[:, :3] = np.round(coordinates, 7)
        full[:, 3:5] = np.round(256 + 300 * coordinates[:, :2] / coordinates[:, 2:3], 4)  # depth-camera pixels
        full[:, 5:7] = np.round(960 + 1000 * coordinates[:, :2] / coordinates[:, 2:3], 4)  # colour-camera pixels
        full[:, 7] = 1.0
        full[:, 11] = 2
        frames.append([SkeletonBody(body_id, info, full)])
    return SkeletonSequence(frames)


def write_demo_skeletons(root: str | Path, performers: int = 10, replications: int = 4, seed: int = 0,
                         min_frames: int = 40, max_frames: int = 80) -> list[Path]:
    """Write ``S001C001P<performer>R<replication>A<action>.skeleton`` files for every action."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for performer in range(1, performers + 1):
        size = np.random.default_rng([seed, performer]).uniform(0.85, 1.15)
        for action in range(len(ACTIONS)):
            for replication in range(1, replications + 1):
                rng = np.random.default_rng([seed, performer, action, replication])
                joints = pose_sequence(action, int(rng.integers(min_frames, max_frames + 1)), rng, size)
                body_id = str(72057594037900000 + 1000 * performer + 20 * action + replication)
                path = root / f"S001C001P{performer:03d}R{replication:03d}A{action + 1:03d}.skeleton"
                paths.append(write_skeleton(path, _body_sequence(joints, rng, body_id)))
    return paths


class DemoSkeletons(Dataset):
    """The demo's sequences (see the module docstring) as NTU ``.skeleton`` files under ``root``
    (default: a folder in the system's temporary directory named by the settings), read back with
    :class:`maekit_skeleton.data.NTUSkeletons` — the real parser, denoising and spine centring —
    split cross-subject."""

    modality = "skeleton"

    def __init__(self, split: str = "train", performers: int = 10, replications: int = 4, seed: int = 0,
                 root: str | Path | None = None) -> None:
        from maekit_skeleton.data import NTUSkeletons

        settings = f"{performers}-{replications}-{seed}-v2"
        self.root = demo_folder("maekit_skeleton_demo", settings,
                                lambda folder: write_demo_skeletons(folder, performers, replications, seed), root)
        self.source = NTUSkeletons(self.root, benchmark="xsub", split=split, subset="ntu60")
        self.arrays = [self.source.array(i) for i in range(len(self.source))]  # parse once, up front

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"inputs": torch.from_numpy(self.arrays[index]), "label": self.source.files[index][1]}
