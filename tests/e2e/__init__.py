"""Browser tests. ``FINAL`` matches the data-status of a run that has ended, whatever the outcome:
helpers wait for it rather than for a text that a still-running page might also show."""
import re

FINAL = re.compile(r"^(succeeded|failed|timed_out|cancelled)$")
