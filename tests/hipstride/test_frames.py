from __future__ import annotations

import contextlib
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hipstride.frames import (
    DTYPE_CODES,
    HEADER,
    MAX_FRAME_BYTES,
    ChecksumMismatch,
    FrameError,
    InconsistentFrame,
    NonFiniteSamples,
    OversizedFrame,
    TruncatedFrame,
    UnsupportedVersion,
    decode_frame,
    encode_frame,
)

stream_names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


@st.composite
def sample_arrays(draw):
    dtype = draw(st.sampled_from(list(DTYPE_CODES.values())))
    shape = (draw(st.integers(1, 300)), draw(st.integers(1, 12)))
    return draw(hnp.arrays(dtype, shape))


@given(stream=stream_names, seq=st.integers(0, 2**64 - 1), epoch=st.integers(0, 2**32 - 1),
       t0=st.integers(-(2**63), 2**63 - 1), rate=st.floats(0.01, 100_000),
       samples=sample_arrays())
@settings(max_examples=300, deadline=None)
def test_every_dtype_and_shape_round_trips(stream, seq, epoch, t0, rate, samples):
    frame = decode_frame(encode_frame(stream, seq, t0, rate, samples, epoch=epoch))
    assert (frame.stream, frame.seq, frame.epoch, frame.t0_ns, frame.rate_hz) == (
        stream, seq, epoch, t0, rate)
    assert frame.samples.dtype == samples.dtype.newbyteorder("<")
    assert frame.samples.shape == samples.shape
    assert frame.samples.tobytes() == samples.astype(frame.samples.dtype).tobytes()


@given(st.binary(max_size=4096))
@settings(max_examples=2000, deadline=None)
def test_random_bytes_never_crash_the_decoder(data):
    try:
        decode_frame(data)
    except FrameError as err:
        assert err.reason and str(err)


@given(st.data())
@settings(max_examples=500, deadline=None)
def test_mutated_valid_frames_are_decoded_or_rejected_cleanly(data):
    good = bytearray(encode_frame("emg", 7, 10**18, 2000.0,
                                  np.arange(60, dtype=np.float32).reshape(10, 6)))
    for _ in range(data.draw(st.integers(1, 5))):
        pos = data.draw(st.integers(0, len(good) - 1))
        good[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    with contextlib.suppress(FrameError):
        decode_frame(bytes(good[:cut]))


def _valid(**changes) -> bytes:
    return encode_frame("emg", 1, 123, 2000.0, np.ones((10, 6), np.float32), **changes)


def _reheader(data: bytes, **fields) -> bytes:
    names = ("magic", "version", "code", "flags", "name_len", "n_channels", "epoch", "seq",
             "t0_ns", "rate_hz", "n_samples")
    values = dict(zip(names, HEADER.unpack_from(data), strict=True))
    values.update(fields)
    body = HEADER.pack(*values.values()) + data[HEADER.size:-4]
    return body + struct.pack("<I", zlib.crc32(body))


@pytest.mark.parametrize("mangle, error", [
    (lambda b: b[:-1], TruncatedFrame),
    (lambda b: b[:20], TruncatedFrame),
    (lambda b: b + b"\0", OversizedFrame),
    (lambda b: b"\0" * (MAX_FRAME_BYTES + 1), OversizedFrame),
    (lambda b: b"XX" + b[2:], InconsistentFrame),
    (lambda b: _reheader(b, version=2), UnsupportedVersion),
    (lambda b: _reheader(b, code=99), InconsistentFrame),
    (lambda b: _reheader(b, flags=1), InconsistentFrame),
    (lambda b: _reheader(b, n_channels=7), TruncatedFrame),
    (lambda b: _reheader(b, n_samples=9), OversizedFrame),
    (lambda b: _reheader(b, n_samples=0), InconsistentFrame),
    (lambda b: _reheader(b, rate_hz=float("nan")), InconsistentFrame),
    (lambda b: _reheader(b, rate_hz=-5.0), InconsistentFrame),
    (lambda b: b[:-5] + bytes([b[-5] ^ 1]) + b[-4:], ChecksumMismatch),
])
def test_bad_frames_raise_a_typed_error_naming_the_problem(mangle, error):
    with pytest.raises(error) as info:
        decode_frame(mangle(_valid()))
    assert info.value.reason == error.reason
    assert len(str(info.value)) > 10


def test_non_finite_samples_rejected_only_on_request():
    samples = np.ones((4, 2), np.float32)
    samples[2, 1] = np.nan
    data = encode_frame("emg", 0, 0, 100.0, samples)
    assert np.isnan(decode_frame(data).samples[2, 1])
    with pytest.raises(NonFiniteSamples, match="NaN"):
        decode_frame(data, require_finite=True)


def test_timestamps_follow_the_sample_clock():
    frame = decode_frame(encode_frame("imu_pelvis", 0, 1_000_000_000, 200.0,
                                      np.zeros((10, 6), np.float32)))
    ts = frame.timestamps_ns()
    assert ts[0] == 1_000_000_000 and np.all(np.diff(ts) == 5_000_000)
    assert frame.duration_ns == 50_000_000


def test_encoder_refuses_what_the_format_cannot_carry():
    with pytest.raises(ValueError, match="stream name"):
        encode_frame("EMG!", 0, 0, 1.0, np.zeros((1, 1), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        encode_frame("emg", 0, 0, 1.0, np.zeros((1, 1), np.complex64))
    with pytest.raises(ValueError, match="rate_hz"):
        encode_frame("emg", 0, 0, 0.0, np.zeros((1, 1), np.float32))


def test_a_50ms_emg_frame_is_compact():
    data = encode_frame("emg", 0, 0, 2000.0, np.zeros((100, 6), np.float32))
    assert len(data) == HEADER.size + 3 + 100 * 6 * 4 + 4
