"""The workbench's colours: one per meaning, the same in every chart and on every page.

The charts (effectiveness.plot) take them from here; the pages and the standalone report get
them as CSS (`css()`). So a confirmed finding is the same green in the plot's bars, its legend,
the rule table's header and a referral's outcome, and no other meaning uses that green.
"""
from __future__ import annotations

from ..domain.rulepack import CONTROL, DNL, RFI, RFS

# Okabe and Ito's bluish green and vermillion: told apart with red-green colour blindness too.
CONFIRMED = "#009e73"  # a confirmed finding: outcome "finding"
FALSE_HIT = "#d55e00"  # a false hit: controlled or checked, nothing found
OPEN = "#b2babb"  # no outcome either way: open, not controlled, or settled by the filer's answer
FLAGGED = "#f8d5c0"  # background of a rule flagged for mostly false hits (a tint of FALSE_HIT)
EVIDENCE = "#fff5c2"  # background of the data a rule pointed at (a highlighter)
INK = "#1b2631"
WHITE = "#ffffff"
# Decisions by severity, one hue darkening with it (green and vermillion mean outcomes).
DECISIONS = {RFI: ("#ebdef0", INK), RFS: ("#d2b4de", INK), CONTROL: ("#a569bd", INK), DNL: ("#6c3483", WHITE)}

# What came of referrals: (key, label, colour), in the order bars stack and legends read.
OUTCOME_SERIES = (("confirmed", "confirmed finding", CONFIRMED), ("false", "false hit", FALSE_HIT),
                  ("open", "open, or closed without a control", OPEN))


def outcome_key(confirms: bool, clears: bool) -> str:
    """The series a resolution counts in (queue.OUTCOMES says whether it confirms or clears)."""
    return "confirmed" if confirms else "false" if clears else "open"


def css() -> str:
    """The palette as CSS: outcome swatches, decision pills, flagged rules, evidence."""
    return "".join(
        [f".outcome-{key}{{background:{colour}}}" for key, _, colour in OUTCOME_SERIES]
        + [f".pill.{decision}{{background:{bg};color:{fg}}}" for decision, (bg, fg) in DECISIONS.items()]
        + [f".flagged{{background:{FLAGGED}}}.evidence,.hit-event{{background:{EVIDENCE}}}",
           ".swatch{display:inline-block;width:.8em;height:.8em;margin-right:4px;vertical-align:-1px}"])
