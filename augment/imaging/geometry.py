"""Viewpoint changes of a flat cut-out: a simulated yaw (turning the product about its vertical axis).

A photo holds no depth, so the angle variant treats the subject as a card: turning it by `yaw` foreshortens its
width by cos(yaw) and makes the near edge taller than the far one. A small roll adds a tilt. This is a visibly
different view that keeps every pixel of the product; it does not invent unseen sides.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from augment.imaging.compose import Layer


def yaw_homography(bbox: tuple[int, int, int, int], yaw_deg: float, roll_deg: float = 0.0, depth: float = 0.5) -> np.ndarray:
    """The 3x3 homography that turns the card `bbox` by `yaw_deg` (positive: right edge comes forward)."""
    x0, y0, x1, y1 = bbox
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    w, h = x1 - x0, y1 - y0
    yaw = math.radians(yaw_deg)
    half_w = 0.5 * w * math.cos(yaw)
    grow = 0.5 * depth * math.sin(abs(yaw))  # how much taller the near edge is, relative to the height
    near, far = 0.5 * h * (1 + grow), 0.5 * h * (1 - grow)
    left_h, right_h = (far, near) if yaw > 0 else (near, far)
    src = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    dst = np.float32(
        [[cx - half_w, cy - left_h], [cx + half_w, cy - right_h], [cx + half_w, cy + right_h], [cx - half_w, cy + left_h]]
    )
    persp = cv2.getPerspectiveTransform(src, dst)
    rot = np.vstack([cv2.getRotationMatrix2D((cx, cy), roll_deg, 1.0), [0.0, 0.0, 1.0]])
    return rot @ persp


def warp_layer(layer: Layer, matrix: np.ndarray) -> Layer:
    size = layer.alpha.shape[0]
    rgb = cv2.warpPerspective(layer.rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))  # uint8 in, uint8 out
    alpha = cv2.warpPerspective(layer.alpha, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return Layer(rgb, alpha)
