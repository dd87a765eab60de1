"""Coach view: a placeholder until the pipeline service is in place.

It says what the page will do and shows nothing else — no invented numbers.
"""

from hipstride.dashboard.placeholder import placeholder_page

placeholder_page(
    "Coach view",
    "Every live station at a glance, the ones needing attention first.",
)
