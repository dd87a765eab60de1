"""Guided phases over windows cut from a simulated session with known phases: standing
calibration (and its stillness check), MVC per muscle (and its effort checks), the prone
hip extension test; and what the streaming engine does with the results. Windows as the
dashboard cuts them from the endless simulator following commands (the runner takes a moment
to stop and to lie down) are trimmed to the still / prone part."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hipstride.edge.simulator import simulate
from hipstride.edge.simulator.instructions import STOP_S
from hipstride.edge.simulator.protocols import MVC_REST_S, MVC_TRIAL_S, PRONE_LIE_DOWN_S
from hipstride.edge.simulator.session import ENDLESS, SessionConfig, SessionGenerator
from hipstride.pipeline.engine.data import EmgData, ImuData
from hipstride.pipeline.engine.emg import emg_mvc_reference
from hipstride.pipeline.engine.phases import (
    lying_prone_mask,
    phase_mvc,
    phase_prone,
    phase_standing,
    prone_span,
    segment_motion_deg,
    still_span,
)
from hipstride.pipeline.engine.phe import phe_analyze
from hipstride.pipeline.engine.stream import EmgStream, ImuStream, StreamingEngine
from hipstride.pipeline.engine.strides import emg_preprocess, remove_floor

CHANNELS = ("glute_max_l", "biceps_femoris_l", "glute_max_r", "biceps_femoris_r")
REPS = 2


@pytest.fixture(scope="module")
def sim():
    return simulate(84.0, seed=2, mvc=True, prone=True, prone_reps=REPS, standing_s=6.0,
                    emg_channels=(*CHANNELS, "erector_spinae_l", "erector_spinae_r"))


def emg_window(sim, a: float, b: float, origin: float | None = None) -> EmgData:
    """EMG of [a, b) s with times in seconds from ``origin`` (default a: the phase start)."""
    d = sim.description("emg")
    i0, i1 = round(a * d.rate_hz), round(b * d.rate_hz)
    origin = a if origin is None else origin
    return EmgData(sim.data["emg"][i0:i1].astype(float), d.channel_names, d.rate_hz,
                   i0 / d.rate_hz - origin)


def imu_window(sim, seg: str, a: float, b: float, origin: float | None = None) -> ImuData:
    d = sim.description(f"imu_{seg}")
    i0, i1 = round(a * d.rate_hz), round(b * d.rate_hz)
    x = sim.data[f"imu_{seg}"][i0:i1].astype(float)
    origin = a if origin is None else origin
    return ImuData(seg, x[:, :3], x[:, 3:], d.rate_hz, i0 / d.rate_hz - origin,
                   np.array(d.mounting, float))


def segments(sim) -> list[str]:
    return [d.stream[4:] for d in sim.descriptions if d.stream.startswith("imu_")]


def standing(sim, a: float, b: float, **kw):
    return phase_standing({s: imu_window(sim, s, a, b) for s in segments(sim)},
                          emg_window(sim, a, b), (0.0, b - a), **kw)


def test_standing_still_gives_the_engines_calibration(sim):
    res = standing(sim, 0.2, 5.8)
    assert res.ok and res.problems == []
    assert set(res.state["imu"]) == set(segments(sim))
    assert all(v["ok"] and v["moved_deg"] < 1.0 for v in res.result["segments"].values())
    assert set(res.result["emg_floor_mv"]) == set(sim.description("emg").channel_names)
    # The state is what the engine stores: an engine built with it skips the standing
    # period and calibrates on its first data.
    d = sim.description("emg")
    eng = StreamingEngine(EmgStream(d.channel_names, d.rate_hz),
                          [ImuStream(s, 200.0, imu_window(sim, s, 0, 1).mounting)
                           for s in segments(sim)], calibration=res.state)
    eng.push_emg(sim.data["emg"][:2000].astype(float), 0.0)
    for s in segments(sim):
        x = sim.data[f"imu_{s}"][:200].astype(float)
        eng.push_imu(s, x[:, :3], x[:, 3:], 0.0)
    eng.poll()
    assert eng.phase == "calibrating"
    assert eng.calibration_state()["standing"]["imu"]["pelvis"]["gyro_bias_dps"] == \
        pytest.approx(res.state["imu"]["pelvis"]["gyro_bias_dps"])


def test_moving_during_standing_is_named_in_plain_words(sim):
    res = standing(sim, 3.5, 9.0)  # the run starts at 6 s: still for less than 3 s
    assert not res.ok and res.state is None
    assert res.problems[0].startswith("no still stretch of 3 s in the standing window (the "
                                      "longest was 2.")
    assert res.problems[0].endswith(" s of 5.5 s): stand still for about 5 s and repeat")
    assert any(p.startswith("the pelvis moved ") and p.endswith(
        "° during standing calibration: stand still and repeat") for p in res.problems)
    assert res.result["segments"]["thigh_l"]["moved_deg"] > 20
    assert not res.result["segments"]["thigh_l"]["ok"]


def test_too_short_a_standing_is_refused(sim):
    res = standing(sim, 1.0, 2.5)
    assert not res.ok and "lasted only 1.5 s" in res.problems[0]


def test_segment_motion_ignores_a_constant_gyro_bias():
    gyr = np.tile([2.0, -1.0, 0.5], (1000, 1)) + 0.01 * np.random.default_rng(0).standard_normal(
        (1000, 3))
    still = ImuData("pelvis", np.zeros((1000, 3)), gyr, 200.0)
    assert segment_motion_deg(still) < 0.2
    turn = gyr.copy()
    turn[400:600, 2] += 50.0  # 1 s at 50 deg/s: 50 deg
    assert segment_motion_deg(ImuData("pelvis", np.zeros((1000, 3)), turn, 200.0)) == \
        pytest.approx(50.0, abs=3.0)


def mvc_trial(sim, channel: str) -> tuple[float, float]:
    start = sim.truth.phase("mvc")["start_s"]
    i = sim.description("emg").channel_names.index(channel)
    return start + i * MVC_TRIAL_S, start + (i + 1) * MVC_TRIAL_S


def test_mvc_of_one_muscle_matches_the_offline_reference(sim):
    floor = standing(sim, 0.2, 5.8).result["emg_floor_mv"]
    a, b = mvc_trial(sim, "glute_max_l")
    res = phase_mvc(emg_window(sim, a, b), (0.0, b - a), muscles=["glute_max_l"],
                    floor_mv=floor)
    assert res.ok and res.problems == []
    m = res.result["muscles"]["glute_max_l"]
    assert m["ok"] and m["problem"] is None and m["held_s"] > 4.0 and m["ratio"] > 20
    assert res.state["channels"] == ["glute_max_l"]
    # the engine's offline reference: the whole trial through the same chain
    emg = emg_window(sim, a - 1.0, b + 1.0)
    env, _ = emg_preprocess(emg)
    chans = list(emg.channels)
    ref = emg_mvc_reference(remove_floor(env, np.array([floor[c] for c in chans])), 2000.0)
    assert m["peak_mv"] == pytest.approx(ref.values_mv[chans.index("glute_max_l")], rel=0.01)


def test_mvc_without_effort_or_held_too_briefly_or_below_running(sim):
    res = phase_mvc(emg_window(sim, 0.5, 5.5), (0.0, 5.0), muscles=["glute_max_r"])
    assert not res.ok and res.state is None
    assert res.problems[0].startswith("glute_max_r: no clear effort")
    assert "push as hard as you can and repeat" in res.problems[0]
    a, _ = mvc_trial(sim, "biceps_femoris_l")
    effort = a + MVC_REST_S
    res = phase_mvc(emg_window(sim, effort - 1.5, effort + 0.7), (0.0, 2.2),
                    muscles=["biceps_femoris_l"])
    assert not res.ok and "was held only" in res.problems[0]
    a, b = mvc_trial(sim, "glute_max_l")
    res = phase_mvc(emg_window(sim, a, b), (0.0, b - a), muscles=["glute_max_l"],
                    running_mv={"glute_max_l": 5.0})
    assert not res.ok and "far below this muscle's level while running" in res.problems[0]
    res = phase_mvc(emg_window(sim, a, b), (0.0, b - a), muscles=["glute_max_l"],
                    running_mv={"glute_max_l": 0.3})  # running peaks may top a 500 ms MVC
    assert res.ok
    res = phase_mvc(emg_window(sim, a, b), (0.0, b - a), muscles=["gluteus"])
    assert not res.ok and res.problems[0].startswith("no EMG channel named gluteus")


def test_mvc_without_a_muscle_evaluates_every_channel(sim):
    a, _ = mvc_trial(sim, "glute_max_l")
    _, b = mvc_trial(sim, "biceps_femoris_l")
    res = phase_mvc(emg_window(sim, a, b), (0.0, b - a))
    good = {c for c, m in res.result["muscles"].items() if m["ok"]}
    assert good == {"glute_max_l", "biceps_femoris_l"}
    assert set(res.state["channels"]) == good
    assert not res.ok and len(res.problems) == 4  # the other channels made no effort


def prone(sim, side=None, a=None, b=None):
    p = sim.truth.phase("prone")
    a, b = (p["start_s"], p["end_s"]) if a is None else (a, b)
    thighs = {s: imu_window(sim, s, a, b) for s in ("thigh_l", "thigh_r")}
    return phase_prone(thighs, emg_window(sim, a - 1.0, b, origin=a),
                       imu_window(sim, "pelvis", a, b), (0.0, b - a), side=side)


def test_prone_test_reports_repetitions_sides_and_advice(sim):
    res = prone(sim)
    assert res.ok and res.problems == []
    reps = res.result["repetitions"]
    assert [r["side"] for r in reps] == ["l"] * REPS + ["r"] * REPS
    start = sim.truth.phase("prone")["start_s"]
    for rep, truth in zip(reps, sorted(sim.truth.prone_reps,
                                       key=lambda r: r["movement_onset_s"]), strict=True):
        assert rep["movement_onset_s"] == pytest.approx(truth["movement_onset_s"] - start,
                                                        abs=0.03)
        assert rep["glute_ham_lag_ms"] == pytest.approx(truth["glute_ham_lag_ms"], abs=30)
        assert rep["order"][0] == truth["order"][0]
        assert isinstance(rep["pelvic_flag"], bool)
    assert set(res.result["sides"]) == {"l", "r"} and res.result["sides"]["l"]["n_reps"] == REPS
    assert all(isinstance(t, str) and t for s in "lr" for t in res.result["advice"][s])
    assert any("not a diagnosis" in n for n in res.result["notes"])


def test_prone_one_side_and_no_lifts(sim):
    res = prone(sim, side="r")
    assert res.ok and {r["side"] for r in res.result["repetitions"]} == {"r"}
    res = prone(sim, side="l", a=1.5, b=5.8)  # standing: never lay down
    assert not res.ok and res.result["repetitions"] == []
    assert res.problems == ["no prone lying detected in the window: lie face down before "
                            "starting the test"]
    p = sim.truth.phase("prone")
    right = p["start_s"] + PRONE_LIE_DOWN_S + REPS * 5.0  # lying; the right leg's lifts only
    res = prone(sim, side="l", a=right, b=p["end_s"])
    assert not res.ok
    assert res.problems == ["no left lifts were found: lie prone, lift the straight leg about "
                            "10-15 cm, hold 2 s, 3-5 times, and repeat"]


def test_engine_takes_mvc_references_only_for_every_channel(sim):
    d = sim.description("emg")
    eng = StreamingEngine(EmgStream(d.channel_names, d.rate_hz), [])
    refs = {c: 0.3 for c in d.channel_names}
    missing = eng.set_mvc_reference({"glute_max_l": 0.3})
    assert "glute_max_r" in missing and eng.normalization == "relative"
    assert eng.set_mvc_reference(refs) == () and eng.normalization == "mvc"
    assert eng.calibration_state()["mvc"]["reference_mv"] == [0.3] * len(d.channel_names)
    assert eng.set_mvc_reference(None) == tuple(d.channel_names)
    assert eng.normalization == "relative" and eng.calibration_state()["mvc"] is None


def test_engine_publishes_hip_and_pelvis_angles_at_100_hz():
    sim = simulate(22.0, seed=1)
    d = sim.description("emg")
    imus = {s: imu_window(sim, s, 0, 22.0, origin=0.0) for s in segments(sim)}
    eng = StreamingEngine(EmgStream(d.channel_names, d.rate_hz),
                          [ImuStream(s, 200.0, v.mounting) for s, v in imus.items()])
    series: dict[str, list] = {}
    for b in range(round(22.0 / 0.05)):
        eng.push_emg(sim.data["emg"][b * 100:(b + 1) * 100].astype(float), b * 0.05)
        for s, v in imus.items():
            eng.push_imu(s, v.acc_mps2[b * 10:(b + 1) * 10], v.gyr_dps[b * 10:(b + 1) * 10],
                         b * 0.05)
        for ch, x in eng.poll().snapshot["angles_deg"].items():
            series.setdefault(ch, []).append(x)
    assert set(series) == {"hip_flexion_l_deg", "hip_flexion_r_deg", "pelvic_tilt_deg"}
    for ch, parts in series.items():
        t = np.concatenate([p["time_s"] for p in parts])
        v = np.concatenate([p["value"] for p in parts])
        assert np.allclose(np.diff(t), 0.01), ch  # one grid, no sample twice or missing
        assert t[-1] > 21.5
        run = v[t > 12.0]
        assert np.isfinite(run).all()
        if ch.startswith("hip"):
            assert 35 < run.max() < 70 and -25 < run.min() < 0  # running hip flexion
        else:
            assert run.min() > -15 and run.max() < 25 and math.isfinite(run.mean())


# --- windows as the dashboard cuts them: the endless simulator following commands ----------

class Instructed:
    """An endless simulated runner commanded like the dashboard does; ``windows``: phase →
    (start, stop) in session s; ``reps``: the prone lifts' truth as commanded."""

    def __init__(self, seed: int, script: list[tuple[str, float, dict]]) -> None:
        self.gen = SessionGenerator(SessionConfig(duration_s=ENDLESS, seed=seed),
                                    record_curves=False)
        self.desc = {d.stream: d for d in self.gen.descriptions}
        self.data: dict[str, list[np.ndarray]] = {s: [] for s in self.gen.streams}
        self.windows: dict[str, tuple[float, float]] = {}
        self.reps: list[dict] = []
        self.t = 0.0
        for phase, hold_s, kw in script:
            if phase == "running":
                self.advance(hold_s)
                continue
            start = self.gen.instruct(phase, **kw)
            self.reps += [dict(r) for r in self.gen.instructions.prone_reps
                          if r["movement_onset_s"] >= start]
            self.advance(hold_s)
            self.windows[phase] = (start, self.gen.instruct("running"))
        self.arrays = {s: np.concatenate(v).astype(float) for s, v in self.data.items()}

    def advance(self, seconds: float) -> None:
        self.t += seconds
        for s, d in self.desc.items():
            have = sum(len(x) for x in self.data[s])
            self.data[s].append(self.gen.read(s, round(self.t * d.rate_hz) - have))

    def imu(self, seg: str, a: float, b: float) -> ImuData:
        d = self.desc[f"imu_{seg}"]
        x = self.arrays[f"imu_{seg}"][round(a * d.rate_hz):round(b * d.rate_hz)]
        return ImuData(seg, x[:, :3], x[:, 3:], d.rate_hz, round(a * d.rate_hz) / d.rate_hz - a,
                       np.array(d.mounting, float))

    def emg(self, a: float, b: float, pad_s: float = 0.0) -> EmgData:
        d = self.desc["emg"]
        i0, i1 = round((a - pad_s) * d.rate_hz), round(b * d.rate_hz)
        return EmgData(self.arrays["emg"][i0:i1], d.channel_names, d.rate_hz,
                       i0 / d.rate_hz - a)


@pytest.fixture(scope="module")
def instructed():
    return Instructed(4, [("running", 22.0, {}), ("standing", 8.0, {}), ("running", 6.0, {}),
                          ("prone", 27.0, {"sides": ("l",)}), ("running", 4.0, {})])


def instructed_standing(ins: Instructed, a: float, b: float):
    imus = {s[4:]: ins.imu(s[4:], a, b) for s in ins.desc if s.startswith("imu_")}
    return phase_standing(imus, ins.emg(a, b), (0.0, b - a))


def test_standing_uses_the_still_part_after_the_runner_stops(instructed):
    a, b = instructed.windows["standing"]
    imus = {s[4:]: instructed.imu(s[4:], a, b) for s in instructed.desc if s.startswith("imu_")}
    assert max(segment_motion_deg(i) for i in imus.values()) > 20  # the whole window moved
    span = still_span(imus, (0.0, b - a))
    assert STOP_S <= span[0] <= STOP_S + 1.0 and span[1] == pytest.approx(b - a, abs=0.02)
    res = instructed_standing(instructed, a, b)
    assert res.ok and res.problems == [] and res.state is not None
    assert res.result["used_s"] == [pytest.approx(span[0], abs=1e-3),
                                    pytest.approx(span[1], abs=1e-3)]
    assert res.result["notes"][0].startswith(f"used the still part of the window, "
                                             f"{span[0]:.1f}-{span[1]:.1f} s (")
    assert all(v["ok"] and v["moved_deg"] < 1.0 for v in res.result["segments"].values())
    # a window with only 2 s of standing in it is refused, naming the segments that moved
    res = instructed_standing(instructed, a - 5.0, a + STOP_S + 2.2)
    assert not res.ok and res.state is None and "used_s" not in res.result
    assert res.problems[0].startswith("no still stretch of 3 s in the standing window")
    assert any(p.startswith("the left thigh moved ") for p in res.problems)


def test_still_span_of_a_still_window_is_all_of_it(sim):
    imus = {s: imu_window(sim, s, 0.2, 5.8) for s in segments(sim)}
    assert still_span(imus, (0.0, 5.6)) == pytest.approx((0.0, 5.6), abs=0.02)
    res = standing(sim, 0.2, 5.8)
    assert res.result["notes"] == ["the whole 5.6 s window was still and used"]


def instructed_prone(ins: Instructed, a: float, b: float, side: str | None = "l"):
    thighs = {s: ins.imu(s, a, b) for s in ("thigh_l", "thigh_r")}
    return phase_prone(thighs, ins.emg(a, b, pad_s=1.0), ins.imu("pelvis", a, b),
                       (0.0, b - a), side=side)


def test_prone_is_analysed_where_the_athlete_lies_prone(instructed):
    a, b = instructed.windows["prone"]
    pelvis = instructed.imu("pelvis", a, b)
    lying = pelvis.time_s[lying_prone_mask(pelvis)]
    # upright while stopping (2 s), prone halfway through lying down (3 s), then prone
    assert STOP_S + 1.0 < lying[0] < STOP_S + 2.0 and lying[-1] > b - a - 0.01
    span = prone_span(pelvis, (0.0, b - a))
    assert span == pytest.approx((lying[0], b - a), abs=0.01)
    res = instructed_prone(instructed, a, b)
    assert res.ok and res.problems == []
    assert res.result["used_s"] == [pytest.approx(span[0], abs=1e-3),
                                    pytest.approx(span[1], abs=1e-3)]
    assert res.result["notes"][0].startswith(f"analysed {span[0]:.1f}-{span[1]:.1f} s of the "
                                             f"{b - a:.1f} s window (")
    assert res.result["notes"][0].endswith("where the pelvis IMU shows the athlete lying prone")
    reps = res.result["repetitions"]
    truth = [r for r in instructed.reps if r["lower_end_s"] < b]
    assert len(reps) == len(truth) >= 3
    for rep, t in zip(reps, truth, strict=True):
        assert rep["side"] == "l" and 5.0 < rep["lift_deg"] < 11.0
        assert rep["movement_onset_s"] == pytest.approx(t["movement_onset_s"] - a, abs=0.03)
        assert rep["glute_ham_lag_ms"] == pytest.approx(t["glute_ham_lag_ms"], abs=30)
    # the same window untrimmed: the running steps before lying down pass as "lifts"
    whole = phe_analyze({"thigh_l": instructed.imu("thigh_l", a, b)},
                        instructed.emg(a, b, pad_s=1.0), pelvis, start_s=0.0, end_s=b - a)
    early = [r for r in whole.repetitions if r.lift.movement_onset_s < span[0]]
    early += [r for r in whole.rejected if r.movement_onset_s < span[0]]
    assert early, "the untrimmed window should show the running steps the trimming removes"


def test_prone_without_lying_down_is_a_plain_problem(instructed):
    a, _ = instructed.windows["standing"]
    res = instructed_prone(instructed, a - 10.0, a)  # running: never lay down
    assert not res.ok and res.result["repetitions"] == []
    assert res.problems == ["no prone lying detected in the window: lie face down before "
                            "starting the test"]


def test_absurd_lifts_are_not_counted_and_said_so():
    ins = Instructed(5, [("running", 20.0, {})])
    start = ins.gen.instruct("prone", sides=("l",))
    reps = [r for r in ins.gen.instructions.prone_reps if r["movement_onset_s"] >= start]
    reps[1]["lift_deg"] = 35.0  # not a 10-15 cm lift: far above hip extension's range
    ins.advance(27.0)
    end = ins.gen.instruct("running")
    ins.advance(2.0)
    ins.arrays = {s: np.concatenate(v).astype(float) for s, v in ins.data.items()}
    res = instructed_prone(ins, start, end)
    assert res.ok
    onsets = [r["movement_onset_s"] for r in res.result["repetitions"]]
    assert len(onsets) == len(reps) - 1
    assert all(abs(o - (reps[1]["movement_onset_s"] - start)) > 1.0 for o in onsets)
    skipped = [n for n in res.result["notes"] if "was not counted" in n]
    assert len(skipped) == 1 and skipped[0].startswith("a left leg movement of 3")
    assert skipped[0].endswith("was not counted: far above a prone lift of 10-15 cm")
