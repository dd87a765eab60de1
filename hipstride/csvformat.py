"""The HipStride CSV format: one EMG file and one IMU file, sharing a time base.

Each file starts with a header row. The first column is ``time_s`` (seconds, uniformly spaced);
the others are named by canonical names (DOMAIN.md):

- EMG: ``glute_max_l``, ``biceps_femoris_r``, ``semitendinosus_l``, ``erector_spinae_r`` ... in
  millivolts at the electrode;
- IMU: ``<segment>_<acc|gyr>_<x|y|z>`` for segments ``pelvis``, ``thigh_l``, ``thigh_r``,
  ``shank_l``, ``shank_r``; accelerometer in m/s² (gravity included), gyroscope in deg/s.

Exports from other systems (Delsys, Noraxon ...) are read through a rename mapping applied to the
header before validation (``{"EMG 1 (mV)": "glute_max_l"}``; an empty target drops a column).
Reading uses numpy only (the edge install has no pandas) and checks everything a replay or an
analysis relies on, raising :class:`CsvFormatError` with a message that names the file, the place
and what to do. Documented for outsiders in ``docs/formats.md``.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipstride.streams import (
    EMG_CHANNELS_REQUIRED,
    EMG_MUSCLES,
    EMG_STREAM,
    IMU_CHANNELS,
    IMU_SEGMENTS,
    IMU_SEGMENTS_REQUIRED,
    StreamDescription,
    emg_description,
    imu_description,
)

TIME_COLUMN = "time_s"
EMG_COLUMNS = tuple(f"{m}_{side}" for m in EMG_MUSCLES for side in ("l", "r"))
IMU_COLUMNS = tuple(f"{seg}_{ch}" for seg in IMU_SEGMENTS for ch in IMU_CHANNELS)
KINDS = ("emg", "imu")

#: Factors that turn a file's unit into the canonical one (mV, m/s², deg/s).
EMG_UNITS_TO_MV = {"mV": 1.0, "uV": 1e-3, "µV": 1e-3, "V": 1e3}
ACC_UNITS_TO_MS2 = {"m/s^2": 1.0, "m/s2": 1.0, "g": 9.80665}
GYR_UNITS_TO_DPS = {"deg/s": 1.0, "rad/s": 180.0 / math.pi}

#: Successive time steps may differ from the mean step by this fraction before the file counts
#: as non-uniform (rounding of time_s to a few decimals stays well inside it).
TIME_STEP_TOLERANCE = 0.25
#: Plausibility bounds, in canonical units.
EMG_MAX_PLAUSIBLE_MV = 50.0  # surface EMG stays below ~10 mV at the electrode
EMG_MIN_PEAK_MV = 0.01  # even a resting muscle's noise peaks above 10 µV
GYR_MAX_PLAUSIBLE_DPS = 5000.0
GYR_MIN_PEAK_MOVING_DPS = 20.0  # a moving runner's segments turn faster than 20 deg/s
ACC_MOVING_STD_MS2 = 1.0
ACC_GRAVITY_MS2 = 9.80665


class CsvFormatError(ValueError):
    """A CSV file that does not follow the format; the message says where and what to do."""


@dataclass(frozen=True, eq=False)
class CsvTable:
    """One validated CSV file: ``samples`` (n_samples, n_channels) float64 in canonical units."""

    kind: str  # "emg" | "imu"
    rate_hz: float
    time_s: np.ndarray
    channels: tuple[str, ...]
    samples: np.ndarray
    path: Path | None = None

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def start_s(self) -> float:
        """``time_s`` of the first row."""
        return float(self.time_s[0])

    @property
    def duration_s(self) -> float:
        """Time covered by the samples: n_samples / rate_hz."""
        return self.n_samples / self.rate_hz

    @classmethod
    def from_arrays(cls, kind: str, channels: Sequence[str], samples: np.ndarray, rate_hz: float,
                    *, start_s: float = 0.0) -> CsvTable:
        """A table of uniformly sampled data, e.g. to write it with :func:`write_csv`."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != len(channels):
            raise ValueError(f"samples of shape {samples.shape} do not fit {len(channels)} "
                             "channels")
        time_s = start_s + np.arange(samples.shape[0]) / rate_hz
        table = cls(kind, float(rate_hz), time_s, tuple(channels), samples)
        _check_columns(table.kind, list(table.channels), "table", required=())
        return table

    def streams(self, *, dtype: str = "float32", sensor: str = "csv"
                ) -> list[tuple[StreamDescription, np.ndarray]]:
        """The file as HipStride streams: (description, samples in ``dtype``) per stream.

        EMG gives one stream ``emg`` with the file's channels in file order; IMU gives one
        stream ``imu_<segment>`` per segment with channels ``acc_x .. gyr_z``.
        """
        if self.kind == "emg":
            desc = emg_description(self.channels, rate_hz=self.rate_hz, dtype=dtype,
                                   sensor=sensor, stream=EMG_STREAM)
            return [(desc, self.samples.astype(dtype))]
        out = []
        for segment in imu_segments(self.channels):
            index = [self.channels.index(f"{segment}_{ch}") for ch in IMU_CHANNELS]
            desc = imu_description(segment, rate_hz=self.rate_hz, dtype=dtype, sensor=sensor)
            out.append((desc, self.samples[:, index].astype(dtype)))
        return out


def imu_segments(columns: Sequence[str]) -> list[str]:
    """Segments present among IMU column names, in canonical order."""
    return [s for s in IMU_SEGMENTS if any(c.startswith(s + "_") for c in columns)]


# --- rename mappings -------------------------------------------------------------------------

def parse_rename(text: str, *, name: str = "rename map") -> dict[str, str]:
    """Parse ``old=new`` lines (``#`` comments, blank lines, optional quotes); ``old=`` drops."""
    mapping: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise CsvFormatError(f"{name} line {number}: expected old=new, got {line!r}")
        old, new = (part.strip().strip("\"'") for part in line.rsplit("=", 1))
        if not old:
            raise CsvFormatError(f"{name} line {number}: the column to rename is empty")
        mapping[old] = new
    return mapping


def load_rename(path: str | Path) -> dict[str, str]:
    """A rename map from a file: TOML (``"EMG 1" = "glute_max_l"``) or ``old=new`` lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise CsvFormatError(f"rename map {path}: cannot read it ({err.strerror})") from None
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise CsvFormatError(f"rename map {path} is not valid TOML: {err}") from None
        if not all(isinstance(v, str) for v in data.values()):
            raise CsvFormatError(f"rename map {path}: every value must be a column name string")
        return dict(data)
    return parse_rename(text, name=f"rename map {path}")


# --- reading ---------------------------------------------------------------------------------

def read_csv(
    path: str | Path,
    kind: str,
    *,
    rename: Mapping[str, str] | None = None,
    required: Sequence[str] | None = None,
    emg_unit: str = "mV",
    acc_unit: str = "m/s^2",
    gyr_unit: str = "deg/s",
) -> CsvTable:
    """Read and validate one EMG or IMU file.

    Parameters
    ----------
    path
        The CSV file (comma-, semicolon- or tab-separated; ``#`` lines are comments).
    kind
        ``"emg"`` or ``"imu"``.
    rename
        Header renames applied before validation; an empty target drops the column.
    required
        EMG channels or IMU segments that must be present; default the DOMAIN.md minimum
        (glute max and biceps femoris both sides; pelvis and both thighs).
    emg_unit, acc_unit, gyr_unit
        The file's units, converted to mV, m/s² and deg/s.

    Raises
    ------
    CsvFormatError
        Naming the file and the problem: header, columns, time, empty or NaN cells, units.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
    path = Path(path)
    try:
        f = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed below
    except OSError as err:
        raise CsvFormatError(f"{path}: cannot open it ({err.strerror})") from None
    with f:
        header, header_line = _read_header(f, path)
        delimiter = next((d for d in (",", ";", "\t") if d in header), ",")
        found = [c.strip().strip('"').strip() for c in header.split(delimiter)]
        keep, names = _apply_rename(found, rename, path)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                data = np.loadtxt(f, delimiter=delimiter, dtype=np.float64, ndmin=2,
                                  comments="#", quotechar='"')
        except ValueError:
            data = None
    if data is not None and data.shape[0] == 0:
        raise CsvFormatError(f"{path}: a header but no data rows")
    if data is None or data.shape[1] != len(found):
        _diagnose_cells(path, delimiter, found, header_line)
        raise CsvFormatError(f"{path}: the data rows cannot be parsed as numbers")
    if keep != list(range(data.shape[1])):
        data = data[:, keep]
    _check_finite(data, names, path, header_line)
    time_index = names.index(TIME_COLUMN)
    time_s = data[:, time_index]
    channels = names[:time_index] + names[time_index + 1:]
    # A view, not a copy, in the usual case of time_s first (an hour of EMG is ~400 MB).
    samples = data[:, 1:] if time_index == 0 else np.delete(data, time_index, axis=1)
    _check_columns(kind, channels, str(path),
                   required=_default_required(kind) if required is None else tuple(required),
                   unused_renames=[k for k in rename or {} if k not in found])
    rate_hz = _check_time(time_s, path, header_line)
    _convert_units(kind, channels, samples, path, emg_unit, acc_unit, gyr_unit)
    table = CsvTable(kind, rate_hz, time_s, tuple(channels), samples, path)
    check_plausible(table, emg_unit, acc_unit, gyr_unit)
    return table


def read_emg_csv(path: str | Path, **kwargs: object) -> CsvTable:
    """:func:`read_csv` for an EMG file."""
    return read_csv(path, "emg", **kwargs)  # type: ignore[arg-type]


def read_imu_csv(path: str | Path, **kwargs: object) -> CsvTable:
    """:func:`read_csv` for an IMU file."""
    return read_csv(path, "imu", **kwargs)  # type: ignore[arg-type]


def _default_required(kind: str) -> tuple[str, ...]:
    return EMG_CHANNELS_REQUIRED if kind == "emg" else IMU_SEGMENTS_REQUIRED


def _read_header(f, path: Path) -> tuple[str, int]:
    for number, line in enumerate(f, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped, number
    raise CsvFormatError(f"{path}: the file is empty; expected a header row starting with "
                         f"{TIME_COLUMN!r} and data rows")


def _apply_rename(found: list[str], rename: Mapping[str, str] | None, path: Path
                  ) -> tuple[list[int], list[str]]:
    rename = rename or {}
    keep, names = [], []
    for i, column in enumerate(found):
        new = rename.get(column, column)
        if new == "":
            continue
        keep.append(i)
        names.append(new)
    if TIME_COLUMN not in names:
        hint = (f"; the first column is {found[0]!r}: rename it with {found[0]!r} = "
                f"{TIME_COLUMN!r} in the column map" if found and found[0] else "")
        raise CsvFormatError(f"{path}: no {TIME_COLUMN!r} column (time in seconds) in the header "
                             f"{found}{hint}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CsvFormatError(f"{path}: column(s) {', '.join(repeated)} appear more than once "
                             "(after renaming); each channel needs exactly one column")
    return keep, names


def _diagnose_cells(path: Path, delimiter: str, found: list[str], header_line: int) -> None:
    """Find the first bad row in Python (only on the error path) and raise a precise error."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        for number, line in enumerate(f, start=1):
            if number <= header_line:
                continue
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            cells = stripped.split(delimiter)
            if len(cells) != len(found):
                raise CsvFormatError(
                    f"{path} line {number}: {len(cells)} cells but the header has {len(found)} "
                    "columns; every row needs one value per column")
            for column, cell in zip(found, cells, strict=True):
                text = cell.strip().strip('"').strip()
                if not text:
                    raise CsvFormatError(
                        f"{path} line {number}, column {column!r}: empty cell; fill or cut the "
                        "gap (HipStride needs every sample)")
                try:
                    float(text)
                except ValueError:
                    raise CsvFormatError(
                        f"{path} line {number}, column {column!r}: {text!r} is not a number "
                        "(decimal point '.', no units in cells; only the header row may hold "
                        "text)") from None


def _check_finite(data: np.ndarray, names: list[str], path: Path, header_line: int) -> None:
    bad = ~np.isfinite(data)
    if not bad.any():
        return
    rows, cols = np.nonzero(bad)
    first_row, first_col = int(rows[0]), int(cols[0])
    # Data row i sits on file line header_line + 1 + i when there are no comment lines.
    raise CsvFormatError(
        f"{path}: {int(bad.sum())} NaN or infinite cell(s), the first in data row {first_row + 1} "
        f"(line {header_line + 1 + first_row}, time_s "
        f"{data[first_row, names.index(TIME_COLUMN)]:.9g}), column {names[first_col]!r}; "
        f"columns affected: {', '.join(sorted({names[c] for c in cols.tolist()}))}. Fill or cut "
        "the gaps before importing")


def _check_columns(kind: str, channels: list[str], where: str, *, required: Sequence[str],
                   unused_renames: Sequence[str] = ()) -> None:
    known = EMG_COLUMNS if kind == "emg" else IMU_COLUMNS
    unknown = [c for c in channels if c not in known]
    problems = []
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(c.lower(), known, n=1)
            hints.append(f"{c!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        problems.append("unknown column(s) " + ", ".join(hints))
    if kind == "emg":
        missing = [c for c in required if c not in channels]
        if not channels and not missing:
            problems.append("no EMG channel columns")
    else:
        segments = imu_segments([c for c in channels if c in known])
        missing = [f"{s}_{ch}" for s in required if s not in segments for ch in IMU_CHANNELS]
        for s in segments:
            missing += [f"{s}_{ch}" for ch in IMU_CHANNELS if f"{s}_{ch}" not in channels]
        if not channels and not missing:
            problems.append("no IMU columns")
    if missing:
        problems.append("missing column(s) " + ", ".join(missing))
    if not problems:
        return
    if kind == "emg":
        needed = (f"EMG columns are named by muscle and side: {', '.join(EMG_COLUMNS)} "
                  f"(required: {', '.join(required) or 'none'}), in mV")
    else:
        needed = ("IMU columns are <segment>_<acc|gyr>_<x|y|z> for segments "
                  f"{', '.join(IMU_SEGMENTS)} (required: {', '.join(required) or 'none'}), "
                  "all six per segment")
    advice = "; rename the export's columns with a column map (old=new)"
    if unused_renames:
        advice += ("; note that these map entries matched no column: "
                   + ", ".join(map(repr, unused_renames)))
    raise CsvFormatError(f"{where}: {'; '.join(problems)}. Found columns: "
                         f"{', '.join(channels) or '(none)'}. {needed}{advice}")


def _check_time(time_s: np.ndarray, path: Path, header_line: int) -> float:
    n = time_s.size
    if n < 2:
        raise CsvFormatError(f"{path}: {n} data row(s); at least 2 are needed to know the "
                             "sample rate")
    step = np.diff(time_s)
    backwards = np.flatnonzero(step <= 0)
    if backwards.size:
        i = int(backwards[0])
        raise CsvFormatError(
            f"{path}: {TIME_COLUMN} is not increasing: data row {i + 2} (line "
            f"{header_line + i + 2}) has {time_s[i + 1]:.9g} after {time_s[i]:.9g} "
            f"({backwards.size} such place(s)); sort the rows or split the file at the restart")
    period_s = (time_s[-1] - time_s[0]) / (n - 1)
    off = np.flatnonzero(np.abs(step - period_s) > TIME_STEP_TOLERANCE * period_s)
    if off.size:
        i = int(off[0])
        missing = step[i] / period_s - 1
        what = (f"a gap of about {missing:.0f} sample(s)" if missing > 0.5
                else "an irregular step")
        raise CsvFormatError(
            f"{path}: {TIME_COLUMN} is not uniform: from data row {i + 1} to {i + 2} (lines "
            f"{header_line + i + 1}-{header_line + i + 2}) it steps {step[i]:.9g} s where the "
            f"file averages {period_s:.9g} s ({what}; {off.size} irregular step(s)); HipStride "
            "needs evenly sampled data: resample the export or split it at the gap")
    rate_hz = 1.0 / period_s
    nearest = round(rate_hz)
    if nearest and abs(rate_hz - nearest) <= 1e-5 * rate_hz:
        rate_hz = float(nearest)  # time_s printed with few decimals
    return float(rate_hz)


def _convert_units(kind: str, channels: list[str], samples: np.ndarray, path: Path,
                   emg_unit: str, acc_unit: str, gyr_unit: str) -> None:
    if kind == "emg":
        factor = _unit_factor(EMG_UNITS_TO_MV, emg_unit, "emg_unit")
        if factor != 1.0:
            samples *= factor
        return
    acc = _unit_factor(ACC_UNITS_TO_MS2, acc_unit, "acc_unit")
    gyr = _unit_factor(GYR_UNITS_TO_DPS, gyr_unit, "gyr_unit")
    for i, c in enumerate(channels):
        factor = acc if "_acc_" in c else gyr
        if factor != 1.0:
            samples[:, i] *= factor


def _unit_factor(table: Mapping[str, float], unit: str, key: str) -> float:
    try:
        return table[unit]
    except KeyError:
        raise CsvFormatError(f"{key} {unit!r}: expected one of "
                             f"{', '.join(map(repr, table))}") from None


def check_plausible(table: CsvTable, emg_unit: str, acc_unit: str, gyr_unit: str) -> None:
    """Catch files in the wrong unit, the most common import mistake.

    Looks at up to ~200 000 evenly spread rows: enough for percentiles, fast for an hour.
    """
    where = table.path or "table"
    x = table.samples[:: max(1, table.n_samples // 200_000)]
    if table.kind == "emg":
        peaks = np.abs(x).max(axis=0)
        high = np.quantile(np.abs(x), 0.999, axis=0)
        if high.max() > EMG_MAX_PLAUSIBLE_MV:
            c = table.channels[int(high.argmax())]
            raise CsvFormatError(
                f"{where}: EMG channel {c!r} reaches {high.max():.4g} mV (99.9th percentile), "
                f"but surface EMG stays below ~10 mV at the electrode: the file looks like "
                f"microvolts (set emg_unit = \"uV\") or raw ADC counts (divide by the gain); "
                f"it was read as {emg_unit}")
        if peaks.max() < EMG_MIN_PEAK_MV:
            raise CsvFormatError(
                f"{where}: no EMG channel ever exceeds {peaks.max():.3g} mV, below the noise "
                f"floor of a real electrode: the file looks like volts (set emg_unit = \"V\") "
                f"or the channels are empty; it was read as {emg_unit}")
        return
    for segment in imu_segments(table.channels):
        acc = x[:, [table.channels.index(f"{segment}_acc_{a}") for a in "xyz"]]
        gyr = x[:, [table.channels.index(f"{segment}_gyr_{a}") for a in "xyz"]]
        magnitude = np.linalg.norm(acc, axis=1)
        median = float(np.median(magnitude))
        if median > 5 * ACC_GRAVITY_MS2 or 0.05 * ACC_GRAVITY_MS2 < median < 0.3 * ACC_GRAVITY_MS2:
            hint = ("looks like g (set acc_unit = \"g\") or has gravity removed (export the raw "
                    "accelerometer)" if median < ACC_GRAVITY_MS2 else
                    "looks like raw counts or mm/s² (convert to m/s²)")
            raise CsvFormatError(
                f"{where}: segment {segment!r}: the accelerometer's median magnitude is "
                f"{median:.3g} m/s², not about 9.8 (gravity): it {hint}; it was read as "
                f"{acc_unit}")
        gyr_high = float(np.quantile(np.abs(gyr), 0.999))
        if gyr_high > GYR_MAX_PLAUSIBLE_DPS:
            raise CsvFormatError(
                f"{where}: segment {segment!r}: the gyroscope reaches {gyr_high:.4g} deg/s "
                f"(99.9th percentile), far beyond human motion: raw counts or mdeg/s? It was "
                f"read as {gyr_unit}")
        moving = float(magnitude.std()) > ACC_MOVING_STD_MS2
        if moving and float(np.abs(gyr).max()) < GYR_MIN_PEAK_MOVING_DPS:
            raise CsvFormatError(
                f"{where}: segment {segment!r}: the accelerometer shows movement but the "
                f"gyroscope never exceeds {np.abs(gyr).max():.3g} deg/s: it looks like rad/s "
                f"(set gyr_unit = \"rad/s\"); it was read as {gyr_unit}")


# --- writing ---------------------------------------------------------------------------------

def write_csv(path: str | Path, table: CsvTable, *, digits: int = 9) -> Path:
    """Write a table in the HipStride CSV format (``digits`` significant digits per value).

    Nine digits round-trip float32 exactly; use 17 for float64.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.column_stack([table.time_s, table.samples])
    fmt = ["%.9f"] + [f"%.{digits}g"] * table.samples.shape[1]
    np.savetxt(path, data, fmt=fmt, delimiter=",", header=",".join((TIME_COLUMN,
               *table.channels)), comments="")
    return path
