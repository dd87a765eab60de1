"""Prone hip extension test: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

from hipstride.dashboard.placeholder import placeholder_page

placeholder_page(
    "Prone hip extension test",
    "Guided repetitions per side with countdowns, then the firing order and onsets of"
    " glutes, hamstrings and lower back, lumbar/pelvic compensation, and coaching "
    "advice (not a diagnosis).",
)
