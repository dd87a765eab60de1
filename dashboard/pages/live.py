"""Live: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

from hipstride.dashboard.placeholder import placeholder_page

placeholder_page(
    "Live",
    "A station's live feedback, readable from the treadmill: per side the "
    "glute:hamstring ratio, peak hip extension, pelvic tilt and cadence, the active "
    "cue in plain words, rolling charts and signal quality per channel.",
)
