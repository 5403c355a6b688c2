"""Public clinical structure in the model and in every synthetic row.

Two steps, both post-processing of public facts (bin edges and the schema's rules), so they
cost no privacy:

1. **Structural zeros.** A cell of the model (a combination of public codes) in which
   every value violates a rule -- an onset-age bin above the whole age bin, a married
   patient in an age bin entirely under 16 -- gets probability exactly 0: the rule's columns
   become a clique of the model carrying a log-potential of -inf on those cells, which
   estimation never moves (``masks``).
2. **Rows that satisfy every rule.** After decoding, rows that still break a rule (values
   drawn inside bins that only partly overlap, a derived number outside its bounds) get
   their numbers redrawn inside their bins, then, if that is not enough, the whole row is
   drawn again from the model: the output is the model conditioned on the rules, and every
   hard rule holds in every row (``satisfy``, ``hard``). Derived columns are computed here
   too, so every writer reads the same rows (``common``).

The plausibility panel (soft rules) tilts the model's codes before decoding (``tilt``) and
steers numbers inside their bins after it (``steer``).
"""

from privsynth.generator.constraint.common import Redraw, derive, enforced, violations
from privsynth.generator.constraint.hard import ROW_ROUNDS, repair, within_pinned_bins
from privsynth.generator.constraint.masks import compress_masks, rule_mask, zero_masks
from privsynth.generator.constraint.prior import movable, tilt
from privsynth.generator.constraint.rows import satisfy

__all__ = ["ROW_ROUNDS", "Redraw", "compress_masks", "derive", "enforced", "movable", "repair", "rule_mask", "satisfy",
           "tilt", "violations", "within_pinned_bins", "zero_masks"]
