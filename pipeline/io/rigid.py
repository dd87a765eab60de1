"""Segment orientation from markers, shared by the lab-file reader
(:mod:`hipstride.pipeline.io.c3d_angles`) and the virtual IMUs
(:mod:`hipstride.pipeline.virtual_imu`): a rigid-body fit of a marker cluster, and the
engine's hip and tilt angles from segment rotations relative to standing."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray


def kabsch(reference: NDArray[np.float64], current: NDArray[np.float64]
           ) -> NDArray[np.float64]:
    """Rotations (n, 3, 3) taking the reference cluster (m, 3) onto each frame (n, m, 3):
    ``current − centroid ≈ R (reference − its centroid)``, least squares (SVD)."""
    p = reference - reference.mean(axis=0)
    q = current - current.mean(axis=1, keepdims=True)
    h = np.einsum("mi,nmj->nij", p, q)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("nji,nkj->nik", vt, u)))
    fix = np.ones((len(d), 3))
    fix[:, 2] = d
    return np.einsum("nji,nj,nkj->nik", vt, fix, u)


def hip_and_tilt(rotations: Mapping[str, NDArray[np.float64]]
                 ) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.float64]]:
    """Hip flexion per side and pelvic tilt (deg) from segment rotations relative to standing,
    with the engine's convention (θz of R = Rz·Rx·Ry; hip = thigh θz − pelvis θz)."""
    def theta(r: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.degrees(np.unwrap(np.arctan2(-r[:, 0, 1], r[:, 1, 1])))

    pelvis = theta(rotations["pelvis"])
    hip = {s: theta(rotations[f"thigh_{s}"]) - pelvis for s in ("l", "r")
           if f"thigh_{s}" in rotations}
    return hip, -pelvis
