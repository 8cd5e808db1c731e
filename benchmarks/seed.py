"""The classic first contact: a user's own @njit callback on a 100x100 image, 39x39
patches, stride 1 (3,844 patches). Timed as a whole process by compile_cost.py."""

import numba
import numpy as np

import patchjit


@numba.njit
def remove_mean(patch, out):
    m = patch.mean()
    for i in range(patch.shape[0]):
        for j in range(patch.shape[1]):
            out[i, j] = patch[i, j] - m


image = np.random.default_rng(0).random((100, 100)).astype(np.float32)
result = patchjit.process_image(image, remove_mean, (39, 39), 1)
print(float(abs(result).max()))
