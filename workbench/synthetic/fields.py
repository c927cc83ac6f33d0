"""Smooth geophysical fields for synthetic radiances (docs/basicfusion-layout.md section 8).

A scene is a function of position on the sphere: land/ocean, cloud and surface
temperature are sums of a few random plane waves in Earth-fixed (x, y, z), so they
are smooth, have no seam at the date line and agree between instruments that look
at the same place. Land is fixed by the seed; clouds also change with the orbit.
Radiances follow L = rho * cos(SZA) * E0/(pi d^2), quantised to DN * scale as the
real L1B unpacking does; that quantisation plus modest noise is what makes gzip-1
shrink the data to about a third, as in the real files.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]

# E0_b / pi (W m-2 um-1 sr-1) for MODIS bands 1..7 (spec section 8) and the 15 1KM RefSB bands.
MODIS_E0_PI_250_500 = np.array([513.0, 315.0, 657.0, 597.0, 146.0, 74.0, 29.0])
MODIS_E0_PI_1KM_REFSB = np.array(
    [555.0, 595.0, 612.0, 600.0, 582.0, 485.0, 485.0, 463.0, 463.0, 455.0, 400.0, 338.0, 335.0, 320.0, 116.0]
)
# Surface reflectance per band 1..7 for ocean, land and (thick) cloud.
RHO_OCEAN = np.array([0.03, 0.02, 0.07, 0.045, 0.02, 0.015, 0.01])
RHO_LAND = np.array([0.09, 0.28, 0.06, 0.10, 0.30, 0.24, 0.14])
RHO_CLOUD = np.array([0.72, 0.74, 0.74, 0.73, 0.62, 0.45, 0.30])
# Central wavelengths (um) of the 16 emissive bands 20-25, 27-36.
MODIS_EMISSIVE_UM = np.array(
    [3.75, 3.96, 3.96, 4.05, 4.47, 4.52, 6.72, 7.33, 8.55, 9.73, 11.03, 12.02, 13.34, 13.64, 13.94, 14.24]
)
# MISR radiance at reflectance 1 and SZA 0 (Blue, Green, Red, NIR), spec section 8.
MISR_E0_PI = np.array([600.0, 590.0, 490.0, 310.0])
MISR_BANDS = ("Blue", "Green", "Red", "NIR")


class Scene:
    """Land, cloud and temperature fields on the sphere."""

    def __init__(self, seed: int, orbit: int) -> None:
        land_rng = np.random.default_rng([seed, 1])
        cloud_rng = np.random.default_rng([seed, orbit, 2])
        self._land = _waves(land_rng, [(2.0, 1.0), (5.0, 0.5), (13.0, 0.25), (31.0, 0.12)])
        self._cloud = _waves(cloud_rng, [(9.0, 1.0), (23.0, 0.7), (55.0, 0.45), (130.0, 0.3)])

    def land(self, q: F32) -> F32:
        """Land fraction 0..1 (sharp coasts)."""
        return _sigmoid(_eval(self._land, q) * np.float32(6.0) - np.float32(1.5))

    def cloud(self, q: F32) -> F32:
        """Cloud fraction 0..1: patchy, about a third of the sky."""
        return _sigmoid(_eval(self._cloud, q) * np.float32(2.5) - np.float32(1.0))

    def temperature(self, q: F32, land: F32, cloud: F32) -> F32:
        """Brightness temperature (K): warm tropics, cold poles and cloud tops."""
        surface = np.float32(300.0) - np.float32(55.0) * q[..., 2] ** 2 + np.float32(6.0) * land
        return (surface - np.float32(60.0) * cloud).astype(np.float32)

    def reflectance(self, q: F32, rho: NDArray[np.float64]) -> tuple[F32, F32, F32]:
        """Per-band reflectances (bands, ...) for the given band table rows, with land and cloud fields."""
        land = self.land(q)
        cloud = self.cloud(q)
        return mix_reflectance(land, cloud, rho), land, cloud


def mix_reflectance(land: F32, cloud: F32, rho: NDArray[np.float64]) -> F32:
    """rho has 3 rows (ocean, land, cloud) and one column per band; result is (bands, ...)."""
    ocean_c, land_c, cloud_c = (np.asarray(r, dtype=np.float32) for r in rho)
    shape = (len(ocean_c),) + (1,) * land.ndim
    surface = ocean_c.reshape(shape) + (land_c - ocean_c).reshape(shape) * land
    # Thick clouds are brighter than the mean cloud: up to 1.3x (bands 3 and 4 saturate there).
    brightness = np.float32(0.55) + np.float32(0.75) * cloud**4
    return (surface + (cloud_c.reshape(shape) * brightness - surface) * cloud).astype(np.float32)


def planck_radiance(wavelength_um: NDArray[np.float64], temperature_k: F32) -> F32:
    """Spectral radiance W m-2 um-1 sr-1 for each band (bands, ...)."""
    c1, c2 = 1.191042e8, 1.4387752e4  # W m-2 sr-1 um4, um K
    lam = wavelength_um.astype(np.float32).reshape((-1,) + (1,) * temperature_k.ndim)
    return (np.float32(c1) / lam**5 / np.expm1(np.float32(c2) / (lam * temperature_k))).astype(np.float32)


def quantise(radiance: F32, scale: NDArray[np.float32], noise: F32, max_dn: int) -> tuple[F32, NDArray[np.bool_]]:
    """Radiance -> DN (with noise in DN) -> DN * scale as float32; also the saturated mask (DN > max_dn)."""
    shape = (-1,) + (1,) * (radiance.ndim - 1)
    s = scale.astype(np.float32).reshape(shape)
    dn = np.divide(radiance, s, dtype=np.float32)
    dn += noise
    np.rint(dn, out=dn)
    saturated = dn > max_dn
    np.clip(dn, 0, max_dn, out=dn)
    dn *= s
    return dn, saturated


def dn_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_dn: float) -> F32:
    """Cheap gaussian-like detector noise in DN (sum of two small uniforms)."""
    a = rng.integers(-8, 9, size=shape, dtype=np.int8).astype(np.float32)
    a += rng.integers(-8, 9, size=shape, dtype=np.int8)
    return (a * np.float32(sigma_dn / 6.9)).astype(np.float32)


def _waves(rng: np.random.Generator, scales: list[tuple[float, float]], per_scale: int = 3) -> list[tuple[F32, float]]:
    waves = []
    for wavenumber, amplitude in scales:
        for _ in range(per_scale):
            k = rng.normal(size=3)
            k *= wavenumber / np.linalg.norm(k)
            waves.append((np.append(k, rng.uniform(0, 2 * np.pi)).astype(np.float32), amplitude / per_scale**0.5))
    return waves


def _eval(waves: list[tuple[F32, float]], q: F32) -> F32:
    out = np.zeros(q.shape[:-1], dtype=np.float32)
    total = 0.0
    for k, amplitude in waves:
        phase = q[..., 0] * k[0] + q[..., 1] * k[1] + q[..., 2] * k[2] + k[3]
        out += np.float32(amplitude) * np.sin(phase)
        total += amplitude**2
    return (out / np.float32(np.sqrt(total / 2))).astype(np.float32)


def _sigmoid(x: F32) -> F32:
    return (np.float32(0.5) + np.float32(0.5) * np.tanh(x)).astype(np.float32)
