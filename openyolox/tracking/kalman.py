"""Constant-velocity Kalman filter on boxes written as (cx, cy, a, h), for many tracks at once.

A box is measured as its centre, its aspect ratio a = w / h and its height; the state adds a
velocity for each: (cx, cy, a, h, vcx, vcy, va, vh). This is the motion model of SORT and
DeepSORT that ByteTrack keeps, with its noise weights: position noise 1/20 of the box height,
velocity noise 1/160 of it. Scaling the noise by the height makes one filter fit a 20-pixel and
a 400-pixel object alike (a jitter of 2 px is large for the first and nothing for the second).
The aspect ratio is dimensionless, so it gets small fixed noises instead: a rigid object's w/h
barely changes from frame to frame.

Every method works on a batch: means (T, 8), covariances (T, 8, 8), measurements (T, 4). The
tracker predicts all its tracks in one call and updates all matched tracks in another, so the
cost per frame is a few numpy calls, not a Python loop over tracks.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

# One frame per step: the position moves by one velocity (F = [[I, I], [0, I]]).
_MOTION = np.eye(8)
_MOTION[:4, 4:] = np.eye(4)


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """boxes: (N, 4) xyxy -> (N, 4) (cx, cy, w / h, h). Callers pass boxes with h > 0."""
    boxes = np.asarray(boxes, dtype=np.float64)
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return np.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, w / h, h), axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """xyah: (N, >=4) whose first columns are (cx, cy, w / h, h) -> (N, 4) xyxy."""
    cx, cy, a, h = xyah[:, 0], xyah[:, 1], xyah[:, 2], xyah[:, 3]
    w = a * h
    return np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)


class KalmanBoxFilter:
    """Kalman filter for boxes moving at constant velocity (state (cx, cy, a, h) + velocities).

    The noise standard deviations, per frame, for a box of height h:
      measurement     (h/20, h/20, 0.1,  h/20)
      process, pos.   (h/20, h/20, 0.01, h/20)
      process, vel.   (h/160, h/160, 1e-5, h/160)
    and a new track starts with twice the position noise and ten times the velocity noise
    (its velocity is unknown: zero with a wide spread).
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160):
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity

    def initiate(self, measurements: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """measurements: (N, 4) xyah -> mean (N, 8) with zero velocity, covariance (N, 8, 8)."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        mean = np.concatenate((z, np.zeros_like(z)), axis=1)
        h = z[:, 3]
        wp, wv = self.std_weight_position, self.std_weight_velocity
        std = np.stack((2 * wp * h, 2 * wp * h, np.full_like(h, 1e-2), 2 * wp * h,
                        10 * wv * h, 10 * wv * h, np.full_like(h, 1e-5), 10 * wv * h), axis=1)
        return mean, _diag(std ** 2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One frame ahead. mean: (T, 8), cov: (T, 8, 8) -> new (mean, cov); inputs untouched.

        The process noise is sized by the height before the step, as in SORT/ByteTrack."""
        h = mean[:, 3]
        wp, wv = self.std_weight_position, self.std_weight_velocity
        std = np.stack((wp * h, wp * h, np.full_like(h, 1e-2), wp * h,
                        wv * h, wv * h, np.full_like(h, 1e-5), wv * h), axis=1)
        new_mean = mean @ _MOTION.T
        new_cov = _MOTION @ cov @ _MOTION.T + _diag(std ** 2)
        return new_mean, new_cov

    def project(self, mean: np.ndarray, cov: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The state seen as a measurement: mean (T, 4) xyah, innovation covariance (T, 4, 4)."""
        h = mean[:, 3]
        wp = self.std_weight_position
        std = np.stack((wp * h, wp * h, np.full_like(h, 1e-1), wp * h), axis=1)
        return mean[:, :4], cov[:, :4, :4] + _diag(std ** 2)

    def update(self, mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Correct predicted states with measurements (T, 4) xyah -> new (mean, cov)."""
        z = np.asarray(measurements, dtype=np.float64).reshape(-1, 4)
        projected, s = self.project(mean, cov)
        # Gain K = P H^T S^-1. S is symmetric, so K^T = S^-1 (H P) and one batched solve gives it
        # without forming an inverse.
        gain = np.linalg.solve(s, cov[:, :4, :]).transpose(0, 2, 1)      # (T, 8, 4)
        innovation = z - projected                                        # (T, 4)
        new_mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
        new_cov = cov - gain @ s @ gain.transpose(0, 2, 1)
        return new_mean, new_cov


def _diag(values: np.ndarray) -> np.ndarray:
    """(T, K) -> (T, K, K) diagonal matrices."""
    out = np.zeros(values.shape + (values.shape[-1],), dtype=np.float64)
    idx = np.arange(values.shape[-1])
    out[:, idx, idx] = values
    return out
