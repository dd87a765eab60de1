"""Session control: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

from hipstride.dashboard.placeholder import placeholder_page

placeholder_page(
    "Session control",
    "Choose or create an athlete; start, stop and mark a session; add notes. The "
    "treadmill's Pi needs no keyboard.",
)
