"""Runner profiles: what a simulated athlete's hips, pelvis and muscles do in one stride.

A :class:`Profile` holds, per side, the target hip range (peak extension and flexion in degrees)
and one activation burst per muscle group; plus the pelvis (mean anterior tilt while running and
the amplitude of its two-per-stride oscillation). Activations are fractions of MVC (1.0 = the
maximal voluntary contraction); burst times are milliseconds relative to that side's initial
contact (IC), negative = before IC, in late swing.

The shapes follow Novacheck 1998 (running kinematics) and Schache et al. (pelvis): ~45° hip
flexion at IC, ~10° peak extension just after toe-off, ~55° peak flexion in late swing; glute
max and hamstrings switch on in late swing and stay on through early stance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

SIDES = ("l", "r")


@dataclass(frozen=True)
class Burst:
    """One activation burst of a muscle, timed relative to IC.

    The activation is exactly 0 before ``onset_ms`` and after ``offset_ms``; it rises to about
    55 % of ``peak`` within 25 ms of the onset (so a detector has a sharp edge to find) and
    reaches ``peak`` (fraction of MVC) at ``peak_ms``.
    """

    onset_ms: float
    peak_ms: float
    offset_ms: float
    peak: float

    def shifted(self, delta_ms: float) -> Burst:
        return replace(self, onset_ms=self.onset_ms + delta_ms, peak_ms=self.peak_ms + delta_ms,
                       offset_ms=self.offset_ms + delta_ms)

    def scaled(self, factor: float) -> Burst:
        return replace(self, peak=self.peak * factor)


@dataclass(frozen=True)
class SideProfile:
    peak_extension_deg: float
    peak_flexion_deg: float
    glute: Burst
    hamstring: Burst
    erector: Burst
    #: Prone hip extension test: onsets (ms) relative to thigh movement onset, the lift (deg),
    #: and the pelvis's anterior tilt and rotation during the lift (deg).
    prone_glute_ms: float = -10.0
    prone_hamstring_ms: float = -100.0
    prone_erector_ms: float = -50.0
    prone_tilt_deg: float = 3.0
    prone_rotation_deg: float = 2.0


@dataclass(frozen=True)
class Profile:
    name: str
    left: SideProfile
    right: SideProfile
    #: Mean anterior pelvic tilt while running, relative to the standing calibration.
    tilt_mean_deg: float
    #: Half the peak-to-peak range of the pelvis's two oscillations per stride.
    tilt_amplitude_deg: float
    #: Stance as a fraction of the stride (IC to toe-off).
    stance_fraction: float = 0.36

    def side(self, side: str) -> SideProfile:
        return self.left if side == "l" else self.right


_HEALTHY_SIDE = SideProfile(
    peak_extension_deg=10.0,
    peak_flexion_deg=55.0,
    glute=Burst(onset_ms=-100.0, peak_ms=30.0, offset_ms=180.0, peak=0.38),
    hamstring=Burst(onset_ms=-150.0, peak_ms=-40.0, offset_ms=120.0, peak=0.40),
    erector=Burst(onset_ms=-40.0, peak_ms=40.0, offset_ms=150.0, peak=0.22),
)
_HAMSTRING_SIDE = SideProfile(
    peak_extension_deg=7.5,
    peak_flexion_deg=55.0,
    glute=Burst(onset_ms=-20.0, peak_ms=60.0, offset_ms=160.0, peak=0.18),
    hamstring=Burst(onset_ms=-190.0, peak_ms=-50.0, offset_ms=170.0, peak=0.62),
    erector=Burst(onset_ms=-40.0, peak_ms=40.0, offset_ms=160.0, peak=0.28),
    prone_glute_ms=150.0,
    prone_hamstring_ms=-120.0,
)
_LIMITED_SIDE = SideProfile(
    peak_extension_deg=1.5,
    peak_flexion_deg=53.0,
    glute=Burst(onset_ms=-90.0, peak_ms=30.0, offset_ms=170.0, peak=0.30),
    hamstring=Burst(onset_ms=-160.0, peak_ms=-40.0, offset_ms=130.0, peak=0.45),
    erector=Burst(onset_ms=-60.0, peak_ms=40.0, offset_ms=200.0, peak=0.45),
    prone_erector_ms=-150.0,
    prone_tilt_deg=8.0,
    prone_rotation_deg=4.0,
)
_WEAK_SIDE = SideProfile(
    peak_extension_deg=5.0,
    peak_flexion_deg=54.0,
    glute=Burst(onset_ms=-60.0, peak_ms=40.0, offset_ms=170.0, peak=0.20),
    hamstring=Burst(onset_ms=-160.0, peak_ms=-40.0, offset_ms=130.0, peak=0.46),
    erector=Burst(onset_ms=-40.0, peak_ms=40.0, offset_ms=150.0, peak=0.26),
    prone_glute_ms=100.0,
    prone_rotation_deg=7.0,
)

PROFILES: dict[str, Profile] = {
    "healthy": Profile("healthy", _HEALTHY_SIDE, _HEALTHY_SIDE, tilt_mean_deg=4.0,
                       tilt_amplitude_deg=2.5),
    "hamstring_dominant": Profile("hamstring_dominant", _HAMSTRING_SIDE, _HAMSTRING_SIDE,
                                  tilt_mean_deg=5.0, tilt_amplitude_deg=2.5),
    "limited_extension": Profile("limited_extension", _LIMITED_SIDE, _LIMITED_SIDE,
                                 tilt_mean_deg=12.0, tilt_amplitude_deg=3.0),
    "asymmetry": Profile("asymmetry", _HEALTHY_SIDE, _WEAK_SIDE, tilt_mean_deg=5.0,
                         tilt_amplitude_deg=2.8),
}
PROFILE_NAMES = tuple(PROFILES)


def profile_named(name: str) -> Profile:
    """The profile called ``name``; ValueError listing the known names otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown simulator profile {name!r}; known: "
                         + ", ".join(PROFILE_NAMES)) from None
