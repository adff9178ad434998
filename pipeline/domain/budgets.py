"""How much rule evaluation one rule and one filing may cost: conditions.py bounds a rule's worst
case, scoring.py charges a filing's evaluations against its budget. Apart from both so that the
configuration can name the defaults without importing the rule language."""

MAX_COST = 1_000_000  # nodes evaluated in the worst case: ~0.1 s of one core, the most one rule may take

# A filing's evaluation budget: a rule's worst case, plus per item about twice what the 200-rule pack of
# bench/scoring.py spends (~900 node evaluations per goods item; ~140 ns each on this machine's core).
BUDGET_BASE = MAX_COST
BUDGET_PER_ITEM = 2_000
