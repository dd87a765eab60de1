"""Calibration: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

from hipstride.dashboard.placeholder import placeholder_page

placeholder_page(
    "Calibration",
    "Guided standing calibration and maximal-contraction (MVC) trials per muscle, "
    "with countdowns and a check that each effort was good; stored per athlete and "
    "reused.",
)
