"""Input advisories: each check fires on a map built to have the problem; a raw phantom raises none."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from locres import advisories as adv
from locres.core.fourier import lowpass_raised_cosine, sharpen
from locres.errors import LocresError
from locres.simulate.phantom import make_synthetic_phantom

VX = 1.0


def codes(found):
    return [a.code for a in found]


@pytest.fixture(scope="module")
def phantom():
    return make_synthetic_phantom((64, 64, 64), VX, (3.0, 8.0), snr=2.0, seed=1)


def _soft_mask(mask: np.ndarray, width_px: float) -> np.ndarray:
    d = ndimage.distance_transform_edt(~mask)
    return np.where(d < width_px, 0.5 * (1 + np.cos(np.pi * d / width_px)), 0.0).astype(np.float32)


@pytest.mark.parametrize("seed", [1, 2, 4])
def test_raw_phantom_raises_none(seed):
    ph = make_synthetic_phantom((64, 64, 64), VX, (3.0, 8.0), snr=2.0, seed=seed)
    assert adv.advise(ph.map, VX) == []
    assert adv.advise(ph.map, VX, half1=ph.half1, half2=ph.half2, method="monores") == []
    assert adv.advise(ph.map, VX, mask=ph.mask, method="deepres", trained_range_a=(2.0, 15.0)) == []


def test_sharpened_phantom_raises_sharpened(phantom):
    found = adv.advise(sharpen(phantom.map, VX, 100.0), VX)
    assert codes(found) == ["sharpened"]
    assert "unsharpened" in found[0].message
    b = adv.apparent_bfactor_a2(adv.shell_power(sharpen(phantom.map, VX, 100.0), VX))
    assert -110 < b < -90  # the fit reads back the B factor applied to the (white) noise
    blurred = sharpen(phantom.map, VX, -100.0)  # B < 0: blurring is not sharpening
    assert "sharpened" not in codes(adv.advise(blurred, VX))


def test_lowpass_filtered_map(phantom):
    found = adv.advise(lowpass_raised_cosine(phantom.map, VX, 6.0), VX)
    assert codes(found) == ["lowpass_filtered"]
    assert "6." in found[0].message or "5." in found[0].message  # the cutoff it names


def test_hard_mask_raises_masked_and_hard_edge(phantom):
    found = adv.advise(phantom.map * phantom.mask, VX)
    assert codes(found) == ["masked", "hard_mask_edge"]
    frac = 1.0 - phantom.mask.mean()
    assert f"{100 * frac:.0f} %" in found[0].message


@pytest.mark.parametrize("width_px", [3.0, 6.0])
def test_soft_mask_raises_masked_only(phantom, width_px):
    soft = _soft_mask(phantom.mask, width_px)
    assert codes(adv.advise(phantom.map * soft, VX)) == ["masked"]
    assert adv.mask_edge_width_px(soft) == pytest.approx(width_px, rel=0.3)
    assert adv.mask_edge_width_px(phantom.mask.astype(np.float32)) == 0.0


def test_solvent_flattened_to_a_constant(phantom):
    flat = np.where(phantom.mask, phantom.map, np.float32(0.37))
    found = adv.constant_background(flat)
    assert found.masked and found.value == pytest.approx(0.37)
    assert found.fraction == pytest.approx(1.0 - phantom.mask.mean(), abs=1e-3)
    assert "masked" in codes(adv.advise(flat, VX))


def test_zero_padding_is_not_a_mask(phantom):
    padded = phantom.map.copy()
    padded[:2] = 0.0
    padded[:, -1] = 0.0
    found = adv.constant_background(padded)
    assert found.fraction > 0.03 and not found.masked
    assert "masked" not in codes(adv.advise(padded, VX))


def test_half_map_checks(phantom):
    m = phantom.mask
    found = adv.advise(0.5 * (phantom.half1 + phantom.half2) * m, VX, half1=phantom.half1 * m,
                       half2=phantom.half2 * m)
    assert "halves_masked" in codes(found) and "masked" not in codes(found)  # said once
    assert "half maps" in [a for a in found if a.code == "halves_masked"][0].message
    same = adv.advise(phantom.half1, VX, half1=phantom.half1, half2=phantom.half1 + 1.0)
    assert codes(same) == ["halves_not_independent"]
    with pytest.raises(LocresError, match="differ in shape"):
        adv.advise(phantom.map, VX, half1=phantom.half1, half2=phantom.half2[:-1])


def test_oversampled_map():
    ph = make_synthetic_phantom((64, 64, 64), 0.5, (6.0, 10.0), snr=2.0, seed=0)
    assert "oversampled" in codes(adv.advise(ph.map, 0.5))
    assert "oversampled" in codes(adv.advise(ph.map, 0.5, half1=ph.half1, half2=ph.half2))


def test_no_room_for_noise(phantom):
    shifted = np.roll(phantom.map, 20, axis=2)  # the particle now touches the x+ face
    found = adv.advise(shifted, VX, method="monodir")
    assert codes(found) == ["no_room_for_noise"] and "(x+)" in found[0].message
    assert adv.advise(shifted, VX, method="deepres") == []  # no background noise estimate
    assert adv.advise(shifted, VX, half1=shifted, half2=shifted + phantom.half2 - phantom.half1,
                      method="monodir") == []  # half maps: noise from their difference
    rng = np.random.default_rng(0)
    roomy = np.pad(phantom.map, 12) + 0.0
    roomy[roomy == 0] = rng.normal(0, phantom.info["noise_sigma_map"], int((roomy == 0).sum()))
    assert adv.room_px(adv.particle_mask(roomy, VX))[0] >= 12
    assert "no_room_for_noise" not in codes(adv.advise(roomy, VX, method="monodir"))


def test_outside_trained_range(phantom):
    found = adv.advise(phantom.map, VX, half1=phantom.half1, half2=phantom.half2, method="deepres",
                       trained_range_a=(2.0, 4.0))  # the phantom's FSC 0.143 lies near 5 A
    assert codes(found) == ["outside_trained_range"]
    assert "2.0-4.0" in found[0].message
    coarse = adv.advise(phantom.map, 8.0, method="deepres", trained_range_a=(2.0, 15.0))
    assert "outside_trained_range" in codes(coarse)  # Nyquist 16 A lies beyond the range


def test_bad_voxel_size(phantom):
    with pytest.raises(LocresError, match="voxel size"):
        adv.advise(phantom.map, 0.0)


MASKED = ["emd_3488/emd_3488.mrc", "emd_1461_crop/emd_1461.mrc", "emd_2513_crop/emd_2513.mrc",
          "emd_2566_crop/2566_3J6B_9.mrc"]
NOISY = ["emd_5168/emd_5168.map", "emd_5170/emd_5170.map"]


@pytest.mark.shared
@pytest.mark.parametrize("name", MASKED + NOISY)
def test_shared_maps_masked_advisory(shared_data, name):
    from locres.io.maps import read_map

    vol = read_map(shared_data / "maps" / name)
    found = codes(adv.advise(vol.data, vol.voxel_size_a))
    assert ("masked" in found) == (name in MASKED)
